-- Business keys, queues with flow control, priorities and deduplication keys.
ALTER TABLE perdure_runs ADD COLUMN key TEXT;
ALTER TABLE perdure_runs ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
ALTER TABLE perdure_runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE perdure_runs ADD COLUMN dedup_key TEXT;
-- Set while the run waits for a place in its queue: when it may be admitted.
ALTER TABLE perdure_runs ADD COLUMN ready_at REAL;
ALTER TABLE perdure_runs ADD COLUMN admitted_at REAL;
UPDATE perdure_runs SET admitted_at = created_at;
CREATE INDEX perdure_runs_key ON perdure_runs (key, created_at) WHERE key IS NOT NULL;
CREATE INDEX perdure_runs_waiting ON perdure_runs (queue, priority DESC, ready_at)
    WHERE ready_at IS NOT NULL;
CREATE INDEX perdure_runs_admitted ON perdure_runs (queue, admitted_at);
-- The places taken in each queue: admitted runs that have not ended.
CREATE INDEX perdure_runs_occupying ON perdure_runs (queue, key)
    WHERE admitted_at IS NOT NULL AND status IN ('pending', 'running', 'paused', 'held');
CREATE UNIQUE INDEX perdure_runs_dedup ON perdure_runs (queue, dedup_key)
    WHERE dedup_key IS NOT NULL AND status IN ('pending', 'running', 'paused', 'held');
