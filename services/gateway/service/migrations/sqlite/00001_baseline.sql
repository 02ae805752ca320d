-- +goose Up
-- Deliveries accepted by the gateway and not yet published on the bus (intake.go).
CREATE TABLE gw_outbox (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	message_id TEXT    NOT NULL UNIQUE,
	topic      TEXT    NOT NULL,
	msg_key    TEXT    NOT NULL,
	msg_type   TEXT    NOT NULL,
	payload    BLOB    NOT NULL,
	created_at INTEGER NOT NULL
);
