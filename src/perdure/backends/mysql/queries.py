"""The MySQL backend's SQL: every statement it runs, in one place.

MySQL has no arrays to bind, so a statement over several rows is written for the
number of rows it gets: ``IN`` lists of placeholders, and rows of values joined as a
derived table (``SELECT %s AS a, %s AS b UNION ALL SELECT %s, %s ...``), which both
MySQL and MariaDB accept where their table value constructors differ.
"""

from __future__ import annotations

import functools

from ...records import InboxKind, RunStatus
from ..rules import CARRIED_OVER, ITEM_COLUMNS, JOURNAL_COLUMNS, RUN_COLUMNS

ACTIVE = "('pending', 'running')"
SCHEDULED = "(" + ", ".join(f"'{k.value}'" for k in InboxKind if k.scheduled) + ")"
KEPT = "(" + ", ".join(f"'{k.value}'" for k in CARRIED_OVER) + ")"
ENDED = "(" + ", ".join(f"'{s.value}'" for s in RunStatus if s.is_terminal) + ")"

# The state of a run a checkpoint is fenced against, and what it needs to go on.
STATE_COLUMNS = "id, owner, lease_token, journal_len, mailbox, generation, parent_id"


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def columns(names: str, table: str = "") -> str:
    """A column list with every name quoted (``key`` is a reserved word); expressions
    (``ready_at IS NOT NULL``) are left as they are."""
    return ", ".join(
        f"{table}{quote(c.strip())}" if c.strip().isidentifier() else c.strip()
        for c in names.split(",")
    )


def marks(n: int) -> str:
    """``%s, %s, ...``: n placeholders."""
    return ", ".join(["%s"] * n)


def pairs(n: int) -> str:
    """``(%s, %s), (%s, %s), ...``: n row constructors of two."""
    return ", ".join(["(%s, %s)"] * n)


def rows_of(names: tuple[str, ...], n: int) -> str:
    """A derived table of n rows with the given column names."""
    first = "SELECT " + ", ".join(f"%s AS {name}" for name in names)
    rest = " UNION ALL SELECT " + marks(len(names))
    return f"({first}{rest * (n - 1)})"


class Statements:
    """Every statement the backend runs, with the store's table names filled in once;
    statements over a number of rows are made (and kept) per number."""

    def __init__(self, prefix: str) -> None:
        (
            self.runs,
            self.journal,
            self.inbox,
            self.events,
            self.workers,
            self.queues,
            self.versions,
        ) = (
            quote(f"{prefix}{name}")
            for name in ("runs", "journal", "inbox", "events", "workers", "queues", "schema")
        )
        runs, journal, inbox, events = self.runs, self.journal, self.inbox, self.events
        self.run_columns = columns(RUN_COLUMNS)
        self.item_columns = columns(ITEM_COLUMNS)
        self.journal_columns = columns(JOURNAL_COLUMNS)

        self.get_run = f"SELECT {self.run_columns} FROM {runs} WHERE id = %s"
        self.list_runs = f"SELECT {self.run_columns} FROM {runs} WHERE {{where}} "
        self.list_runs += "ORDER BY created_at DESC, id DESC LIMIT %s"
        self.count_runs = f"SELECT status, COUNT(*) FROM {runs} WHERE {{where}} GROUP BY status"
        # A run that exists is left as it is (the no-op update only locks it), and so is
        # an unfinished run holding the new run's dedup key: nothing is inserted then.
        self.insert_run = (
            f"INSERT INTO {runs} (id, workflow, status, input, parent_id, parent_pos, "
            "created_at, updated_at, wake_at, version, `key`, queue, priority, dedup_key, "
            "ready_at, admitted_at) "
            "VALUES (%s, %s, 'pending', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON DUPLICATE KEY UPDATE id = id"
        )
        self.dedup_holder = f"SELECT id FROM {runs} WHERE queue = %s AND dedup_held = %s"
        self.lock_run = f"SELECT status, owner FROM {runs} WHERE id = %s FOR UPDATE"
        self.release = (
            f"UPDATE {runs} SET owner = NULL, lease_until = NULL, updated_at = %s, "
            f"wake_at = CASE WHEN status IN {ACTIVE} THEN %s ELSE NULL END "
            "WHERE id = %s AND owner = %s AND lease_token = %s"
        )
        self.notify_pending = f"UPDATE {runs} SET mailbox = mailbox + 1 WHERE id = %s"
        # LEAST() is NULL when either side is: spelled out instead.
        self.notify_running = (
            f"UPDATE {runs} SET mailbox = mailbox + 1, wake_at = CASE "
            "WHEN wake_at IS NULL OR wake_at > %s THEN %s ELSE wake_at END WHERE id = %s"
        )
        self.next_wake = (
            "SELECT MIN(CASE WHEN owner IS NULL THEN wake_at ELSE lease_until END) "
            f"FROM {runs} WHERE wake_at IS NOT NULL AND status IN {ACTIVE}"
        )
        self.finish_one = (
            f"UPDATE {runs} SET status = %s, result = %s, error = %s, finished_at = %s, "
            "updated_at = %s, owner = NULL, lease_until = NULL, wake_at = NULL WHERE id = %s"
        )
        self.hold = (
            f"UPDATE {runs} SET status = 'held', error = %s, owner = NULL, "
            "lease_until = NULL, wake_at = NULL WHERE id = %s"
        )
        # MySQL assigns left to right, each assignment seeing the ones before it.
        self.continue_run = (
            f"UPDATE {runs} SET generation = generation + 1, journal_len = 0, "
            "input = COALESCE(%s, input), owner = NULL, lease_until = NULL, wake_at = %s, "
            "started_at = %s WHERE id = %s"  # the new generation's clock starts now
        )

        self.read_journal = (
            f"SELECT {self.journal_columns} FROM {journal} WHERE run_id = %s ORDER BY seq"
        )
        self.append_journal = (
            f"INSERT INTO {journal} (run_id, {self.journal_columns}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        )
        self.clear_journal = f"DELETE FROM {journal} WHERE run_id = %s"
        self.truncate_journal = f"DELETE FROM {journal} WHERE run_id = %s AND seq >= %s"
        self.set_journal_len = f"UPDATE {runs} SET journal_len = %s WHERE id = %s"

        # Operators' changes.
        self.bury = (
            f"UPDATE {runs} SET lease_token = lease_token + 1, recoveries = recoveries + 1 "
            "WHERE id = %s"
        )
        self.fence_off = (
            f"UPDATE {runs} SET owner = NULL, lease_until = NULL, "
            "lease_token = lease_token + 1 WHERE id = %s"
        )
        self.forget_consumed = f"DELETE FROM {inbox} WHERE run_id = %s AND consumed = 1"
        self.bump_mailbox = (
            f"UPDATE {runs} SET journal_len = %s, mailbox = mailbox + %s, updated_at = %s "
            "WHERE id = %s"
        )
        self.reopen = (
            f"UPDATE {runs} SET status = %s, result = NULL, error = NULL, finished_at = NULL, "
            "recoveries = CASE WHEN %s THEN 0 ELSE recoveries END, "
            # A run still waiting for its queue is made due by its admission only.
            "wake_at = CASE WHEN %s AND ready_at IS NULL THEN %s ELSE wake_at END WHERE id = %s"
        )
        self.purgeable = (
            f"SELECT id FROM {runs} WHERE status IN {ENDED} AND finished_at < %s "
            "AND (%s IS NULL OR id = %s) ORDER BY finished_at LIMIT %s FOR UPDATE SKIP LOCKED"
        )

        self.visible = f"consumed = 0 AND (visible_at <= %s OR kind NOT IN {SCHEDULED})"
        self.due = (
            f"SELECT {self.item_columns} FROM {inbox} WHERE run_id = %s AND {self.visible} "
            "ORDER BY id"
        )
        # The key's SHA-256 carries the uniqueness, so that keys of any length are kept
        # whole; a key already used leaves the inbox as it is.
        self.add_inbox = (
            f"INSERT INTO {inbox} (run_id, kind, pos, topic, payload, `key`, key_hash, "
            "visible_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE id = id"
        )
        self.clear_inbox = (
            f"DELETE FROM {inbox} WHERE run_id = %s AND NOT (consumed = 0 AND kind IN {KEPT})"
        )

        self.save_worker = f"REPLACE INTO {self.workers} (id, seen_at, info) VALUES (%s, %s, %s)"
        self.list_workers = (
            f"SELECT id, seen_at, info FROM {self.workers} WHERE seen_at > %s ORDER BY id"
        )
        self.forget_worker = f"DELETE FROM {self.workers} WHERE id = %s"
        self.forget_workers = f"DELETE FROM {self.workers} WHERE seen_at < %s"

        self.get_event = f"SELECT value FROM {events} WHERE run_id = %s AND key_hash = %s"
        self.set_event = (
            f"REPLACE INTO {events} (run_id, key_hash, `key`, value) VALUES (%s, %s, %s, %s)"
        )

        # Admissions. The queue's row, locked until the admission commits, makes the
        # next admission to that queue wait, then count what this one admitted.
        self.lock_queue = (
            f"INSERT INTO {self.queues} (name) VALUES (%s) ON DUPLICATE KEY UPDATE name = name"
        )
        self.any_waiting = f"SELECT 1 FROM {runs} WHERE waiting_in = %s AND ready_at <= %s LIMIT 1"
        self.occupied = f"SELECT `key`, COUNT(*) FROM {runs} WHERE occupies = %s GROUP BY `key`"
        self.admitted_since = f"SELECT COUNT(*) FROM {runs} WHERE queue = %s AND admitted_at > %s"

    # -- statements over n rows -------------------------------------------------------

    @functools.cache  # noqa: B019 - one Statements per backend, a few sizes each
    def lock_state(self, n: int) -> str:
        # Rows locked in id order, so that two transactions that both write several
        # runs wait for each other at most once, never in a cycle.
        return (
            f"SELECT {STATE_COLUMNS} FROM {self.runs} WHERE id IN ({marks(n)}) "
            "ORDER BY id FOR UPDATE"
        )

    @functools.cache  # noqa: B019
    def state(self, n: int) -> str:
        return f"SELECT {STATE_COLUMNS} FROM {self.runs} WHERE id IN ({marks(n)})"

    @functools.cache  # noqa: B019
    def parents(self, n: int) -> str:
        return (
            f"SELECT DISTINCT parent_id FROM {self.runs} "
            f"WHERE id IN ({marks(n)}) AND parent_id IS NOT NULL"
        )

    @functools.cache  # noqa: B019
    def runs_by_id(self, n: int) -> str:
        return f"SELECT {self.run_columns} FROM {self.runs} WHERE id IN ({marks(n)})"

    def _due_runs(self, workflows: int, versioned: bool, queues: int | None) -> str:
        """Runs a worker of these workflows may claim now (params: now, now, the
        workflows, then, if ``versioned``, the worker's version, then the ``queues``
        (None: any queue))."""
        due = (
            f"wake_at <= %s AND status IN {ACTIVE} AND (owner IS NULL OR lease_until < %s) "
            f"AND workflow IN ({marks(workflows)})"
        )
        # A worker of one code version takes runs pinned to it, and runs pinned to none.
        if versioned:
            due += " AND (version IS NULL OR version = %s)"
        if queues is not None:
            due += f" AND queue IN ({marks(queues)})"
        return due

    @functools.cache  # noqa: B019
    def any_due(self, workflows: int, versioned: bool, queues: int | None) -> str:
        due = self._due_runs(workflows, versioned, queues)
        return f"SELECT 1 FROM {self.runs} WHERE {due} LIMIT 1"

    @functools.cache  # noqa: B019
    def claim(self, workflows: int, versioned: bool, queues: int | None) -> str:
        # In wake order along the (wake_at, created_at) index, so that the scan stops
        # after ``limit`` rows instead of locking every due run to sort them.
        return (
            f"SELECT id FROM {self.runs} WHERE {self._due_runs(workflows, versioned, queues)} "
            "ORDER BY wake_at, created_at, id LIMIT %s FOR UPDATE SKIP LOCKED"
        )

    @functools.cache  # noqa: B019
    def dead(self, workflows: int, versioned: bool, queues: int | None) -> str:
        # Runs due for a claim whose workers kept dying on them: dead letters, not claims.
        due = self._due_runs(workflows, versioned, queues)
        return (
            f"SELECT id, recoveries FROM {self.runs} WHERE {due} "
            "AND owner IS NOT NULL AND recoveries >= %s ORDER BY id FOR UPDATE SKIP LOCKED"
        )

    @functools.cache  # noqa: B019
    def waiting(self, per_key: bool) -> str:
        """The runs a queue may admit next, as (id, key) rows in queue order, at most
        ``room`` of them; with ``per_key``, only runs whose key has a place left.
        rules.waiting_runs_sql over this schema, with its params
        (rules.waiting_runs_params): ``key`` quoted, and the queue found through the
        generated columns that stand in for partial indexes."""
        waiting = f"FROM {self.runs} WHERE waiting_in = %s AND ready_at <= %s"
        if not per_key:
            return f"SELECT id, `key` {waiting} ORDER BY priority DESC, ready_at, id LIMIT %s"
        # Each waiting run's turn within its key, against the places its key has left.
        return (
            "SELECT w.id, w.k FROM ("
            "SELECT id, `key` AS k, priority, ready_at, ROW_NUMBER() OVER "
            f"(PARTITION BY `key` ORDER BY priority DESC, ready_at, id) AS turn {waiting}"
            f") w LEFT JOIN (SELECT `key` AS k, COUNT(*) AS n FROM {self.runs} "
            "WHERE occupies = %s AND `key` IS NOT NULL GROUP BY `key`) o ON o.k = w.k "
            "WHERE w.k IS NULL OR w.turn + COALESCE(o.n, 0) <= %s "
            "ORDER BY w.priority DESC, w.ready_at, w.id LIMIT %s"
        )

    @functools.cache  # noqa: B019
    def lock_waiting(self, n: int) -> str:
        # In id order, as every writer of several runs locks them; a run cancelled or
        # paused since it was picked is no longer waiting, and is not admitted.
        return (
            f"SELECT id FROM {self.runs} WHERE id IN ({marks(n)}) AND waiting_in IS NOT NULL "
            "ORDER BY id FOR UPDATE"
        )

    @functools.cache  # noqa: B019
    def admit(self, n: int) -> str:
        return (
            f"UPDATE {self.runs} SET ready_at = NULL, admitted_at = %s, wake_at = %s, "
            f"updated_at = %s WHERE id IN ({marks(n)})"
        )

    @functools.cache  # noqa: B019
    def take(self, n: int) -> str:
        # recoveries first: it reads the owner before the next assignment replaces it.
        return (
            f"UPDATE {self.runs} SET recoveries = recoveries + (owner IS NOT NULL), "
            "owner = %s, lease_token = lease_token + 1, lease_until = %s, "
            "started_at = COALESCE(started_at, %s), status = 'running', updated_at = %s "
            f"WHERE id IN ({marks(n)})"
        )

    @functools.cache  # noqa: B019
    def leases(self, n: int) -> str:
        return (
            f"SELECT id, owner, lease_token, mailbox FROM {self.runs} "
            f"WHERE id IN ({marks(n)}) ORDER BY id FOR UPDATE"
        )

    @functools.cache  # noqa: B019
    def extend(self, n: int) -> str:
        return f"UPDATE {self.runs} SET lease_until = %s WHERE id IN ({marks(n)})"

    @functools.cache  # noqa: B019
    def mailboxes(self, n: int) -> str:
        return f"SELECT id, mailbox FROM {self.runs} WHERE id IN ({marks(n)})"

    @functools.cache  # noqa: B019
    def fence(self, n: int) -> str:
        rows = rows_of(("id", "journal_len", "n", "now", "lease_until"), n)
        return (
            f"UPDATE {self.runs} r JOIN {rows} f ON r.id = f.id SET "
            "r.journal_len = f.journal_len, r.updated_at = f.now, "
            # Progress: the worker deaths so far were not this run's doing.
            "r.recoveries = CASE WHEN f.n > 0 THEN 0 ELSE r.recoveries END, "
            "r.lease_until = f.lease_until"
        )

    @functools.cache  # noqa: B019
    def finish(self, n: int) -> str:
        rows = rows_of(("id", "status", "result", "error", "now"), n)
        return (
            f"UPDATE {self.runs} r JOIN {rows} f ON r.id = f.id SET r.status = f.status, "
            "r.result = f.result, r.error = f.error, r.finished_at = f.now, "
            "r.updated_at = f.now, r.owner = NULL, r.lease_until = NULL, r.wake_at = NULL"
        )

    @functools.cache  # noqa: B019
    def park(self, n: int) -> str:
        rows = rows_of(("id", "wake"), n)
        return (
            f"UPDATE {self.runs} r JOIN {rows} p ON r.id = p.id "
            "SET r.owner = NULL, r.lease_until = NULL, r.wake_at = p.wake"
        )

    @functools.cache  # noqa: B019
    def due_many(self, n: int) -> str:
        return (
            f"SELECT {self.item_columns} FROM {self.inbox} "
            f"WHERE run_id IN ({marks(n)}) AND {self.visible} ORDER BY id"
        )

    @functools.cache  # noqa: B019
    def pending(self, n: int) -> str:
        return (
            f"SELECT {self.item_columns} FROM {self.inbox} "
            f"WHERE run_id IN ({marks(n)}) AND consumed = 0 AND kind <> 'signal'"
        )

    @functools.cache  # noqa: B019
    def consume(self, n: int) -> str:
        # By (id, run) pairs: an id from another run's inbox matches nothing.
        return f"UPDATE {self.inbox} SET consumed = 1 WHERE (id, run_id) IN ({pairs(n)})"

    @functools.cache  # noqa: B019
    def cancel_timers(self, n: int) -> str:
        return f"DELETE FROM {self.inbox} WHERE (run_id, key_hash) IN ({pairs(n)}) AND consumed = 0"

    @functools.cache  # noqa: B019
    def purge(self, n: int) -> list[str]:
        return [
            f"DELETE FROM {table} WHERE run_id IN ({marks(n)})"
            for table in (self.journal, self.inbox, self.events)
        ] + [f"DELETE FROM {self.runs} WHERE id IN ({marks(n)})"]
