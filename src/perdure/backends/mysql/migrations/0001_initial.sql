-- Every table name carries the store's prefix ({prefix} below, perdure_ by default), so
-- that perdure can live in an application's database. MySQL commits each CREATE at
-- once: IF NOT EXISTS lets an interrupted migration be run again.
--
-- Run ids, workflow names and owners are VARBINARY (UTF-8 bytes): compared byte for
-- byte, with no collation folding case or padding trailing spaces, and sorted as
-- Python sorts strings. Payloads are LONGBLOB; times are DOUBLE seconds since the epoch.

-- Runs: one row per run; the lease columns fence every write a worker makes.
CREATE TABLE IF NOT EXISTS {prefix}runs (
    id           VARBINARY(3000) NOT NULL,
    workflow     VARBINARY(1024) NOT NULL,
    status       VARCHAR(16) CHARACTER SET ascii NOT NULL,
    input        LONGBLOB NOT NULL,
    result       LONGBLOB,
    error        LONGBLOB,
    parent_id    VARBINARY(3000),
    parent_pos   INT NOT NULL DEFAULT -1,
    generation   INT NOT NULL DEFAULT 0,
    journal_len  INT NOT NULL DEFAULT 0,
    created_at   DOUBLE NOT NULL,
    started_at   DOUBLE,
    updated_at   DOUBLE NOT NULL,
    finished_at  DOUBLE,
    wake_at      DOUBLE,             -- when the run next needs a worker; NULL: nothing to do
    owner        VARBINARY(1024),
    lease_token  BIGINT NOT NULL DEFAULT 0,
    lease_until  DOUBLE,
    mailbox      BIGINT NOT NULL DEFAULT 0,  -- bumped by every delivery from outside
    recoveries   INT NOT NULL DEFAULT 0,
    PRIMARY KEY (id),
    KEY runs_wake (wake_at, created_at),   -- claims walk it in wake order
    KEY runs_created (created_at, id),     -- list pages
    KEY runs_parent (parent_id),
    KEY runs_finished (finished_at),       -- retention: ended runs by age
    -- Unnamed: MySQL wants CHECK names unique in the whole database, not the table.
    CHECK (status IN (
        'pending', 'running', 'completed', 'failed', 'cancelled', 'held',
        'paused', 'terminated', 'dead_letter'
    ))
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC DEFAULT CHARSET = utf8mb4;

-- The journal: what each run did, in order; (run_id, seq) makes double records impossible.
CREATE TABLE IF NOT EXISTS {prefix}journal (
    run_id   VARBINARY(3000) NOT NULL,
    seq      INT NOT NULL,
    pos      INT NOT NULL,
    kind     VARCHAR(16) CHARACTER SET ascii NOT NULL,
    name     TEXT NOT NULL,
    payload  LONGBLOB,
    at       DOUBLE NOT NULL,
    attempt  INT NOT NULL DEFAULT 0,
    failed   BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (run_id, seq)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC DEFAULT CHARSET = utf8mb4;

-- The inbox: what happened to a run that it has not consumed yet. A key is unique per
-- run through its SHA-256 (key_hash), so that keys of any length are kept whole.
CREATE TABLE IF NOT EXISTS {prefix}inbox (
    id          BIGINT NOT NULL AUTO_INCREMENT,
    run_id      VARBINARY(3000) NOT NULL,
    kind        VARCHAR(16) CHARACTER SET ascii NOT NULL,
    pos         INT NOT NULL DEFAULT -1,
    topic       TEXT,
    payload     LONGBLOB,
    `key`       TEXT,
    key_hash    BINARY(32),
    visible_at  DOUBLE NOT NULL,
    consumed    BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (id),
    UNIQUE KEY inbox_key (run_id, key_hash),
    KEY inbox_due (run_id, consumed, id)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC DEFAULT CHARSET = utf8mb4;

-- Events: the last value a run set for each key (unique through its SHA-256, as above).
CREATE TABLE IF NOT EXISTS {prefix}events (
    run_id    VARBINARY(3000) NOT NULL,
    key_hash  BINARY(32) NOT NULL,
    `key`     TEXT NOT NULL,
    value     LONGBLOB,
    PRIMARY KEY (run_id, key_hash)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC DEFAULT CHARSET = utf8mb4;
