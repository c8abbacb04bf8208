-- Runs pinned to a code version, step details in the journal, and the worker registry.
-- MySQL has no ADD COLUMN IF NOT EXISTS (MariaDB has): a column a crashed run of this
-- migration added already is left as it is (the runner skips "duplicate column").

-- The code version a run is pinned to (NULL: any), compared byte for byte like ids.
ALTER TABLE {prefix}runs ADD COLUMN version VARBINARY(1024);

-- Opaque bytes stored with a journal entry (for steps: when the attempt started, its input).
ALTER TABLE {prefix}journal ADD COLUMN detail LONGBLOB;

-- The worker registry: one row per worker, replaced at each check-in.
CREATE TABLE IF NOT EXISTS {prefix}workers (
    id       VARBINARY(1024) NOT NULL,
    seen_at  DOUBLE NOT NULL,
    info     LONGBLOB NOT NULL,
    PRIMARY KEY (id),
    KEY workers_seen (seen_at)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC DEFAULT CHARSET = utf8mb4;
