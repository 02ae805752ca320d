-- +goose Up
-- The W3C trace context (traceparent, tracestate) of the request that accepted a delivery,
-- as JSON, '' while tracing is off: the forwarder publishes the message with it, so the run
-- stays one trace across the outbox (intake.go; docs/adr/0029-traces.md).
ALTER TABLE gw_outbox ADD COLUMN trace_context TEXT NOT NULL DEFAULT '';
