-- The events table as the event store created it before versioned migrations, written
-- so that such a database is adopted as version 1 (IF NOT EXISTS). Never edit it: add a
-- migration. recorded_at is Unix microseconds, UTC.

-- +goose Up
CREATE TABLE IF NOT EXISTS events (
	position       INTEGER PRIMARY KEY AUTOINCREMENT,
	stream_id      TEXT    NOT NULL,
	stream_version INTEGER NOT NULL CHECK (stream_version > 0),
	event_id       TEXT    NOT NULL UNIQUE,
	type           TEXT    NOT NULL,
	payload        BLOB    NOT NULL,
	metadata       TEXT,
	recorded_at    INTEGER NOT NULL,
	UNIQUE (stream_id, stream_version)
);
