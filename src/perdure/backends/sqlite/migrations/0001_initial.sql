-- Runs: one row per run; the lease columns fence every write a worker makes.
CREATE TABLE perdure_runs (
    id           TEXT PRIMARY KEY,
    workflow     TEXT NOT NULL,
    status       TEXT NOT NULL,
    input        BLOB NOT NULL,
    result       BLOB,
    error        BLOB,
    parent_id    TEXT,
    parent_pos   INTEGER NOT NULL DEFAULT -1,
    generation   INTEGER NOT NULL DEFAULT 0,
    journal_len  INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,
    started_at   REAL,
    updated_at   REAL NOT NULL,
    finished_at  REAL,
    wake_at      REAL,              -- when the run next needs a worker; NULL: nothing to do
    owner        TEXT,
    lease_token  INTEGER NOT NULL DEFAULT 0,
    lease_until  REAL,
    mailbox      INTEGER NOT NULL DEFAULT 0,   -- bumped by every delivery from outside
    recoveries   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX perdure_runs_wake ON perdure_runs (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX perdure_runs_created ON perdure_runs (created_at, id);
CREATE INDEX perdure_runs_parent ON perdure_runs (parent_id) WHERE parent_id IS NOT NULL;

-- The journal: what each run did, in order; (run_id, seq) makes double records impossible.
CREATE TABLE perdure_journal (
    run_id   TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    pos      INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    name     TEXT NOT NULL,
    payload  BLOB,
    at       REAL NOT NULL,
    attempt  INTEGER NOT NULL DEFAULT 0,
    failed   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- The inbox: what happened to a run that it has not consumed yet.
CREATE TABLE perdure_inbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    pos         INTEGER NOT NULL DEFAULT -1,
    topic       TEXT,
    payload     BLOB,
    key         TEXT,
    visible_at  REAL NOT NULL,
    consumed    INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX perdure_inbox_key ON perdure_inbox (run_id, key) WHERE key IS NOT NULL;
CREATE INDEX perdure_inbox_due ON perdure_inbox (run_id, consumed, visible_at);

-- Events: the last value a run set for each key.
CREATE TABLE perdure_events (
    run_id  TEXT NOT NULL,
    key     TEXT NOT NULL,
    value   BLOB,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
