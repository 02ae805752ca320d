-- +goose Up
-- The run's commit message (RunQueued.commit_message, at most 1 KiB), for the run list's
-- commitMessage. '' for every run recorded before it was read (ADR 0027).
ALTER TABLE sched_runs ADD COLUMN commit_message TEXT NOT NULL DEFAULT '';
