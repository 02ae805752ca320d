-- +goose Up
-- Deliveries accepted by the gateway and not yet published on the bus (intake.go): a
-- webhook is answered 202 once its RunRequested is here, so a Kafka outage delays runs
-- instead of losing pushes.
CREATE TABLE gw_outbox (
	seq        BIGSERIAL PRIMARY KEY,
	message_id TEXT   NOT NULL UNIQUE,
	topic      TEXT   NOT NULL,
	msg_key    TEXT   NOT NULL,
	msg_type   TEXT   NOT NULL,
	payload    BYTEA  NOT NULL,
	created_at BIGINT NOT NULL
);
