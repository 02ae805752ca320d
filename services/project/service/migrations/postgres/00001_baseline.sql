-- The tables as the service created them before versioned migrations, written so that
-- such a database is adopted as version 1 (IF NOT EXISTS) with its data. Never edit it:
-- add a migration (docs/operations.md).

-- +goose Up
CREATE TABLE IF NOT EXISTS projects (
	id TEXT PRIMARY KEY,
	org_id TEXT NOT NULL,
	name TEXT NOT NULL,
	provider TEXT NOT NULL,
	repository TEXT NOT NULL,
	events TEXT NOT NULL,
	tier TEXT NOT NULL,
	webhook_secret TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	network TEXT NOT NULL DEFAULT 'default',
	UNIQUE (org_id, name));

-- Sealed project secrets (secrets.go); before versioning, made only when a keyring was set.
CREATE TABLE IF NOT EXISTS project_secrets (
	project_id TEXT NOT NULL,
	name TEXT NOT NULL,
	key_id TEXT NOT NULL,
	sealed BYTEA NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (project_id, name));
