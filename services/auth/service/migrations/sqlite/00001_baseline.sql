-- The tables as the service created them before versioned migrations, written so that
-- such a database is adopted as version 1 (IF NOT EXISTS) with its data. Never edit it:
-- add a migration (docs/operations.md).

-- +goose Up
CREATE TABLE IF NOT EXISTS auth_orgs (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS auth_users (id TEXT PRIMARY KEY, org_id TEXT NOT NULL, login TEXT NOT NULL UNIQUE, admin BOOLEAN NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS auth_tokens (hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, name TEXT NOT NULL, created_at BIGINT NOT NULL);
