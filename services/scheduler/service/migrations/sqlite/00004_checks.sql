-- +goose Up
-- The check run (GitHub App forges only) that shows each run on its commit: created when the
-- run is queued, updated when it starts and when it finishes, by the "statuses" follower.
-- Derived from the event log and the forge's answers; losing a row only means the next
-- update of that run creates a new check run.
CREATE TABLE sched_checks (
	run_id   TEXT   PRIMARY KEY,
	check_id BIGINT NOT NULL
);
