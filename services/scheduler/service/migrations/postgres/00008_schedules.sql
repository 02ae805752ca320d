-- +goose Up
-- The projects' cron schedules (docs/adr/0029-scheduled-runs.md), in the order they were
-- set. created_at (Unix nanoseconds) bounds the slots a schedule fires: none before it.
-- A slot is claimed by the run it starts (its id derives from the schedule and the slot),
-- so firing needs no table of its own.
CREATE TABLE sched_schedules (
    project_id TEXT NOT NULL,
    position   INTEGER NOT NULL,
    org_id     TEXT NOT NULL,
    cron       TEXT NOT NULL,
    timezone   TEXT NOT NULL,
    ref        TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, position)
);
