-- +goose Up
-- The forge's id of the repository webhook registered for a project (hooks.go); 0: none.
ALTER TABLE projects ADD COLUMN webhook_id BIGINT NOT NULL DEFAULT 0;
