-- +goose Up
-- Sign-in with GitHub (docs/adr/0018-github-sign-in.md). auth_oauth_states: the
-- pending sign-ins' state values, as SHA-256 hashes, single-use, expiring after 10
-- minutes. auth_github_accounts: the GitHub account behind a user, keyed by GitHub's
-- numeric user id (logins change); the user's GitHub tokens are sealed with the auth
-- keyring (key_id names the key), never stored in plain text.
CREATE TABLE auth_oauth_states (
    hash TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE TABLE auth_github_accounts (
    github_id BIGINT PRIMARY KEY,
    user_id TEXT NOT NULL UNIQUE,
    login TEXT NOT NULL,
    key_id TEXT NOT NULL,
    access_sealed TEXT NOT NULL,
    access_expires_at BIGINT,
    refresh_sealed TEXT,
    refresh_expires_at BIGINT,
    scope TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
