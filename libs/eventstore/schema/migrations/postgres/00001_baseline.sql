-- The events table as the event store created it before versioned migrations, written
-- so that such a database is adopted as version 1 (IF NOT EXISTS). Never edit it: add a
-- migration. The postgres package's documentation explains the columns.

-- +goose Up
CREATE TABLE IF NOT EXISTS events (
	position       bigserial   PRIMARY KEY,
	stream_id      text        NOT NULL,
	stream_version bigint      NOT NULL,
	event_id       text        NOT NULL,
	type           text        NOT NULL,
	payload        bytea       NOT NULL,
	metadata       jsonb,
	recorded_at    timestamptz NOT NULL DEFAULT now(),
	transaction_id xid8        NOT NULL DEFAULT pg_current_xact_id(),
	CONSTRAINT events_event_id_key UNIQUE (event_id),
	CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version),
	CONSTRAINT events_stream_version_positive CHECK (stream_version > 0)
);
