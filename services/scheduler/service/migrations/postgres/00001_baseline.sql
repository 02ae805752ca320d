-- The tables as the service created them before versioned migrations, written so that
-- such a database is adopted as version 1 (IF NOT EXISTS) with its data. Never edit it:
-- add a migration (docs/operations.md).

-- +goose Up

-- The run list read model, projected from the run streams.
CREATE TABLE IF NOT EXISTS sched_runs (
	run_id TEXT PRIMARY KEY,
	org_id TEXT NOT NULL,
	project_id TEXT NOT NULL,
	number BIGINT NOT NULL,
	status TEXT NOT NULL,
	reason TEXT NOT NULL,
	event TEXT NOT NULL,
	ref TEXT NOT NULL,
	branch TEXT NOT NULL,
	sha TEXT NOT NULL,
	actor TEXT NOT NULL,
	tier TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	started_at BIGINT NOT NULL,
	finished_at BIGINT NOT NULL,
	version BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS sched_runs_project_created ON sched_runs (org_id, project_id, created_at DESC, run_id DESC);
-- The list's filters, so that a rare status, branch or event is found by index
-- instead of by walking the project's whole history (docs/benchmarks.md).
CREATE INDEX IF NOT EXISTS sched_runs_project_status ON sched_runs (org_id, project_id, status, created_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS sched_runs_project_branch ON sched_runs (org_id, project_id, branch, created_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS sched_runs_project_event ON sched_runs (org_id, project_id, event, created_at DESC, run_id DESC);

-- Where each follower of the event log is (outbox.go).
CREATE TABLE IF NOT EXISTS sched_positions (name TEXT PRIMARY KEY, position BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS sched_run_numbers (project_id TEXT PRIMARY KEY, last BIGINT NOT NULL);

-- The job queue: one row per queued or running run.
CREATE TABLE IF NOT EXISTS sched_jobs (
	run_id TEXT PRIMARY KEY,
	tier TEXT NOT NULL,
	state TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	runner_id TEXT NOT NULL,
	lease_id TEXT NOT NULL,
	lease_expires BIGINT NOT NULL,
	attempt INTEGER NOT NULL DEFAULT 1,
	cancel_requested BOOLEAN NOT NULL DEFAULT FALSE);

-- Runners seen claiming work, to tell why a queued run waits.
CREATE TABLE IF NOT EXISTS sched_runners (runner_id TEXT PRIMARY KEY, tiers TEXT NOT NULL, last_seen BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS sched_jobs_state ON sched_jobs (state, tier, created_at);
