-- +goose Up
-- API tokens get an id (to list and revoke them without showing the hash), an expiry, a
-- revocation time and when they were last used. NULL expires_at: never expires (the
-- bootstrap admin token and tokens from before this migration); NULL revoked_at: valid.
-- Tokens from before get a random id.
ALTER TABLE auth_tokens ADD COLUMN id TEXT;
ALTER TABLE auth_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE auth_tokens ADD COLUMN revoked_at BIGINT;
ALTER TABLE auth_tokens ADD COLUMN last_used_at BIGINT;
UPDATE auth_tokens SET id = substr(md5(random()::text || clock_timestamp()::text || hash), 1, 26) WHERE id IS NULL;
CREATE UNIQUE INDEX auth_tokens_id ON auth_tokens (id);
CREATE INDEX auth_tokens_user ON auth_tokens (user_id, created_at);
