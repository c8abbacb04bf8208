"""PostgreSQL implementation of the backend contract (see ``backends/base.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors

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
    admission_room,
    cancel_error,
    cancels_at_once,
    child_outcome_item,
    dead_letter_error,
    deadline_item,
    decode_cursor,
    encode_cursor,
    entry_from_row,
    item_from_row,
    new_run_values,
    pick_admissions,
    reclaims_dedup_key,
    run_from_row,
    waiting_runs_params,
    wake_after,
)
from .connection import (
    Conn,
    Database,
    LoopState,
    Row,
    advisory_key,
    fetch,
    without_password,
)
from .queries import DEDUP_INDEX, Statements

DEFAULT_SCHEMA = "perdure"
DEFAULT_POOL_SIZE = 10
_OUR_PARAMETERS = ("schema", "pool_size")
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

_MAX_BATCH = 256  # jobs per write transaction

_FINISHED = (Outcome.COMPLETED, Outcome.FAILED, Outcome.CANCELLED)
_PARENTS_KEPT = 100_000  # runs whose parent a backend remembers (then it starts over)


@dataclass
class _Job:
    """One create_run or deliver waiting for the next write transaction."""

    fn: Callable[[Conn], Awaitable[Any]]
    future: asyncio.Future[Any]
    run_id: str
    locks: tuple[str, ...] = ()  # runs to lock up front (in id order, with the batch's)
    parents_of: tuple[str, ...] = ()  # runs whose parents it may notify


def _same_start(rec: RunRecord, run: NewRun) -> bool:
    """Whether ``rec`` is the row ``run`` would have written (same workflow, input and
    creation time, to the microsecond): a start whose first try took unseen."""
    return (rec.workflow, rec.input, rec.created_at) == (run.workflow, run.input, run.created_at)


class _JobFailed(Exception):
    """A job in a write batch raised: the batch is rolled back and rerun without it."""


class PostgresBackend(Backend):
    features = Feature.MULTI_PROCESS | Feature.DURABLE

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        pool_size: int = DEFAULT_POOL_SIZE,
        url: str | None = None,
    ) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigurationError(
                f"schema={schema!r}: use a name of letters, digits and underscores "
                "(at most 63, not starting with a digit)"
            )
        if pool_size < 1:
            raise ConfigurationError(f"pool_size={pool_size}: use 1 or more connections")
        self.conninfo = conninfo
        self.schema = schema
        self.pool_size = pool_size
        self.url = without_password(url or conninfo)
        self._sql = Statements(schema)
        self._db = Database(conninfo, schema, pool_size)
        self._parents: dict[str, str | None] = {}  # run id -> parent id, of runs claimed

    @classmethod
    def from_url(cls, url: str) -> PostgresBackend:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours = {k: v for k, v in query if k in _OUR_PARAMETERS}
        rest = [(k, v) for k, v in query if k not in _OUR_PARAMETERS]
        if not any(k == "connect_timeout" for k, _ in rest):
            # libpq waits forever for an unreachable host unless told otherwise.
            rest.append(("connect_timeout", "10"))
        conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(rest), ""))
        try:
            pool_size = int(ours.get("pool_size", DEFAULT_POOL_SIZE))
        except ValueError:
            raise ConfigurationError(
                f"pool_size={ours['pool_size']!r}: use a number of connections"
            ) from None
        return cls(
            conninfo, schema=ours.get("schema", DEFAULT_SCHEMA), pool_size=pool_size, url=url
        )

    # -- plumbing -----------------------------------------------------------------------

    async def open(self) -> None:
        await self._db.state()

    async def watch(self, wake: Callable[[], None]) -> None:
        await self._db.listen(self._sql.listen, wake)

    async def close(self) -> None:
        await self._db.close()

    def _queue_lock_key(self, queue: str) -> int:
        # A schema name has no colon, so no other schema's queue shares the key.
        return advisory_key(f"perdure-queue:{self.schema}:{queue}")

    async def _write(self, job: _Job) -> Any:
        """Queue a create_run or deliver. Jobs that queue up while a write transaction
        is in flight on this loop are committed together: one commit for the lot."""
        state = await self._db.state()
        state.queue.append(job)
        if state.flusher is None:
            state.flusher = asyncio.get_running_loop().create_task(self._flush(state))
        return await job.future

    async def _flush(self, state: LoopState) -> None:
        batch: list[_Job] = []
        try:
            while state.queue:
                batch = state.queue[:_MAX_BATCH]
                del state.queue[:_MAX_BATCH]
                await self._apply(batch)
        except BaseException as exc:
            for job in batch + state.queue:
                if job.future.done():
                    continue
                if isinstance(exc, Exception):
                    job.future.set_exception(exc)
                else:  # the loop is shutting down
                    job.future.cancel()
            state.queue.clear()
            if not isinstance(exc, Exception):
                raise
        finally:
            state.flusher = None

    async def _apply(self, batch: list[_Job]) -> None:
        # Sorted (stably) by run, so that the batch meets rows in the same order as
        # every other writer; one run's jobs keep their order.
        jobs = sorted(batch, key=lambda j: j.run_id)
        while jobs:
            jobs = [j for j in jobs if not j.future.done()]  # callers that gave up
            failed: list[tuple[_Job, Exception]] = []
            try:
                results = await self._db.transact(functools.partial(self._run_jobs, jobs, failed))
            except _JobFailed:
                job, error = failed[-1]
                job.future.set_exception(error)
                jobs.remove(job)
                continue
            except Exception as exc:
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                return
            for job, result in zip(jobs, results, strict=True):
                if job.future.done():
                    continue
                if isinstance(result, (RunNotFound, RunDeduplicated)):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
            return

    async def _run_jobs(
        self, jobs: list[_Job], failed: list[tuple[_Job, Exception]], c: Conn
    ) -> list[Any]:
        await self._lock_runs(
            c, [r for j in jobs for r in j.locks], [r for j in jobs for r in j.parents_of]
        )
        results: list[Any] = []
        for job in jobs:
            try:
                results.append(await job.fn(c))
            except (RunNotFound, RunDeduplicated) as exc:
                # Raised by a delivery or a start before it writes anything (or after
                # undoing what it wrote): the others go on.
                results.append(exc)
            except psycopg.OperationalError:
                raise  # the whole transaction is retried or fails (see _transact)
            except Exception as exc:
                failed.append((job, exc))
                raise _JobFailed from exc
        # Sent at commit: workers elsewhere look for work now rather than at their poll.
        await c.execute(self._sql.notify)
        return results

    async def _lock_runs(
        self,
        c: Conn,
        runs: Iterable[str],
        parents_of: Iterable[str] = (),
        *,
        fenced_first: bool = False,
    ) -> None:
        """Lock, in id order, the runs a transaction will write and the parents it may
        notify (a run's parent never changes, so reading it unlocked is safe; those of
        runs this process claimed are known without a query). ``fenced_first``: the
        transaction first writes its runs with a fenced UPDATE, which locks a run
        alone; only several need locking ahead."""
        ids = set(runs)
        parents = set(parents_of)
        unknown = sorted(run_id for run_id in parents if run_id not in self._parents)
        ids.update(p for run_id in parents if (p := self._parents.get(run_id)) is not None)
        if unknown:
            ids.update(r[0] for r in await fetch(c, self._sql.parents, (unknown,)))
        if len(ids) > 1 or (parents and not fenced_first):
            await c.execute(self._sql.lock_runs, (sorted(ids),))

    def _remember_parents(self, recs: Iterable[RunRecord]) -> None:
        """Keep the parents of runs this process claims: a run's parent never changes,
        and knowing it saves the lookup when the run's checkpoint must lock it."""
        if len(self._parents) > _PARENTS_KEPT:
            self._parents.clear()
        for rec in recs:
            self._parents[rec.id] = rec.parent_id

    # -- runs -----------------------------------------------------------------------------

    async def create_run(self, run: NewRun) -> tuple[RunRecord, bool]:
        simple = (
            run.dedup_key is None and run.timeout is None and not run.journal and not run.events
        )
        state = await self._db.state()
        unsure = False
        if simple and not state.queue and state.flusher is None:
            # Nothing to share a commit with: one statement, one round trip.
            try:
                rows = await self._db.write(
                    self._sql.insert_run_notify, (*new_run_values(run), self._sql.channel)
                )
            except psycopg.OperationalError:
                unsure = True  # whether it took is unknown: the batched path finds out
            else:
                if rows:
                    return run_from_row(rows[0][:-1]), True
                # The id is taken: the batched path reads the run that has it.
        future: asyncio.Future[tuple[RunRecord, bool]] = asyncio.get_running_loop().create_future()
        rec, created = await self._write(_Job(lambda c: self._create(c, run), future, run.id))
        if unsure and not created and _same_start(rec, run):
            created = True  # the one-statement try took after all
        return rec, created

    async def _create(self, c: Conn, run: NewRun) -> tuple[RunRecord, bool]:
        start = run.start_at if run.start_at is not None else run.created_at
        params = new_run_values(run)
        if run.dedup_key is None:
            rows = await fetch(c, self._sql.insert_run, params)
        else:
            rows = await self._insert_deduplicated(c, run, params)
        if rows:
            if run.timeout is not None:
                await self._add_inbox(c, deadline_item(run.id, start, run.timeout))
            if run.journal:
                await self._append(c, [(run.id, e) for e in run.journal])
                await c.execute(self._sql.set_journal_len, (len(run.journal), run.id))
                # One row per key: a key twice in one upsert is an error here.
                events = dict(run.events)
                await c.execute(
                    self._sql.set_events,
                    ([run.id] * len(events), list(events), list(events.values())),
                )
                rec = await self._get(c, run.id)
                assert rec is not None
                return rec, True
            return run_from_row(rows[0]), True
        # Taken, perhaps by a transaction that committed after this statement began:
        # the next statement sees it.
        rec = await self._get(c, run.id)
        assert rec is not None
        return rec, False

    async def _insert_deduplicated(self, c: Conn, run: NewRun, params: Sequence[Any]) -> list[Row]:
        """Insert a run with a dedup key, or raise RunDeduplicated. The unique index
        decides, so that starts racing in other transactions are refused too; in a
        savepoint, so that a refusal leaves the rest of the transaction (the other
        starts of its batch) to go on."""
        assert run.dedup_key is not None
        try:
            async with c.transaction():
                return await fetch(c, self._sql.insert_run, params)
        except pg_errors.UniqueViolation as exc:
            if exc.diag.constraint_name != DEDUP_INDEX:
                raise
        # The holder committed (the insert waited for it), so this statement sees it,
        # unless it has ended since.
        holder = await fetch(c, self._sql.dedup_holder, (run.queue, run.dedup_key))
        raise RunDeduplicated(run.queue, run.dedup_key, holder[0][0] if holder else None)

    async def _get(self, c: Conn, run_id: str) -> RunRecord | None:
        rows = await fetch(c, self._sql.get_run, (run_id,))
        return run_from_row(rows[0]) if rows else None

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._db.rows(self._sql.get_run, (run_id,))
        return run_from_row(rows[0]) if rows else None

    @staticmethod
    def _matching(filter: RunFilter) -> tuple[list[str], list[Any]]:
        """The WHERE conditions (and their arguments) of the runs ``filter`` selects."""
        where: list[str] = ["TRUE"]
        args: list[Any] = []
        for column, value in (
            ("workflow", filter.workflow),
            ("parent_id", filter.parent_id),
            ("key", filter.key),
            ("queue", filter.queue),
            ("status", filter.status.value if filter.status else None),
        ):
            if value is not None:
                where.append(f"{column} = %s")
                args.append(value)
        if filter.created_after is not None:
            where.append("created_at >= %s")
            args.append(float(filter.created_after))
        if filter.created_before is not None:
            where.append("created_at < %s")
            args.append(float(filter.created_before))
        return where, args

    async def count_runs(self, filter: RunFilter) -> dict[RunStatus, int]:
        where, args = self._matching(replace(filter, status=None))
        sql = self._sql.count_runs.format(where=" AND ".join(where))
        return {RunStatus(s): n for s, n in await self._db.rows(sql, tuple(args))}

    async def list_runs(self, filter: RunFilter, limit: int, cursor: str | None) -> RunPage:
        where, args = self._matching(filter)
        if cursor is not None:
            created_at, run_id = decode_cursor(cursor)
            where.append("(created_at, id) < (%s::float8, %s)")
            args.extend([created_at, run_id])
        sql = self._sql.list_runs.format(where=" AND ".join(where))
        rows = [run_from_row(r) for r in await self._db.rows(sql, (*args, limit + 1))]
        page = rows[:limit]
        more = len(rows) > limit
        return RunPage(page, encode_cursor(page[-1].created_at, page[-1].id) if more else None)

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
        if not workflows or limit <= 0 or (queues is not None and not queues):
            return []
        where: tuple[Any, ...] = (now, now, list(workflows), version, version)
        # Only given queues cost a condition: most workers serve every queue.
        claim_due = self._sql.claim
        if queues is not None:
            where += (list(queues),)
            claim_due = self._sql.claim_on
        # The claim is one statement, so one round trip and its own transaction (SKIP
        # LOCKED: runs another worker is claiming, or a writer holds, are left to it,
        # and it never waits on anyone). An empty poll writes nothing. A connection
        # lost meanwhile leaves unknown whether it took: the lease then just expires.
        rows = await self._db.write(claim_due, (*where, limit, owner, lease_until, now, now))
        recs = []
        for rec in map(run_from_row, rows):
            # Recovered once more than allowed (the claim counted it): a dead letter.
            if max_recoveries is not None and rec.recoveries > max_recoveries:
                await self._db.transact(functools.partial(self._dead_letter, rec, now))
            else:
                recs.append(rec)
        if not recs:
            return []
        self._remember_parents(recs)
        recs.sort(key=lambda r: (r.wake_at or 0.0, r.created_at, r.id))
        # Read after the claim, so it sees every message counted in the mailboxes just
        # read (a delivery that committed while the claim ran).
        due: dict[str, list[InboxItem]] = defaultdict(list)
        for r in await self._db.rows(self._sql.due_many, ([rec.id for rec in recs], now)):
            due[r[1]].append(item_from_row(r))
        return [Claim(rec, rec.lease_token, due[rec.id]) for rec in recs]

    async def _dead_letter(self, rec: RunRecord, now: float, c: Conn) -> None:
        """End a run this worker just claimed (so holds the lease of) as a dead letter,
        telling its parent: both locked in id order first, as every writer does."""
        await self._lock_runs(c, [rec.id], [rec.id])
        error = dead_letter_error(rec.recoveries - 1)
        await self._finish(c, rec.id, RunStatus.DEAD_LETTER, None, error, now)

    async def admit_runs(self, queue: QueueLimits, now: float, limit: int = 100) -> list[str]:
        # Look first, without a lock: most calls find nothing waiting.
        if not await self._db.rows(self._sql.any_waiting, (queue.name, now)):
            return []
        return await self._db.transact(functools.partial(self._admit, queue, now, limit))

    async def _admit(self, queue: QueueLimits, now: float, limit: int, c: Conn) -> list[str]:
        sql = self._sql
        # One admitter per queue at a time, in every process: each counts the places
        # the one before it filled. Released at commit.
        await c.execute("SELECT pg_advisory_xact_lock(%s)", (self._queue_lock_key(queue.name),))
        by_key: dict[str | None, int] = dict(await fetch(c, sql.occupying, (queue.name,)))
        recent = 0
        if queue.rate is not None:
            [(recent,)] = await fetch(c, sql.admitted_since, (queue.name, now - queue.period))
        room = admission_room(queue, sum(by_key.values()), recent, limit)
        if room == 0:
            return []
        rows = await fetch(c, sql.waiting(queue), waiting_runs_params(queue, now, room))
        picked = pick_admissions(queue, room, by_key, [(r[0], r[1]) for r in rows])
        if not picked:
            return []
        admitted = {r[0] for r in await fetch(c, sql.admit, (picked, now, now, now))}
        # Sent at commit: workers elsewhere claim the admitted runs now.
        await c.execute(sql.notify)
        return [run_id for run_id in picked if run_id in admitted]

    async def extend_leases(
        self, owner: str, leases: dict[str, int], lease_until: float
    ) -> dict[str, int]:
        if not leases:
            return {}
        ids = list(leases)
        params = (ids, [leases[i] for i in ids], owner, lease_until)

        async def extend(c: Conn) -> dict[str, int]:
            return {r[0]: r[1] for r in await fetch(c, self._sql.extend, params)}

        return await self._db.transact(extend)

    async def release(self, run_id: str, owner: str, token: int, now: float) -> bool:
        state = await self._db.state()
        async with state.pool.connection() as conn:
            cur = await conn.execute(self._sql.release, (now, now, run_id, owner, token))
            return cur.rowcount == 1

    # -- journal and inbox ---------------------------------------------------------------

    async def read_journal(self, run_id: str) -> list[JournalEntry]:
        return [entry_from_row(r) for r in await self._db.rows(self._sql.read_journal, (run_id,))]

    async def read_inbox(self, run_id: str, now: float) -> list[InboxItem]:
        return [item_from_row(r) for r in await self._db.rows(self._sql.due, (run_id, now))]

    async def _add_inbox(self, c: Conn, item: NewInboxItem) -> bool:
        rows = await fetch(
            c,
            self._sql.add_inbox,
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
        return bool(rows)

    async def deliver(self, item: NewInboxItem, now: float) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        cancel = item.kind is InboxKind.CANCEL
        delivered: bool = await self._write(
            _Job(
                lambda c: self._deliver(c, item, now),
                future,
                item.run_id,
                locks=(item.run_id,),
                # A cancel may end the run at once, and that tells its parent.
                parents_of=(item.run_id,) if cancel else (),
            )
        )
        return delivered

    async def _deliver(self, c: Conn, item: NewInboxItem, now: float) -> bool:
        rows = await fetch(c, self._sql.lock_run, (item.run_id,))
        if not rows:
            raise RunNotFound(item.run_id)
        status, owner = RunStatus(rows[0][0]), rows[0][1]
        if item.kind is InboxKind.CANCEL and status.is_terminal:
            return False
        if not await self._add_inbox(c, item):
            return False
        if item.kind is InboxKind.CANCEL and cancels_at_once(status, owner):
            # Nothing to unwind (never started, or held): it ends here, without a worker.
            await self._finish(
                c, item.run_id, RunStatus.CANCELLED, None, cancel_error(item.payload), now
            )
        elif status is RunStatus.PENDING:
            # It keeps its start time: a message does not start a delayed run early.
            await c.execute(self._sql.notify_pending, (item.run_id,))
        elif status is RunStatus.RUNNING:
            await c.execute(self._sql.notify_running, (max(now, item.visible_at), item.run_id))
        return True

    async def get_event(self, run_id: str, key: str) -> bytes | None:
        rows = await self._db.rows(self._sql.get_event, (run_id, key))
        return rows[0][0] if rows else None

    async def next_wake_at(self) -> float | None:
        rows = await self._db.rows(self._sql.next_wake)
        return rows[0][0] if rows else None

    # -- checkpoints ----------------------------------------------------------------------

    async def checkpoint(self, batch: Sequence[Checkpoint]) -> list[CheckpointResult]:
        if not batch:
            return []
        runs: set[str] = set()
        parents_of: set[str] = set()
        for cp in batch:
            runs.add(cp.run_id)
            others = {i.run_id for i in cp.inbox if i.run_id != cp.run_id}
            others.update(target for target, _ in cp.cancel_runs)
            runs |= others
            parents_of |= others
            if cp.outcome in _FINISHED:
                parents_of.add(cp.run_id)

        async def write(c: Conn) -> list[CheckpointResult]:
            await self._lock_runs(c, runs, parents_of, fenced_first=True)
            return await self._apply_batch(c, batch)

        async def write_one_by_one(c: Conn) -> list[CheckpointResult]:
            await self._lock_runs(c, runs, parents_of)
            results = []
            for cp in batch:
                try:
                    async with c.transaction():  # a savepoint
                        [result] = await self._apply_round(c, [cp])
                except pg_errors.IntegrityError:
                    result = CheckpointResult(False, await self._mailbox(c, cp.run_id))
                results.append(result)
            return results

        try:
            return await self._db.transact(write)
        except pg_errors.IntegrityError:
            # A constraint refused a row (a journal entry recorded twice): again, one
            # checkpoint at a time, so that only the offending one is not applied.
            return await self._db.transact(write_one_by_one)

    async def _apply_batch(self, c: Conn, batch: Sequence[Checkpoint]) -> list[CheckpointResult]:
        """Apply a batch a round at a time: round k holds the k-th checkpoint of each
        run in it, so a run's checkpoints apply in order, each round in a few
        statements however many runs it has."""
        rounds: list[list[int]] = []
        seen: dict[str, int] = defaultdict(int)
        for i, cp in enumerate(batch):
            k = seen[cp.run_id]
            seen[cp.run_id] += 1
            if k == len(rounds):
                rounds.append([])
            rounds[k].append(i)
        results = [CheckpointResult(False, 0)] * len(batch)
        for indexes in rounds:
            applied = await self._apply_round(c, [batch[i] for i in indexes])
            for i, result in zip(indexes, applied, strict=True):
                results[i] = result
        return results

    async def _apply_round(self, c: Conn, cps: list[Checkpoint]) -> list[CheckpointResult]:
        """Checkpoints of distinct runs: the fences in one statement, then the writes."""
        fenced: list[Checkpoint] = []
        bases: list[int | None] = []
        for cp in cps:
            base = cp.entries[0].seq if cp.entries else None
            if base is None or all(e.seq == base + i for i, e in enumerate(cp.entries)):
                fenced.append(cp)
                bases.append(base)
        # The fence, the journal length check and the lease extension in one statement:
        # run id -> (mailbox, generation) for the checkpoints that hold their lease.
        held: dict[str, tuple[int, int]] = {}
        if fenced:
            rows = await fetch(
                c,
                self._sql.fence,
                (
                    [cp.run_id for cp in fenced],
                    [cp.owner for cp in fenced],
                    [cp.token for cp in fenced],
                    bases,
                    [len(cp.entries) for cp in fenced],
                    [cp.now for cp in fenced],
                    [cp.lease_until for cp in fenced],
                ),
            )
            held = {r[0]: (r[1], r[2]) for r in rows}
        live = [cp for cp in cps if cp.run_id in held]
        if live:
            await self._write_round(c, live, held)
        lost = [cp.run_id for cp in cps if cp.run_id not in held]
        mailboxes: dict[str, int] = {}
        if lost:
            mailboxes = {r[0]: r[1] for r in await fetch(c, self._sql.mailboxes, (lost,))}
        # Nothing in a checkpoint delivers to its own run, so the mailbox read by the
        # fence is still current.
        return [
            CheckpointResult(True, held[cp.run_id][0])
            if cp.run_id in held
            else CheckpointResult(False, mailboxes.get(cp.run_id, 0))
            for cp in cps
        ]

    async def _write_round(
        self, c: Conn, live: list[Checkpoint], held: dict[str, tuple[int, int]]
    ) -> None:
        sql = self._sql
        # What each checkpoint writes to its own run, all runs at once.
        entries = [(cp.run_id, e) for cp in live for e in cp.entries]
        if entries:
            await self._append(c, entries)
        consumed = [(cp.run_id, i) for cp in live for i in cp.consumed]
        if consumed:
            await c.execute(sql.consume, ([r for r, _ in consumed], [i for _, i in consumed]))
        timers = [
            (cp.run_id, f"timer:{held[cp.run_id][1]}:{p}") for cp in live for p in cp.cancel_timers
        ]
        if timers:
            await c.execute(sql.cancel_timers, ([r for r, _ in timers], [k for _, k in timers]))
        own = [item for cp in live for item in cp.inbox if item.run_id == cp.run_id]
        if own:
            await c.execute(
                sql.add_inbox_many,
                (
                    [i.run_id for i in own],
                    [i.kind.value for i in own],
                    [i.pos for i in own],
                    [i.topic for i in own],
                    [i.payload for i in own],
                    [i.key for i in own],
                    [i.visible_at for i in own],
                ),
            )
        events = [(cp.run_id, k, v) for cp in live for k, v in cp.events.items()]
        if events:
            await c.execute(
                sql.set_events,
                ([e[0] for e in events], [e[1] for e in events], [e[2] for e in events]),
            )

        # The runs' new states.
        finishing = [cp for cp in live if cp.outcome in _FINISHED]
        finished: dict[str, RunRecord] = {}
        if finishing:
            rows = await fetch(
                c,
                sql.finish,
                (
                    [cp.run_id for cp in finishing],
                    [cp.outcome.value for cp in finishing],
                    [cp.result for cp in finishing],
                    [cp.error for cp in finishing],
                    [cp.now for cp in finishing],
                ),
            )
            finished = {rec.id: rec for rec in map(run_from_row, rows)}
        for cp in live:
            if cp.outcome is Outcome.HELD:
                await c.execute(sql.hold, (cp.error, cp.run_id))
            elif cp.outcome is Outcome.CONTINUED:
                await c.execute(sql.clear_journal, (cp.run_id,))
                await c.execute(sql.clear_inbox, (cp.run_id,))
                await c.execute(sql.continue_run, (cp.new_input, cp.now, cp.now, cp.run_id))
        parking = [cp for cp in live if cp.outcome is Outcome.NONE and cp.release]
        if parking:
            pending: dict[str, list[InboxItem]] = defaultdict(list)
            for r in await fetch(c, sql.pending, ([cp.run_id for cp in parking],)):
                pending[r[1]].append(item_from_row(r))
            wakes = [
                wake_after(
                    pending[cp.run_id], held[cp.run_id][0], cp.mailbox_seen, cp.now, cp.runnable
                )
                for cp in parking
            ]
            await c.execute(sql.park, ([cp.run_id for cp in parking], wakes))

        # Then what they do to other runs, as a delivery from elsewhere would: after the
        # runs of this round parked, so that a message to one of them wakes it.
        for cp in live:
            for child in cp.children:
                await self._create(c, child)
            for item in cp.inbox:
                if item.run_id != cp.run_id:
                    with contextlib.suppress(RunNotFound):  # raised before it writes
                        await self._deliver(c, item, cp.now)
            for target, reason in cp.cancel_runs:
                with contextlib.suppress(RunNotFound):
                    await self._deliver(
                        c,
                        NewInboxItem(
                            target, InboxKind.CANCEL, cp.now, payload=reason.encode(), key="cancel"
                        ),
                        cp.now,
                    )
            if cp.run_id in finished:
                await self._notify_parent(c, finished[cp.run_id], cp.now)

    async def _append(self, c: Conn, entries: Sequence[tuple[str, JournalEntry]]) -> None:
        await c.execute(
            self._sql.append_journal,
            (
                [r for r, _ in entries],
                [e.seq for _, e in entries],
                [e.pos for _, e in entries],
                [e.kind.value for _, e in entries],
                [e.name for _, e in entries],
                [e.payload for _, e in entries],
                [e.at for _, e in entries],
                [e.attempt for _, e in entries],
                [e.failed for _, e in entries],
                [e.detail for _, e in entries],
            ),
        )

    # -- operators ------------------------------------------------------------------------

    async def change_run(self, change: RunChange, now: float) -> tuple[RunRecord, bool]:
        async def apply(c: Conn) -> tuple[RunRecord, bool]:
            run_id = change.run_id
            await self._lock_runs(c, [run_id], [run_id])
            rec = await self._get(c, run_id)
            if rec is None:
                raise RunNotFound(run_id)
            if rec.status not in change.expect:
                return rec, False
            if reclaims_dedup_key(rec, change):
                assert rec.dedup_key is not None
                holder = await fetch(c, self._sql.dedup_holder, (rec.queue, rec.dedup_key))
                if holder:
                    raise RunDeduplicated(rec.queue, rec.dedup_key, holder[0][0])
            sql = self._sql
            if change.fence:
                await c.execute(sql.fence_off, (run_id,))
            length = rec.journal_len
            if change.truncate_from is not None:
                await c.execute(sql.truncate_journal, (run_id, change.truncate_from))
                await c.execute(sql.forget_consumed, (run_id,))
                length = min(length, change.truncate_from)
            entries = [replace(e, seq=length + i) for i, e in enumerate(change.entries)]
            if entries:
                await self._append(c, [(run_id, e) for e in entries])
            added = 0
            for item in change.inbox:
                added += await self._add_inbox(c, item)
            await c.execute(sql.bump_mailbox, (length + len(entries), added, now, run_id))
            if change.status.is_terminal:
                await self._finish(c, run_id, change.status, None, change.error, now)
            else:
                await c.execute(
                    sql.reopen, (change.status.value, change.fence, change.wake, now, run_id)
                )
            after = await self._get(c, run_id)
            assert after is not None
            return after, True

        return await self._db.transact(apply)

    async def purge_runs(
        self, finished_before: float, limit: int, run_id: str | None = None
    ) -> list[str]:
        async def purge(c: Conn) -> list[str]:
            rows = await fetch(c, self._sql.purgeable, (finished_before, run_id, run_id, limit))
            ids = [r[0] for r in rows]
            if ids:
                for statement in self._sql.purge:
                    await c.execute(statement, (ids,))
            return ids

        return await self._db.transact(purge)

    # -- workers --------------------------------------------------------------------------

    async def save_worker(self, worker_id: str, seen_at: float, info: bytes) -> None:
        state = await self._db.state()
        async with state.pool.connection() as conn:
            await conn.execute(self._sql.save_worker, (worker_id, seen_at, info))

    async def list_workers(self, seen_after: float) -> list[WorkerRecord]:
        rows = await self._db.rows(self._sql.list_workers, (seen_after,))
        return [WorkerRecord(r[0], float(r[1]), bytes(r[2])) for r in rows]

    async def forget_workers(self, seen_before: float, worker_id: str | None = None) -> int:
        state = await self._db.state()
        async with state.pool.connection() as conn:
            cur = await conn.execute(self._sql.forget_workers, (worker_id, seen_before, worker_id))
            return cur.rowcount

    async def _mailbox(self, c: Conn, run_id: str) -> int:
        rows = await fetch(c, self._sql.mailboxes, ([run_id],))
        return int(rows[0][1]) if rows else 0

    async def _finish(
        self,
        c: Conn,
        run_id: str,
        status: RunStatus,
        result: bytes | None,
        error: bytes | None,
        now: float,
    ) -> None:
        rows = await fetch(
            c, self._sql.finish, ([run_id], [status.value], [result], [error], [now])
        )
        await self._notify_parent(c, run_from_row(rows[0]), now)

    async def _notify_parent(self, c: Conn, rec: RunRecord, now: float) -> None:
        if rec.parent_id is not None:
            with contextlib.suppress(RunNotFound):  # raised before it writes anything
                await self._deliver(c, child_outcome_item(rec, now), now)
