-- +goose Up
-- The output stored per run attempt (stdout and stderr), held against the run's cap
-- (LogEmitted.run_log_bytes).
CREATE TABLE log_sizes (run_id TEXT NOT NULL, attempt INTEGER NOT NULL, bytes BIGINT NOT NULL, PRIMARY KEY (run_id, attempt));
