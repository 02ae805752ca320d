-- +goose Up
-- The SHA-256 of every signed webhook body the gateway accepted, per project, for the replay
-- window (--webhook-replay-window): the same body sent again under a new delivery id is a
-- replay of a captured delivery (a forge that retries or redelivers keeps the delivery id)
-- and is refused with 409 (intake.go). Rows older than the window are deleted by the
-- gateway that forwards the outbox, so the table holds at most the deliveries of one window.
CREATE TABLE gw_webhook_bodies (
	project_id  TEXT   NOT NULL,
	body_sha256 TEXT   NOT NULL,
	delivery_id TEXT   NOT NULL,
	run_id      TEXT   NOT NULL,
	seen_at     BIGINT NOT NULL,
	PRIMARY KEY (project_id, body_sha256)
);
CREATE INDEX gw_webhook_bodies_seen ON gw_webhook_bodies (seen_at);
