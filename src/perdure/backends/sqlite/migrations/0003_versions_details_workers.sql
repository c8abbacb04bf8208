-- Runs pinned to a code version, step details in the journal, and the worker registry.
ALTER TABLE perdure_runs ADD COLUMN version TEXT;
ALTER TABLE perdure_journal ADD COLUMN detail BLOB;
CREATE TABLE perdure_workers (
    id       TEXT PRIMARY KEY,
    seen_at  REAL NOT NULL,
    info     BLOB NOT NULL
);
