-- Business keys, queues with admission by turn, priorities and deduplication keys.
--
-- Keys and queue names are at most 200 characters (perdure.queues.check_name), so 800
-- bytes of UTF-8: VARBINARY, compared byte for byte like ids, and short enough for two
-- of them in one index. MySQL has no partial indexes: each index that SQLite and
-- PostgreSQL keep over some rows only is here over a generated column that is NULL on
-- every other row, and the statements ask for that column.

-- One row per queue that admits runs by turn: an admission locks its queue's row, so
-- admissions to one queue run one at a time, whatever process makes them.
CREATE TABLE IF NOT EXISTS {prefix}queues (
    name  VARBINARY(800) NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC DEFAULT CHARSET = utf8mb4;

-- One statement, so that a crash leaves all of it or none of it (run again, it stops
-- at "duplicate column", which the runner skips).
ALTER TABLE {prefix}runs
    ADD COLUMN `key`        VARBINARY(800),
    ADD COLUMN queue        VARBINARY(800) NOT NULL DEFAULT 'default',
    ADD COLUMN priority     INT NOT NULL DEFAULT 0,
    ADD COLUMN dedup_key    VARBINARY(800),
    -- Set while the run waits for a place in its queue: when it may be admitted.
    ADD COLUMN ready_at     DOUBLE,
    ADD COLUMN admitted_at  DOUBLE,
    -- The queue a pending run waits in for admission.
    ADD COLUMN waiting_in   VARBINARY(800) AS (
        IF(ready_at IS NOT NULL AND status = 'pending', queue, NULL)) VIRTUAL,
    -- The queue whose place an admitted run holds until it ends.
    ADD COLUMN occupies     VARBINARY(800) AS (
        IF(admitted_at IS NOT NULL AND status IN ('pending', 'running', 'paused', 'held'),
           queue, NULL)) VIRTUAL,
    -- The dedup key an unfinished run holds in its queue.
    ADD COLUMN dedup_held   VARBINARY(800) AS (
        IF(status IN ('pending', 'running', 'paused', 'held'), dedup_key, NULL)) VIRTUAL,
    ADD KEY runs_key (`key`, created_at),
    -- An admission sorts its queue's waiting runs (their order ends in the id, too long
    -- for MariaDB to extend this index with): with the key in it, that reads no rows.
    ADD KEY runs_waiting (waiting_in, priority DESC, ready_at, `key`),
    ADD KEY runs_admitted (queue, admitted_at),
    ADD KEY runs_occupying (occupies, `key`),
    ADD UNIQUE KEY runs_dedup (queue, dedup_held);

-- Runs made before queues were let in when they were made.
UPDATE {prefix}runs SET admitted_at = created_at;
