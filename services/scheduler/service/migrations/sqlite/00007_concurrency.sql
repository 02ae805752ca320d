-- +goose Up
-- Concurrency groups (docs/adr/0028-concurrency-groups.md): the job queue knows each job's
-- project, run number and concurrency key, so that a claim starts a run only when fewer
-- than its limit of runs of its key count before it (running, or queued with a smaller
-- number), and a sweep finds the older runs a cancelInProgress run supersedes. '' and 0
-- for the jobs queued before: they have no key. The job queue is a
-- projection of the log (rebuildJobs), so nothing else needs a backfill.
ALTER TABLE sched_jobs ADD COLUMN project_id TEXT NOT NULL DEFAULT '';
ALTER TABLE sched_jobs ADD COLUMN number BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sched_jobs ADD COLUMN concurrency_key TEXT NOT NULL DEFAULT '';
ALTER TABLE sched_jobs ADD COLUMN concurrency_limit INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sched_jobs ADD COLUMN cancel_in_progress BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX sched_jobs_concurrency ON sched_jobs (project_id, concurrency_key, number);
