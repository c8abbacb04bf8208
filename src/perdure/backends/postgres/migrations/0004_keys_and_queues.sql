-- Business keys, queues with flow control, priorities and deduplication keys.
ALTER TABLE perdure_runs
    ADD COLUMN key TEXT,
    ADD COLUMN queue TEXT NOT NULL DEFAULT 'default',
    ADD COLUMN priority INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN dedup_key TEXT,
    -- Set while the run waits for a place in its queue: when it may be admitted.
    ADD COLUMN ready_at DOUBLE PRECISION,
    ADD COLUMN admitted_at DOUBLE PRECISION;
-- Runs from before queues had no turn to wait: they count as admitted when created.
-- Before the indexes exist, so that these updates stay HOT.
UPDATE perdure_runs SET admitted_at = created_at;
-- Listing by key, newest first (the list cursor's order).
CREATE INDEX perdure_runs_key ON perdure_runs (key, created_at, id) WHERE key IS NOT NULL;
-- Each queue's waiting runs in the order it admits them.
CREATE INDEX perdure_runs_waiting ON perdure_runs (queue, priority DESC, ready_at, id)
    WHERE ready_at IS NOT NULL;
-- Recent admissions, for rate limits.
CREATE INDEX perdure_runs_admitted ON perdure_runs (queue, admitted_at);
-- The places taken in each queue: admitted runs that have not ended.
CREATE INDEX perdure_runs_occupying ON perdure_runs (queue, key)
    WHERE admitted_at IS NOT NULL AND status IN ('pending', 'running', 'paused', 'held');
-- No two unfinished runs of a queue share a dedup key, whoever starts them: the
-- backend recognizes a breach by this index's name.
CREATE UNIQUE INDEX perdure_runs_dedup ON perdure_runs (queue, dedup_key)
    WHERE dedup_key IS NOT NULL AND status IN ('pending', 'running', 'paused', 'held');
