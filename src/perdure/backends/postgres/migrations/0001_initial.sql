-- Run with search_path set to perdure's schema: every name below lives in it.

-- Runs: one row per run; the lease columns fence every write a worker makes. Updated
-- often (leases, journal length), so pages keep room for HOT updates.
CREATE TABLE perdure_runs (
    id           TEXT COLLATE "C" PRIMARY KEY,  -- byte order: the list cursor's order
    workflow     TEXT NOT NULL,
    status       TEXT NOT NULL
                 CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled', 'held')),
    input        BYTEA NOT NULL,
    result       BYTEA,
    error        BYTEA,
    parent_id    TEXT COLLATE "C",
    parent_pos   INTEGER NOT NULL DEFAULT -1,
    generation   INTEGER NOT NULL DEFAULT 0,
    journal_len  INTEGER NOT NULL DEFAULT 0,
    created_at   DOUBLE PRECISION NOT NULL,  -- seconds since the epoch, as everywhere
    started_at   DOUBLE PRECISION,
    updated_at   DOUBLE PRECISION NOT NULL,
    finished_at  DOUBLE PRECISION,
    wake_at      DOUBLE PRECISION,           -- when the run next needs a worker; NULL: nothing to do
    owner        TEXT,
    lease_token  BIGINT NOT NULL DEFAULT 0,
    lease_until  DOUBLE PRECISION,
    mailbox      BIGINT NOT NULL DEFAULT 0,  -- bumped by every delivery from outside
    recoveries   INTEGER NOT NULL DEFAULT 0
) WITH (fillfactor = 80);
CREATE INDEX perdure_runs_wake ON perdure_runs (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX perdure_runs_created ON perdure_runs (created_at, id);
CREATE INDEX perdure_runs_parent ON perdure_runs (parent_id) WHERE parent_id IS NOT NULL;

-- The journal: what each run did, in order; (run_id, seq) makes double records impossible.
CREATE TABLE perdure_journal (
    run_id   TEXT COLLATE "C" NOT NULL,
    seq      INTEGER NOT NULL,
    pos      INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    name     TEXT NOT NULL,
    payload  BYTEA,
    at       DOUBLE PRECISION NOT NULL,
    attempt  INTEGER NOT NULL DEFAULT 0,
    failed   BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (run_id, seq)
);

-- The inbox: what happened to a run that it has not consumed yet.
CREATE TABLE perdure_inbox (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      TEXT COLLATE "C" NOT NULL,
    kind        TEXT NOT NULL,
    pos         INTEGER NOT NULL DEFAULT -1,
    topic       TEXT,
    payload     BYTEA,
    key         TEXT,
    visible_at  DOUBLE PRECISION NOT NULL,
    consumed    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE UNIQUE INDEX perdure_inbox_key ON perdure_inbox (run_id, key) WHERE key IS NOT NULL;
CREATE INDEX perdure_inbox_due ON perdure_inbox (run_id, id) WHERE NOT consumed;

-- Events: the last value a run set for each key.
CREATE TABLE perdure_events (
    run_id  TEXT COLLATE "C" NOT NULL,
    key     TEXT NOT NULL,
    value   BYTEA,
    PRIMARY KEY (run_id, key)
);
