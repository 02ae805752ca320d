-- +goose Up
-- Content-addressed store of the large payloads runs refer to (the pipeline file as read at
-- the commit): events carry the SHA-256 and the size, never the bytes, so every event stays
-- far below the bus's message limit (docs/architecture.md, "Event size"). A blob is written
-- in the transaction that records the first event referring to it, so no event names a blob
-- that is not there; identical files are stored once. Part of the record, like the events:
-- never derived, never deleted while an event may refer to it.
CREATE TABLE sched_blobs (
	sha256     TEXT   PRIMARY KEY,
	size       BIGINT NOT NULL,
	data       BLOB   NOT NULL,
	created_at BIGINT NOT NULL
);
