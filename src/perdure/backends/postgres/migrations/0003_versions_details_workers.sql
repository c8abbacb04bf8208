-- Runs pinned to a code version, step details in the journal, and the worker registry.
ALTER TABLE perdure_runs ADD COLUMN version TEXT;
ALTER TABLE perdure_journal ADD COLUMN detail BYTEA;
CREATE TABLE perdure_workers (
    id       TEXT COLLATE "C" PRIMARY KEY,
    seen_at  DOUBLE PRECISION NOT NULL,
    info     BYTEA NOT NULL
);
