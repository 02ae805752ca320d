-- +goose Up
-- The run a run re-runs (RunQueued.rerun_of, rerun_of_number), for the run list's rerunOf
-- and its trigger filter (trigger=rerun). '' and 0: not a re-run, as every run recorded
-- before re-runs existed.
ALTER TABLE sched_runs ADD COLUMN rerun_of TEXT NOT NULL DEFAULT '';
ALTER TABLE sched_runs ADD COLUMN rerun_of_number BIGINT NOT NULL DEFAULT 0;
