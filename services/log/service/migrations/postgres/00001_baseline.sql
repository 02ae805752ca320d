-- The tables as the service created them before versioned migrations, written so that
-- such a database is adopted as version 1 (IF NOT EXISTS) with its data. Never edit it:
-- add a migration (docs/operations.md).

-- +goose Up
CREATE TABLE IF NOT EXISTS log_chunks (
	run_id TEXT NOT NULL,
	attempt INTEGER NOT NULL,
	seq BIGINT NOT NULL,
	org_id TEXT NOT NULL,
	project_id TEXT NOT NULL,
	step INTEGER NOT NULL,
	stream TEXT NOT NULL,
	at BIGINT NOT NULL,
	data BYTEA NOT NULL,
	PRIMARY KEY (run_id, attempt, seq));
CREATE TABLE IF NOT EXISTS log_runs (run_id TEXT PRIMARY KEY, org_id TEXT NOT NULL, attempt INTEGER NOT NULL, last_seq BIGINT NOT NULL);
