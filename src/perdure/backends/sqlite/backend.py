"""SQLite implementation of the backend contract (see ``backends/base.py``)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from ...errors import ConfigurationError, RunDeduplicated, RunNotFound
from ...records import (
    Checkpoint,
    CheckpointResult,
    Claim,
    InboxItem,
    InboxKind,
    JournalEntry,
    NewInboxItem,
    NewRun,
    Outcome,
    QueueLimits,
    RunChange,
    RunFilter,
    RunPage,
    RunRecord,
    RunStatus,
    WorkerRecord,
)
from ..base import Backend, Feature
from ..rules import (
    CARRIED_OVER,
    ITEM_COLUMNS,
    JOURNAL_COLUMNS,
    NEW_RUN_COLUMNS,
    RUN_COLUMNS,
    UNFINISHED_SQL,
    admission_room,
    cancel_error,
    cancels_at_once,
    child_outcome_item,
    dead_letter_error,
    dead_letters,
    deadline_item,
    decode_cursor,
    encode_cursor,
    entry_from_row,
    entry_values,
    item_from_row,
    new_run_values,
    pick_admissions,
    reclaims_dedup_key,
    run_from_row,
    waiting_runs_params,
    waiting_runs_sql,
    wake_after,
)

T = TypeVar("T")

_ACTIVE = ("pending", "running")
_SCHEDULED = ", ".join(f"'{k.value}'" for k in InboxKind if k.scheduled)


class SQLiteBackend(Backend):
    features = Feature.MULTI_PROCESS | Feature.DURABLE

    def __init__(
        self, path: str | Path, *, synchronous: str = "full", busy_timeout: float = 30.0
    ) -> None:
        self.path = str(path)
        self.url = f"sqlite:///{self.path}"
        if synchronous.lower() not in ("full", "normal", "extra", "off"):
            raise ConfigurationError(
                f"synchronous={synchronous!r}: use full (default), normal, extra or off"
            )
        self.synchronous = synchronous.lower()
        self.busy_timeout = busy_timeout
        self._executor: ThreadPoolExecutor | None = None  # the writer's thread
        self._conn: sqlite3.Connection | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._rconn: sqlite3.Connection | None = None
        self._queue: list[tuple[Callable[[sqlite3.Connection], Any], Future[Any]]] = []
        self._flush_scheduled = False
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> SQLiteBackend:
        parts = urlsplit(url)
        path = parts.path
        if parts.netloc:  # sqlite://relative/path.db
            path = parts.netloc + path
        elif path.startswith("/") and not path.startswith("//"):
            path = path[1:]  # sqlite:///perdure.db is relative; sqlite:////abs/x.db absolute
        elif path.startswith("//"):
            path = path[1:]
        if not path:
            raise ConfigurationError(f"no file in {url!r}; write sqlite:///path/to/file.db")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return cls(path, synchronous=query.get("synchronous", "full"))

    # -- plumbing -----------------------------------------------------------------------

    async def open(self) -> None:
        with self._lock:
            if self._executor is not None:
                return
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perdure-sqlite")
            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perdure-sqlite-r")
        await self._call(self._connect)
        await asyncio.wrap_future(self._reader.submit(self._connect_reader))

    def _open_connection(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        return conn

    def _connect(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = self._open_connection()
        self._use_wal(conn)
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        self._conn = conn
        self._migrate(conn)

    def _connect_reader(self) -> None:
        # Reads get a connection (and thread) of their own: in WAL mode they see every
        # committed write without queueing behind the writer's fsyncs.
        conn = self._open_connection()
        conn.execute("PRAGMA query_only = ON")
        self._rconn = conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs it to itself, and the busy handler does not
        # cover that: when several processes open a fresh file at once, try again.
        deadline = time.monotonic() + self.busy_timeout
        mode = "?"
        while True:
            try:
                mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
            if mode == "wal":
                return
            if time.monotonic() > deadline:
                raise ConfigurationError(f"{self.path}: cannot use WAL mode (got {mode})")
            time.sleep(0.02)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        files = sorted(
            (
                f
                for f in resources.files(__package__).joinpath("migrations").iterdir()
                if f.name.endswith(".sql")
            ),
            key=lambda f: f.name,
        )
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS perdure_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT MAX(version) FROM perdure_schema").fetchone()
            current = row[0] or 0
            for f in files:
                version = int(f.name.split("_", 1)[0])
                if version > current:
                    for statement in f.read_text().split(";\n"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute("INSERT INTO perdure_schema (version) VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
            reader, self._reader = self._reader, None
        if executor is None:
            return
        conn, self._conn = self._conn, None
        rconn, self._rconn = self._rconn, None
        if conn is not None:
            await asyncio.wrap_future(executor.submit(conn.close))
        if reader is not None and rconn is not None:
            await asyncio.wrap_future(reader.submit(rconn.close))
        executor.shutdown(wait=True)
        if reader is not None:
            reader.shutdown(wait=True)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        executor = self._executor
        if executor is None:
            await self.open()
            executor = self._executor
            assert executor is not None
        return await asyncio.wrap_future(executor.submit(fn, *args))

    async def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` as one domain transaction. Transactions that queue up while the
        writer is busy are committed together (each in a savepoint of its own, so one
        failing changes nothing of the others): one fsync for the lot."""
        if self._executor is None:
            await self.open()
        executor = self._executor
        assert executor is not None
        done: Future[Any] = Future()
        with self._lock:
            self._queue.append((fn, done))
            schedule = not self._flush_scheduled
            self._flush_scheduled = True
        if schedule:
            executor.submit(self._flush)
        return await asyncio.wrap_future(done)

    def _flush(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
            self._flush_scheduled = False
        # A caller cancelled while queued (a worker stopping) gets nothing done; the
        # others' futures can no longer be cancelled, so each is answered exactly
        # once (setting a cancelled future would raise and strand the rest).
        batch = [(fn, done) for fn, done in batch if done.set_running_or_notify_cancel()]
        if not batch:
            return
        conn = self._conn
        outcomes: list[tuple[Future[Any], Any, BaseException | None]] = []
        try:
            assert conn is not None, "backend is not open"
            conn.execute("BEGIN IMMEDIATE")
            try:
                for fn, done in batch:
                    conn.execute("SAVEPOINT job")
                    try:
                        outcomes.append((done, fn(conn), None))
                    except Exception as exc:
                        conn.execute("ROLLBACK TO job")
                        outcomes.append((done, None, exc))
                    conn.execute("RELEASE job")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except BaseException as exc:
            for _, done in batch:
                done.set_exception(exc)
            return
        # Answer only once the commit is durable.
        for done, result, error in outcomes:
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(result)

    async def _reading(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the read connection."""
        if self._reader is None:
            await self.open()
        reader = self._reader
        assert reader is not None

        def read() -> T:
            conn = self._rconn
            assert conn is not None, "backend is not open"
            return fn(conn)

        return await asyncio.wrap_future(reader.submit(read))

    # -- runs -----------------------------------------------------------------------------

    async def create_run(self, run: NewRun) -> tuple[RunRecord, bool]:
        return await self._transaction(lambda c: self._create(c, run))

    @staticmethod
    def _refuse_taken_dedup_key(c: sqlite3.Connection, queue: str, dedup_key: str | None) -> None:
        """Raise RunDeduplicated if an unfinished run of ``queue`` holds ``dedup_key``."""
        assert dedup_key is not None
        holder = c.execute(
            "SELECT id FROM perdure_runs WHERE queue = ? AND dedup_key = ? "
            f"AND status IN {UNFINISHED_SQL}",
            (queue, dedup_key),
        ).fetchone()
        if holder is not None:
            raise RunDeduplicated(queue, dedup_key, holder[0])

    def _create(self, c: sqlite3.Connection, run: NewRun) -> tuple[RunRecord, bool]:
        start = run.start_at if run.start_at is not None else run.created_at
        if run.dedup_key is not None and self._get(c, run.id) is None:
            # Checked here, under the write lock: OR IGNORE would also swallow a
            # breach of the dedup index.
            self._refuse_taken_dedup_key(c, run.queue, run.dedup_key)
        cur = c.execute(
            f"INSERT OR IGNORE INTO perdure_runs (status, {NEW_RUN_COLUMNS}) "
            "VALUES ('pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            new_run_values(run),
        )
        created = cur.rowcount == 1
        if created and run.timeout is not None:
            self._add_inbox(c, deadline_item(run.id, start, run.timeout))
        if created and run.journal:
            self._append(c, run.id, run.journal)
            c.execute(
                "UPDATE perdure_runs SET journal_len = ? WHERE id = ?", (len(run.journal), run.id)
            )
            c.executemany(
                "INSERT OR REPLACE INTO perdure_events (run_id, key, value) VALUES (?, ?, ?)",
                [(run.id, k, v) for k, v in run.events],
            )
        rec = self._get(c, run.id)
        assert rec is not None
        return rec, created

    def _get(self, c: sqlite3.Connection, run_id: str) -> RunRecord | None:
        row = c.execute(
            f"SELECT {RUN_COLUMNS} FROM perdure_runs WHERE id = ?", (run_id,)
        ).fetchone()
        return run_from_row(row) if row else None

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self._reading(lambda c: self._get(c, run_id))

    @staticmethod
    def _matching(filter: RunFilter) -> tuple[list[str], list[Any]]:
        """The WHERE conditions (and their arguments) of the runs ``filter`` selects."""
        where: list[str] = ["1 = 1"]
        args: list[Any] = []
        for column, value in (
            ("workflow", filter.workflow),
            ("parent_id", filter.parent_id),
            ("key", filter.key),
            ("queue", filter.queue),
            ("status", filter.status.value if filter.status else None),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if filter.created_after is not None:
            where.append("created_at >= ?")
            args.append(filter.created_after)
        if filter.created_before is not None:
            where.append("created_at < ?")
            args.append(filter.created_before)
        return where, args

    async def count_runs(self, filter: RunFilter) -> dict[RunStatus, int]:
        where, args = self._matching(replace(filter, status=None))
        sql = f"SELECT status, COUNT(*) FROM perdure_runs WHERE {' AND '.join(where)} GROUP BY 1"

        def read(c: sqlite3.Connection) -> dict[RunStatus, int]:
            return {RunStatus(s): n for s, n in c.execute(sql, args).fetchall()}

        return await self._reading(read)

    async def list_runs(self, filter: RunFilter, limit: int, cursor: str | None) -> RunPage:
        where, args = self._matching(filter)
        if cursor is not None:
            created_at, run_id = decode_cursor(cursor)
            where.append("(created_at, id) < (?, ?)")
            args.extend([created_at, run_id])
        sql = (
            f"SELECT {RUN_COLUMNS} FROM perdure_runs WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, id DESC LIMIT ?"
        )

        def read(c: sqlite3.Connection) -> RunPage:
            rows = [run_from_row(r) for r in c.execute(sql, (*args, limit + 1)).fetchall()]
            page = rows[:limit]
            more = len(rows) > limit
            return RunPage(page, encode_cursor(page[-1].created_at, page[-1].id) if more else None)

        return await self._reading(read)

    # -- leases ---------------------------------------------------------------------------

    async def claim_runs(
        self,
        owner: str,
        limit: int,
        now: float,
        lease_until: float,
        workflows: Sequence[str],
        max_recoveries: int | None = None,
        version: str | None = None,
        queues: Sequence[str] | None = None,
    ) -> list[Claim]:
        if not workflows or (queues is not None and not queues):
            return []
        names = ",".join("?" * len(workflows))
        on_queues = "" if queues is None else f"AND queue IN ({','.join('?' * len(queues))}) "
        find = (
            f"SELECT id, owner, recoveries FROM perdure_runs WHERE wake_at <= ? "
            f"AND status IN {_ACTIVE} "
            f"AND (owner IS NULL OR lease_until < ?) AND workflow IN ({names}) "
            f"AND (? IS NULL OR version IS NULL OR version = ?) {on_queues}"
            "ORDER BY wake_at LIMIT ?"
        )
        params = (now, now, *workflows, version, version, *(queues or ()), limit)

        # Look (on the read connection) before taking the write lock: most polls find
        # nothing.
        if not await self._reading(lambda c: c.execute(find, params).fetchone()):
            return []
        return await self._transaction(
            lambda w: self._claim(w, find, params, owner, now, lease_until, max_recoveries)
        )

    def _claim(
        self,
        c: sqlite3.Connection,
        find: str,
        params: tuple[Any, ...],
        owner: str,
        now: float,
        lease_until: float,
        max_recoveries: int | None,
    ) -> list[Claim]:
        claims = []
        for run_id, held_by, recoveries in c.execute(find, params).fetchall():
            if dead_letters(recoveries, held_by, max_recoveries):
                c.execute(
                    "UPDATE perdure_runs SET lease_token = lease_token + 1, "
                    "recoveries = recoveries + 1 WHERE id = ?",
                    (run_id,),
                )
                error = dead_letter_error(recoveries)
                self._finish(c, run_id, RunStatus.DEAD_LETTER, None, error, now)
                continue
            row = c.execute(
                "UPDATE perdure_runs SET owner = ?, lease_token = lease_token + 1, "
                "lease_until = ?, started_at = COALESCE(started_at, ?), status = 'running', "
                "updated_at = ?, recoveries = recoveries + (owner IS NOT NULL) "
                f"WHERE id = ? RETURNING {RUN_COLUMNS}",
                (owner, lease_until, now, now, run_id),
            ).fetchone()
            rec = run_from_row(row)
            claims.append(Claim(rec, rec.lease_token, self._due(c, run_id, now)))
        return claims

    def _due(self, c: sqlite3.Connection, run_id: str, now: float) -> list[InboxItem]:
        rows = c.execute(
            f"SELECT {ITEM_COLUMNS} FROM perdure_inbox WHERE run_id = ? AND consumed = 0 "
            f"AND (visible_at <= ? OR kind NOT IN ({_SCHEDULED})) ORDER BY id",
            (run_id, now),
        ).fetchall()
        return [item_from_row(r) for r in rows]

    async def admit_runs(self, queue: QueueLimits, now: float, limit: int = 100) -> list[str]:
        # Look first on the read connection: most calls find nothing waiting.
        waiting = (
            "SELECT 1 FROM perdure_runs WHERE queue = ? AND ready_at IS NOT NULL "
            "AND ready_at <= ? AND status = 'pending' LIMIT 1"
        )
        if not await self._reading(lambda c: c.execute(waiting, (queue.name, now)).fetchone()):
            return []
        return await self._transaction(lambda c: self._admit(c, queue, now, limit))

    def _admit(
        self, c: sqlite3.Connection, queue: QueueLimits, now: float, limit: int
    ) -> list[str]:
        # The write lock (BEGIN IMMEDIATE) serializes admissions across processes.
        by_key = dict(
            c.execute(
                "SELECT key, COUNT(*) FROM perdure_runs WHERE queue = ? "
                f"AND admitted_at IS NOT NULL AND status IN {UNFINISHED_SQL} GROUP BY key",
                (queue.name,),
            ).fetchall()
        )
        recent = 0
        if queue.rate is not None:
            recent = c.execute(
                "SELECT COUNT(*) FROM perdure_runs WHERE queue = ? AND admitted_at > ?",
                (queue.name, now - queue.period),
            ).fetchone()[0]
        room = admission_room(queue, sum(by_key.values()), recent, limit)
        if room == 0:
            return []
        rows = c.execute(
            waiting_runs_sql(queue, "perdure_runs", "?"), waiting_runs_params(queue, now, room)
        ).fetchall()
        picked = pick_admissions(queue, room, by_key, rows)
        c.executemany(
            "UPDATE perdure_runs SET ready_at = NULL, admitted_at = ?, wake_at = ?, "
            "updated_at = ? WHERE id = ?",
            [(now, now, now, run_id) for run_id in picked],
        )
        return picked

    async def extend_leases(
        self, owner: str, leases: dict[str, int], lease_until: float
    ) -> dict[str, int]:
        def extend(c: sqlite3.Connection) -> dict[str, int]:
            held = {}
            for run_id, token in leases.items():
                row = c.execute(
                    "UPDATE perdure_runs SET lease_until = ? WHERE id = ? AND owner = ? "
                    "AND lease_token = ? RETURNING mailbox",
                    (lease_until, run_id, owner, token),
                ).fetchone()
                if row:
                    held[run_id] = row[0]
            return held

        return await self._transaction(extend)

    async def release(self, run_id: str, owner: str, token: int, now: float) -> bool:
        def release(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "UPDATE perdure_runs SET owner = NULL, lease_until = NULL, updated_at = ?, "
                f"wake_at = CASE WHEN status IN {_ACTIVE} THEN ? ELSE NULL END "
                "WHERE id = ? AND owner = ? AND lease_token = ?",
                (now, now, run_id, owner, token),
            )
            return cur.rowcount == 1

        return await self._transaction(release)

    # -- journal and inbox ---------------------------------------------------------------

    async def read_journal(self, run_id: str) -> list[JournalEntry]:
        def read(c: sqlite3.Connection) -> list[JournalEntry]:
            rows = c.execute(
                f"SELECT {JOURNAL_COLUMNS} FROM perdure_journal WHERE run_id = ? ORDER BY seq",
                (run_id,),
            ).fetchall()
            return [entry_from_row(r) for r in rows]

        return await self._reading(read)

    async def read_inbox(self, run_id: str, now: float) -> list[InboxItem]:
        return await self._reading(lambda c: self._due(c, run_id, now))

    def _add_inbox(self, c: sqlite3.Connection, item: NewInboxItem) -> bool:
        cur = c.execute(
            "INSERT OR IGNORE INTO perdure_inbox (run_id, kind, pos, topic, payload, key, "
            "visible_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                item.run_id,
                item.kind.value,
                item.pos,
                item.topic,
                item.payload,
                item.key,
                item.visible_at,
            ),
        )
        return cur.rowcount == 1

    async def deliver(self, item: NewInboxItem, now: float) -> bool:
        return await self._transaction(lambda c: self._deliver(c, item, now))

    def _deliver(self, c: sqlite3.Connection, item: NewInboxItem, now: float) -> bool:
        row = c.execute(
            "SELECT status, owner FROM perdure_runs WHERE id = ?", (item.run_id,)
        ).fetchone()
        if row is None:
            raise RunNotFound(item.run_id)
        status, owner = RunStatus(row[0]), row[1]
        if item.kind is InboxKind.CANCEL and status.is_terminal:
            return False
        if not self._add_inbox(c, item):
            return False
        if item.kind is InboxKind.CANCEL and cancels_at_once(status, owner):
            # Nothing to unwind (never started, or held): it ends here, without a worker.
            self._finish(c, item.run_id, RunStatus.CANCELLED, None, cancel_error(item.payload), now)
        elif status.value in _ACTIVE:
            wake = max(now, item.visible_at)
            c.execute(
                "UPDATE perdure_runs SET mailbox = mailbox + 1, "
                # A pending run keeps its start time: a message does not start it early.
                "wake_at = CASE WHEN status = 'pending' THEN wake_at "
                "WHEN wake_at IS NULL OR wake_at > ? THEN ? ELSE wake_at END "
                "WHERE id = ?",
                (wake, wake, item.run_id),
            )
        return True

    # -- operators ------------------------------------------------------------------------

    async def change_run(self, change: RunChange, now: float) -> tuple[RunRecord, bool]:
        return await self._transaction(lambda c: self._change(c, change, now))

    def _change(
        self, c: sqlite3.Connection, change: RunChange, now: float
    ) -> tuple[RunRecord, bool]:
        rec = self._get(c, change.run_id)
        if rec is None:
            raise RunNotFound(change.run_id)
        if rec.status not in change.expect:
            return rec, False
        if reclaims_dedup_key(rec, change):
            self._refuse_taken_dedup_key(c, rec.queue, rec.dedup_key)
        run_id = change.run_id
        if change.fence:
            c.execute(
                "UPDATE perdure_runs SET owner = NULL, lease_until = NULL, "
                "lease_token = lease_token + 1 WHERE id = ?",
                (run_id,),
            )
        length = rec.journal_len
        if change.truncate_from is not None:
            c.execute(
                "DELETE FROM perdure_journal WHERE run_id = ? AND seq >= ?",
                (run_id, change.truncate_from),
            )
            c.execute("DELETE FROM perdure_inbox WHERE run_id = ? AND consumed = 1", (run_id,))
            length = min(length, change.truncate_from)
        entries = [replace(e, seq=length + i) for i, e in enumerate(change.entries)]
        self._append(c, run_id, entries)
        added = sum(self._add_inbox(c, item) for item in change.inbox)
        c.execute(
            "UPDATE perdure_runs SET journal_len = ?, mailbox = mailbox + ?, updated_at = ? "
            "WHERE id = ?",
            (length + len(entries), added, now, run_id),
        )
        if change.status.is_terminal:
            self._finish(c, run_id, change.status, None, change.error, now)
        else:
            c.execute(
                "UPDATE perdure_runs SET status = ?, result = NULL, error = NULL, "
                "finished_at = NULL, recoveries = CASE WHEN ? THEN 0 ELSE recoveries END, "
                "wake_at = CASE WHEN ? AND ready_at IS NULL THEN ? ELSE wake_at END "
                "WHERE id = ?",
                (change.status.value, change.fence, change.wake, now, run_id),
            )
        after = self._get(c, run_id)
        assert after is not None
        return after, True

    async def purge_runs(
        self, finished_before: float, limit: int, run_id: str | None = None
    ) -> list[str]:
        ended = ", ".join(f"'{s.value}'" for s in RunStatus if s.is_terminal)
        sql = (
            f"SELECT id FROM perdure_runs WHERE status IN ({ended}) AND finished_at < ? "
            + ("AND id = ? " if run_id is not None else "")
            + "ORDER BY finished_at LIMIT ?"
        )
        params = (
            (finished_before, run_id, limit)
            if run_id is not None
            else (
                finished_before,
                limit,
            )
        )

        def purge(c: sqlite3.Connection) -> list[str]:
            ids = [r[0] for r in c.execute(sql, params).fetchall()]
            for table in ("perdure_journal", "perdure_inbox", "perdure_events"):
                c.executemany(f"DELETE FROM {table} WHERE run_id = ?", [(i,) for i in ids])
            c.executemany("DELETE FROM perdure_runs WHERE id = ?", [(i,) for i in ids])
            return ids

        return await self._transaction(purge)

    # -- workers --------------------------------------------------------------------------

    async def save_worker(self, worker_id: str, seen_at: float, info: bytes) -> None:
        await self._transaction(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO perdure_workers (id, seen_at, info) VALUES (?, ?, ?)",
                (worker_id, seen_at, info),
            )
        )

    async def list_workers(self, seen_after: float) -> list[WorkerRecord]:
        def read(c: sqlite3.Connection) -> list[WorkerRecord]:
            rows = c.execute(
                "SELECT id, seen_at, info FROM perdure_workers WHERE seen_at > ? ORDER BY id",
                (seen_after,),
            ).fetchall()
            return [WorkerRecord(r[0], float(r[1]), r[2]) for r in rows]

        return await self._reading(read)

    async def forget_workers(self, seen_before: float, worker_id: str | None = None) -> int:
        def forget(c: sqlite3.Connection) -> int:
            if worker_id is not None:
                cur = c.execute("DELETE FROM perdure_workers WHERE id = ?", (worker_id,))
            else:
                cur = c.execute("DELETE FROM perdure_workers WHERE seen_at < ?", (seen_before,))
            return cur.rowcount

        return await self._transaction(forget)

    async def get_event(self, run_id: str, key: str) -> bytes | None:
        def read(c: sqlite3.Connection) -> bytes | None:
            row = c.execute(
                "SELECT value FROM perdure_events WHERE run_id = ? AND key = ?", (run_id, key)
            ).fetchone()
            return row[0] if row else None

        return await self._reading(read)

    async def next_wake_at(self) -> float | None:
        def read(c: sqlite3.Connection) -> float | None:
            row = c.execute(
                "SELECT MIN(CASE WHEN owner IS NULL THEN wake_at ELSE lease_until END) "
                f"FROM perdure_runs WHERE wake_at IS NOT NULL AND status IN {_ACTIVE}"
            ).fetchone()
            return row[0] if row else None

        return await self._reading(read)

    # -- checkpoints ----------------------------------------------------------------------

    async def checkpoint(self, batch: Sequence[Checkpoint]) -> list[CheckpointResult]:
        def write(c: sqlite3.Connection) -> list[CheckpointResult]:
            results = []
            for cp in batch:
                c.execute("SAVEPOINT cp")
                try:
                    results.append(self._checkpoint(c, cp))
                except sqlite3.IntegrityError:
                    c.execute("ROLLBACK TO cp")
                    results.append(CheckpointResult(False, 0))
                c.execute("RELEASE cp")
            return results

        return await self._transaction(write)

    def _checkpoint(self, c: sqlite3.Connection, cp: Checkpoint) -> CheckpointResult:
        base = cp.entries[0].seq if cp.entries else None
        if base is not None and any(e.seq != base + i for i, e in enumerate(cp.entries)):
            return CheckpointResult(False, self._mailbox(c, cp.run_id))
        # The fence, the journal length check and the lease extension in one statement.
        row = c.execute(
            "UPDATE perdure_runs SET journal_len = journal_len + ?, updated_at = ?, "
            # Progress: the worker deaths so far were not this run's doing.
            "recoveries = CASE WHEN ? > 0 THEN 0 ELSE recoveries END, "
            "lease_until = ? WHERE id = ? AND owner = ? AND lease_token = ? "
            "AND (? IS NULL OR journal_len = ?) RETURNING mailbox, generation",
            (
                len(cp.entries),
                cp.now,
                len(cp.entries),
                cp.lease_until,
                cp.run_id,
                cp.owner,
                cp.token,
                base,
                base,
            ),
        ).fetchone()
        if row is None:
            return CheckpointResult(False, self._mailbox(c, cp.run_id))
        mailbox, generation = row
        self._append(c, cp.run_id, cp.entries)
        if cp.consumed:
            c.executemany(
                "UPDATE perdure_inbox SET consumed = 1 WHERE id = ? AND run_id = ?",
                [(i, cp.run_id) for i in cp.consumed],
            )
        if cp.cancel_timers:
            c.executemany(
                "DELETE FROM perdure_inbox WHERE run_id = ? AND key = ? AND consumed = 0",
                [(cp.run_id, f"timer:{generation}:{p}") for p in cp.cancel_timers],
            )
        for child in cp.children:
            self._create(c, child)
        for item in cp.inbox:
            if item.run_id == cp.run_id:
                self._add_inbox(c, item)
            elif c.execute("SELECT 1 FROM perdure_runs WHERE id = ?", (item.run_id,)).fetchone():
                self._deliver(c, item, cp.now)
        for target, reason in cp.cancel_runs:
            exists = c.execute("SELECT 1 FROM perdure_runs WHERE id = ?", (target,)).fetchone()
            if exists:
                self._deliver(
                    c,
                    NewInboxItem(
                        target, InboxKind.CANCEL, cp.now, payload=reason.encode(), key="cancel"
                    ),
                    cp.now,
                )
        if cp.events:
            c.executemany(
                "INSERT OR REPLACE INTO perdure_events (run_id, key, value) VALUES (?, ?, ?)",
                [(cp.run_id, k, v) for k, v in cp.events.items()],
            )
        if cp.outcome in (Outcome.COMPLETED, Outcome.FAILED, Outcome.CANCELLED):
            self._finish(c, cp.run_id, RunStatus(cp.outcome.value), cp.result, cp.error, cp.now)
        elif cp.outcome is Outcome.HELD:
            c.execute(
                "UPDATE perdure_runs SET status = 'held', error = ?, owner = NULL, "
                "lease_until = NULL, wake_at = NULL WHERE id = ?",
                (cp.error, cp.run_id),
            )
        elif cp.outcome is Outcome.CONTINUED:
            c.execute("DELETE FROM perdure_journal WHERE run_id = ?", (cp.run_id,))
            kept = ", ".join(f"'{kind.value}'" for kind in CARRIED_OVER)
            c.execute(
                "DELETE FROM perdure_inbox WHERE run_id = ? AND NOT "
                f"(consumed = 0 AND kind IN ({kept}))",
                (cp.run_id,),
            )
            c.execute(
                "UPDATE perdure_runs SET generation = generation + 1, journal_len = 0, "
                "input = COALESCE(?, input), owner = NULL, lease_until = NULL, wake_at = ?, "
                "started_at = ? WHERE id = ?",  # the new generation's clock starts now
                (cp.new_input, cp.now, cp.now, cp.run_id),
            )
        elif cp.release:
            pending = [
                item_from_row(r)
                for r in c.execute(
                    f"SELECT {ITEM_COLUMNS} FROM perdure_inbox WHERE run_id = ? AND consumed = 0 "
                    "AND kind != 'signal'",
                    (cp.run_id,),
                ).fetchall()
            ]
            c.execute(
                "UPDATE perdure_runs SET owner = NULL, lease_until = NULL, wake_at = ? "
                "WHERE id = ?",
                (wake_after(pending, mailbox, cp.mailbox_seen, cp.now, cp.runnable), cp.run_id),
            )
        # Nothing in a checkpoint delivers to its own run, so the mailbox read by the
        # fence is still current.
        return CheckpointResult(True, mailbox)

    def _append(self, c: sqlite3.Connection, run_id: str, entries: Sequence[JournalEntry]) -> None:
        c.executemany(
            f"INSERT INTO perdure_journal (run_id, {JOURNAL_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, *entry_values(e)) for e in entries],
        )

    def _mailbox(self, c: sqlite3.Connection, run_id: str) -> int:
        row = c.execute("SELECT mailbox FROM perdure_runs WHERE id = ?", (run_id,)).fetchone()
        return int(row[0]) if row else 0

    def _finish(
        self,
        c: sqlite3.Connection,
        run_id: str,
        status: RunStatus,
        result: bytes | None,
        error: bytes | None,
        now: float,
    ) -> None:
        row = c.execute(
            "UPDATE perdure_runs SET status = ?, result = ?, error = ?, finished_at = ?, "
            "updated_at = ?, owner = NULL, lease_until = NULL, wake_at = NULL WHERE id = ? "
            f"RETURNING {RUN_COLUMNS}",
            (status.value, result, error, now, now, run_id),
        ).fetchone()
        rec = run_from_row(row)
        if (
            rec.parent_id is not None
            and c.execute("SELECT 1 FROM perdure_runs WHERE id = ?", (rec.parent_id,)).fetchone()
        ):
            self._deliver(c, child_outcome_item(rec, now), now)
