-- +goose Up
-- A running job's deadline: when its run's timeout (from RunQueued) and a grace have passed
-- since RunStarted, the scheduler ends the run timed_out even if its runner never reports
-- (domain.Run.Expire). 0: no deadline (queued, or a job from before this migration).
ALTER TABLE sched_jobs ADD COLUMN timeout_ns BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sched_jobs ADD COLUMN deadline BIGINT NOT NULL DEFAULT 0;
