"""The PostgreSQL backend's SQL: every statement it runs, in one place."""

from __future__ import annotations

import hashlib

from ...records import InboxKind, QueueLimits, RunStatus
from ..rules import (
    CARRIED_OVER,
    ITEM_COLUMNS,
    JOURNAL_COLUMNS,
    NEW_RUN_COLUMNS,
    RUN_COLUMNS,
    UNFINISHED_SQL,
    waiting_runs_sql,
)

ACTIVE = "('pending', 'running')"
SCHEDULED = "(" + ", ".join(f"'{k.value}'" for k in InboxKind if k.scheduled) + ")"
KEPT = "(" + ", ".join(f"'{k.value}'" for k in CARRIED_OVER) + ")"
# The unique index that keeps a queue's dedup keys apart (see migration 0004).
DEDUP_INDEX = "perdure_runs_dedup"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Statements:
    """Every statement the backend runs, with the schema's table names filled in once
    (a constant text per statement lets psycopg prepare it on each connection)."""

    def __init__(self, schema: str) -> None:
        s = quote(schema)
        runs, journal, inbox, events = (
            f"{s}.perdure_{name}" for name in ("runs", "journal", "inbox", "events")
        )
        self.runs = runs
        returning = ", ".join(f"r.{c.strip()}" for c in RUN_COLUMNS.split(","))
        self.get_run = f"SELECT {RUN_COLUMNS} FROM {runs} WHERE id = %s"
        self.list_runs = f"SELECT {RUN_COLUMNS} FROM {runs} WHERE {{where}} "
        self.list_runs += "ORDER BY created_at DESC, id DESC LIMIT %s"
        self.count_runs = f"SELECT status, COUNT(*) FROM {runs} WHERE {{where}} GROUP BY status"
        self.insert_run = (
            f"INSERT INTO {runs} (status, {NEW_RUN_COLUMNS}) "
            "VALUES ('pending', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            # Only the id: a breach of the dedup index is an error, told apart by name.
            f"ON CONFLICT (id) DO NOTHING RETURNING {RUN_COLUMNS}"
        )
        # A start alone: the insert and the wake-up of other workers in one statement
        # (pg_notify runs for the row inserted; it is sent when the statement commits).
        self.insert_run_notify = (
            f"WITH r AS (INSERT INTO {runs} (status, {NEW_RUN_COLUMNS}) "
            "VALUES ('pending', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            f"ON CONFLICT (id) DO NOTHING RETURNING {RUN_COLUMNS}) "
            "SELECT r.*, pg_notify(%s, '') FROM r"
        )
        self.dedup_holder = (
            f"SELECT id FROM {runs} WHERE queue = %s AND dedup_key = %s "
            f"AND status IN {UNFINISHED_SQL}"
        )
        self.lock_run = f"SELECT status, owner FROM {runs} WHERE id = %s FOR UPDATE"
        # Rows locked in id order, so that two transactions that both write several
        # runs wait for each other at most once, never in a cycle.
        self.lock_runs = f"SELECT id FROM {runs} WHERE id = ANY(%s::text[]) ORDER BY id FOR UPDATE"
        self.parents = (
            f"SELECT DISTINCT parent_id FROM {runs} "
            "WHERE id = ANY(%s::text[]) AND parent_id IS NOT NULL"
        )
        due = (
            f"wake_at <= %s AND status IN {ACTIVE} AND (owner IS NULL OR lease_until < %s) "
            "AND workflow = ANY(%s::text[]) "
            "AND (%s::text IS NULL OR version IS NULL OR version = %s::text)"
        )
        # Claims of every queue, and of some (the queues' list one parameter more).
        self.claim = self._claim(due, returning)
        self.claim_on = self._claim(f"{due} AND queue = ANY(%s::text[])", returning)
        self.extend = (
            f"WITH held AS (SELECT r.id FROM {runs} r "
            "JOIN unnest(%s::text[], %s::bigint[]) AS l(id, token) ON r.id = l.id "
            "WHERE r.owner = %s AND r.lease_token = l.token ORDER BY r.id FOR UPDATE OF r) "
            f"UPDATE {runs} r SET lease_until = %s FROM held WHERE r.id = held.id "
            "RETURNING r.id, r.mailbox"
        )
        self.release = (
            f"UPDATE {runs} SET owner = NULL, lease_until = NULL, updated_at = %s, "
            f"wake_at = CASE WHEN status IN {ACTIVE} THEN %s::float8 ELSE NULL END "
            "WHERE id = %s AND owner = %s AND lease_token = %s"
        )
        self.notify_pending = f"UPDATE {runs} SET mailbox = mailbox + 1 WHERE id = %s"
        self.notify_running = (
            f"UPDATE {runs} SET mailbox = mailbox + 1, "
            "wake_at = LEAST(wake_at, %s::float8) WHERE id = %s"
        )
        self.next_wake = (
            "SELECT MIN(CASE WHEN owner IS NULL THEN wake_at ELSE lease_until END) "
            f"FROM {runs} WHERE wake_at IS NOT NULL AND status IN {ACTIVE}"
        )
        self.mailboxes = f"SELECT id, mailbox FROM {runs} WHERE id = ANY(%s::text[])"
        self.fence = (
            f"UPDATE {runs} r SET journal_len = r.journal_len + f.n, updated_at = f.now, "
            # Progress: the worker deaths so far were not this run's doing.
            "recoveries = CASE WHEN f.n > 0 THEN 0 ELSE r.recoveries END, "
            "lease_until = f.lease_until FROM unnest(%s::text[], %s::text[], %s::bigint[], "
            "%s::int[], %s::int[], %s::float8[], %s::float8[]) "
            "AS f(id, owner, token, base, n, now, lease_until) "
            "WHERE r.id = f.id AND r.owner = f.owner AND r.lease_token = f.token "
            "AND (f.base IS NULL OR r.journal_len = f.base) "
            "RETURNING r.id, r.mailbox, r.generation"
        )
        self.finish = (
            f"UPDATE {runs} r SET status = f.status, result = f.result, error = f.error, "
            "finished_at = f.now, updated_at = f.now, owner = NULL, lease_until = NULL, "
            "wake_at = NULL FROM unnest(%s::text[], %s::text[], %s::bytea[], %s::bytea[], "
            "%s::float8[]) AS f(id, status, result, error, now) WHERE r.id = f.id "
            f"RETURNING {returning}"
        )
        self.hold = (
            f"UPDATE {runs} SET status = 'held', error = %s, owner = NULL, "
            "lease_until = NULL, wake_at = NULL WHERE id = %s"
        )
        self.continue_run = (
            f"UPDATE {runs} SET generation = generation + 1, journal_len = 0, "
            "input = COALESCE(%s, input), owner = NULL, lease_until = NULL, wake_at = %s, "
            "started_at = %s WHERE id = %s"  # the new generation's clock starts now
        )
        self.park = (
            f"UPDATE {runs} r SET owner = NULL, lease_until = NULL, wake_at = p.wake "
            "FROM unnest(%s::text[], %s::float8[]) AS p(id, wake) WHERE r.id = p.id"
        )

        self.read_journal = (
            f"SELECT {JOURNAL_COLUMNS} FROM {journal} WHERE run_id = %s ORDER BY seq"
        )
        self.append_journal = (
            f"INSERT INTO {journal} (run_id, {JOURNAL_COLUMNS}) SELECT * FROM unnest("
            "%s::text[], %s::int[], %s::int[], %s::text[], %s::text[], %s::bytea[], "
            "%s::float8[], %s::int[], %s::bool[], %s::bytea[])"
        )
        self.clear_journal = f"DELETE FROM {journal} WHERE run_id = %s"
        self.truncate_journal = f"DELETE FROM {journal} WHERE run_id = %s AND seq >= %s"
        self.set_journal_len = f"UPDATE {runs} SET journal_len = %s WHERE id = %s"

        # Operators' changes.
        self.fence_off = (
            f"UPDATE {runs} SET owner = NULL, lease_until = NULL, "
            "lease_token = lease_token + 1 WHERE id = %s"
        )
        self.forget_consumed = f"DELETE FROM {inbox} WHERE run_id = %s AND consumed"
        self.bump_mailbox = (
            f"UPDATE {runs} SET journal_len = %s, mailbox = mailbox + %s, updated_at = %s "
            "WHERE id = %s"
        )
        self.reopen = (
            f"UPDATE {runs} SET status = %s, result = NULL, error = NULL, finished_at = NULL, "
            "recoveries = CASE WHEN %s THEN 0 ELSE recoveries END, "
            # A run still waiting for its queue stays queued: only admission makes it due.
            "wake_at = CASE WHEN %s AND ready_at IS NULL THEN %s::float8 ELSE wake_at END "
            "WHERE id = %s"
        )
        ended = "(" + ", ".join(f"'{s.value}'" for s in RunStatus if s.is_terminal) + ")"
        self.purgeable = (
            f"SELECT id FROM {runs} WHERE status IN {ended} AND finished_at < %s "
            "AND (%s::text IS NULL OR id = %s) ORDER BY finished_at LIMIT %s FOR UPDATE SKIP LOCKED"
        )
        self.purge = [
            f"DELETE FROM {table} WHERE run_id = ANY(%s::text[])"
            for table in (journal, inbox, events)
        ] + [f"DELETE FROM {runs} WHERE id = ANY(%s::text[])"]

        visible = f"NOT consumed AND (visible_at <= %s OR kind NOT IN {SCHEDULED})"
        self.due = f"SELECT {ITEM_COLUMNS} FROM {inbox} WHERE run_id = %s AND {visible} ORDER BY id"
        self.due_many = (
            f"SELECT {ITEM_COLUMNS} FROM {inbox} WHERE run_id = ANY(%s::text[]) AND {visible} "
            "ORDER BY id"
        )
        self.pending = (
            f"SELECT {ITEM_COLUMNS} FROM {inbox} "
            "WHERE run_id = ANY(%s::text[]) AND NOT consumed AND kind <> 'signal'"
        )
        self.add_inbox = (
            f"INSERT INTO {inbox} (run_id, kind, pos, topic, payload, key, visible_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id"
        )
        # In array order, so the ids follow it; a key already used is skipped.
        self.add_inbox_many = (
            f"INSERT INTO {inbox} (run_id, kind, pos, topic, payload, key, visible_at) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::int[], %s::text[], %s::bytea[], "
            "%s::text[], %s::float8[]) ON CONFLICT DO NOTHING"
        )
        self.consume = (
            f"UPDATE {inbox} i SET consumed = TRUE FROM unnest(%s::text[], %s::bigint[]) "
            "AS c(run_id, id) WHERE i.id = c.id AND i.run_id = c.run_id"
        )
        self.cancel_timers = (
            f"DELETE FROM {inbox} i USING unnest(%s::text[], %s::text[]) AS t(run_id, key) "
            "WHERE i.run_id = t.run_id AND i.key = t.key AND NOT i.consumed"
        )
        self.clear_inbox = (
            f"DELETE FROM {inbox} WHERE run_id = %s AND NOT (NOT consumed AND kind IN {KEPT})"
        )

        # Wake-ups for workers in other processes: news from outside (starts,
        # messages) is announced on a channel of this schema's own.
        self.channel = "perdure_wake_" + hashlib.sha1(schema.encode()).hexdigest()[:16]
        self.notify = f"NOTIFY {self.channel}"
        self.listen = f"LISTEN {self.channel}"

        # Queues.
        self.any_waiting = (
            f"SELECT 1 FROM {runs} WHERE queue = %s AND ready_at IS NOT NULL "
            "AND ready_at <= %s AND status = 'pending' LIMIT 1"
        )
        self.occupying = (
            f"SELECT key, COUNT(*) FROM {runs} WHERE queue = %s "
            f"AND admitted_at IS NOT NULL AND status IN {UNFINISHED_SQL} GROUP BY key"
        )
        self.admitted_since = f"SELECT COUNT(*) FROM {runs} WHERE queue = %s AND admitted_at > %s"
        # Locked in id order, as every writer of several runs does; a run cancelled or
        # paused since it was picked is left waiting.
        self.admit = (
            f"WITH picked AS (SELECT id FROM {runs} WHERE id = ANY(%s::text[]) "
            "AND ready_at IS NOT NULL AND status = 'pending' ORDER BY id FOR UPDATE) "
            f"UPDATE {runs} r SET ready_at = NULL, admitted_at = %s, wake_at = %s, "
            "updated_at = %s FROM picked WHERE r.id = picked.id RETURNING r.id"
        )

        workers = f"{s}.perdure_workers"
        self.save_worker = (
            f"INSERT INTO {workers} (id, seen_at, info) VALUES (%s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at, info = EXCLUDED.info"
        )
        self.list_workers = (
            f"SELECT id, seen_at, info FROM {workers} WHERE seen_at > %s ORDER BY id"
        )
        self.forget_workers = (
            f"DELETE FROM {workers} WHERE CASE WHEN %s::text IS NULL THEN seen_at < %s "
            "ELSE id = %s::text END"
        )

        self.get_event = f"SELECT value FROM {events} WHERE run_id = %s AND key = %s"
        self.set_events = (
            f"INSERT INTO {events} (run_id, key, value) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::bytea[]) "
            "ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value"
        )

    def _claim(self, due: str, returning: str) -> str:
        """The claim of the runs that are due, oldest wake-up first."""
        return (
            f"WITH due AS (SELECT id FROM {self.runs} WHERE {due} "
            "ORDER BY wake_at, created_at, id LIMIT %s FOR UPDATE SKIP LOCKED) "
            f"UPDATE {self.runs} r SET owner = %s, lease_token = r.lease_token + 1, "
            "lease_until = %s, started_at = COALESCE(r.started_at, %s), status = 'running', "
            "updated_at = %s, recoveries = r.recoveries + (r.owner IS NOT NULL)::int "
            f"FROM due WHERE r.id = due.id RETURNING {returning}"
        )

    def waiting(self, queue: QueueLimits) -> str:
        """The queue's next runs to admit: one text with ``per_key``, one without."""
        return waiting_runs_sql(queue, self.runs, "%s")
