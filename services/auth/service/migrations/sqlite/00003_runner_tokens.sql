-- +goose Up
-- Runners' own tokens (docs/adr/0013-service-identities.md): one active token per
-- runner name, stored as a SHA-256 hash; revoked ones stay for the record.
CREATE TABLE auth_runners (
    hash TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX auth_runners_active ON auth_runners (name) WHERE revoked_at IS NULL;
