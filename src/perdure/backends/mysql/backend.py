"""MySQL implementation of the backend contract (see ``backends/base.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from asyncmy.connection import Connection
from asyncmy.errors import IntegrityError

from ...errors import RunDeduplicated, RunNotFound
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
    entry_values,
    new_run_values,
    pick_admissions,
    reclaims_dedup_key,
    waiting_runs_params,
    wake_after,
)
from .connection import (
    RETRYABLE,
    Database,
    LoopState,
    Settings,
    error_code,
    execute,
    execute_many,
    execute_rows,
    fetch,
    without_password,
)
from .queries import Statements
from .rows import (
    RunState,
    finite,
    inbox_item,
    inbox_values,
    key_hash,
    new_record,
    run_record,
    run_state,
    text,
)

_MAX_BATCH = 256  # jobs per write transaction
_FINISHED = (Outcome.COMPLETED, Outcome.FAILED, Outcome.CANCELLED)
# Raised by a job of a write batch before it writes anything (a delivery to no run, a
# start refused for its dedup key): its caller gets the error, the others go on.
_REFUSED = (RunNotFound, RunDeduplicated)


@dataclass
class _Job:
    """One create_run or deliver waiting for the next write transaction."""

    fn: Callable[[Connection], Awaitable[Any]]
    future: asyncio.Future[Any]
    run_id: str
    locks: tuple[str, ...] = ()  # runs to lock up front (in id order, with the batch's)
    parents_of: tuple[str, ...] = ()  # runs whose parents it may notify


class _JobFailed(Exception):
    """A job in a write batch raised: the batch is rolled back and rerun without it."""


class MySQLBackend(Backend):
    features = Feature.MULTI_PROCESS | Feature.DURABLE

    def __init__(self, settings: Settings, *, url: str | None = None) -> None:
        self.settings = settings
        self.url = (
            without_password(url)
            if url
            else (
                f"mysql://{settings.host}:{settings.port}/{settings.database}"
                f"?prefix={settings.prefix}"
            )
        )
        self._sql = Statements(settings.prefix)
        self._db = Database(settings, self._sql.versions, self.url)

    @classmethod
    def from_url(cls, url: str) -> MySQLBackend:
        return cls(Settings.from_url(url), url=url)

    async def open(self) -> None:
        await self._db.state()

    async def close(self) -> None:
        await self._db.close()

    # -- group commit ---------------------------------------------------------------------

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
                if isinstance(result, _REFUSED):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
            return

    async def _run_jobs(
        self, jobs: list[_Job], failed: list[tuple[_Job, Exception]], c: Connection
    ) -> list[Any]:
        await self._lock_runs(
            c, [r for j in jobs for r in j.locks], [r for j in jobs for r in j.parents_of]
        )
        results: list[Any] = []
        for job in jobs:
            try:
                results.append(await job.fn(c))
            except _REFUSED as exc:
                results.append(exc)
            except Exception as exc:
                if error_code(exc) in RETRYABLE:
                    raise  # the whole batch is run again
                failed.append((job, exc))
                raise _JobFailed from exc
        return results

    async def _lock_runs(
        self,
        c: Connection,
        runs: Iterable[str],
        parents_of: Iterable[str] = (),
        *,
        always: bool = False,
    ) -> dict[str, RunState]:
        """Lock, in id order, the runs a transaction will write and the parents it may
        notify (a run's parent never changes, so reading it unlocked is safe); returns
        the state of those that exist."""
        ids = set(runs)
        parents = sorted(set(parents_of))
        if parents:
            ids.update(text(r[0]) for r in await fetch(c, self._sql.parents(len(parents)), parents))
        if not (always or len(ids) > 1 or parents):
            return {}
        ordered = sorted(ids)
        rows = await fetch(c, self._sql.lock_state(len(ordered)), ordered)
        return {text(r[0]): run_state(r) for r in rows}

    # -- runs -----------------------------------------------------------------------------

    async def create_run(self, run: NewRun) -> tuple[RunRecord, bool]:
        future: asyncio.Future[tuple[RunRecord, bool]] = asyncio.get_running_loop().create_future()
        # Locked up front with the batch: a run that exists is locked by the insert.
        result: tuple[RunRecord, bool] = await self._write(
            _Job(lambda c: self._create(c, run), future, run.id, locks=(run.id,))
        )
        return result

    async def _create(self, c: Connection, run: NewRun) -> tuple[RunRecord, bool]:
        start = run.start_at if run.start_at is not None else run.created_at
        created = await execute(c, self._sql.insert_run, new_run_values(run))
        if created:
            if run.timeout is not None:
                await self._add_inbox(c, deadline_item(run.id, start, run.timeout))
            if run.journal:
                # A fork: it starts with a journal and events taken from another run.
                await self._append(c, [(run.id, e) for e in run.journal])
                await execute(c, self._sql.set_journal_len, (len(run.journal), run.id))
            if run.events:
                await execute_many(
                    c, self._sql.set_event, [(run.id, key_hash(k), k, v) for k, v in run.events]
                )
            return new_record(run, start, len(run.journal)), True
        # Taken, perhaps by a transaction that committed while the insert waited for it.
        rec = await self._get(c, run.id)
        if rec is not None:
            return rec, False
        # Not taken: the insert met the unfinished run that holds its dedup key (and
        # locked it, so it is still there to be named).
        assert run.dedup_key is not None
        rows = await fetch(c, self._sql.dedup_holder, (run.queue, run.dedup_key))
        raise RunDeduplicated(run.queue, run.dedup_key, text(rows[0][0]) if rows else None)

    async def _get(self, c: Connection, run_id: str) -> RunRecord | None:
        rows = await fetch(c, self._sql.get_run, (run_id,))
        return run_record(rows[0]) if rows else None

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._db.rows(self._sql.get_run, (run_id,))
        return run_record(rows[0]) if rows else None

    @staticmethod
    def _matching(filter: RunFilter) -> tuple[list[str], list[Any]]:
        """The WHERE conditions (and their arguments) of the runs ``filter`` selects."""
        where: list[str] = ["TRUE"]
        args: list[Any] = []
        for column, value in (
            ("workflow", filter.workflow),
            ("parent_id", filter.parent_id),
            ("`key`", filter.key),
            ("queue", filter.queue),
            ("status", filter.status.value if filter.status else None),
        ):
            if value is not None:
                where.append(f"{column} = %s")
                args.append(value)
        if filter.created_after is not None:
            where.append("created_at >= %s")
            args.append(finite(filter.created_after))
        if filter.created_before is not None:
            where.append("created_at < %s")
            args.append(finite(filter.created_before))
        return where, args

    async def count_runs(self, filter: RunFilter) -> dict[RunStatus, int]:
        where, args = self._matching(replace(filter, status=None))
        sql = self._sql.count_runs.format(where=" AND ".join(where))
        return {RunStatus(s): int(n) for s, n in await self._db.rows(sql, tuple(args))}

    async def list_runs(self, filter: RunFilter, limit: int, cursor: str | None) -> RunPage:
        where, args = self._matching(filter)
        if cursor is not None:
            created_at, run_id = decode_cursor(cursor)
            # Spelled out rather than as a row comparison, which MySQL may not walk
            # the (created_at, id) index for.
            where.append("(created_at < %s OR (created_at = %s AND id < %s))")
            args.extend([created_at, created_at, run_id])
        sql = self._sql.list_runs.format(where=" AND ".join(where))
        rows = [run_record(r) for r in await self._db.rows(sql, (*args, limit + 1))]
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
        names = list(workflows)
        on = None if queues is None else list(queues)
        # The shape and parameters of the due-runs condition (see Statements._due_runs).
        shape = (len(names), version is not None, None if on is None else len(on))
        due_args = (now, now, *names, *((version,) if version is not None else ()), *(on or ()))
        # Look before opening a transaction: most polls find nothing.
        if not await self._db.rows(self._sql.any_due(*shape), due_args):
            return []

        async def claim(c: Connection) -> list[Claim]:
            if max_recoveries is not None:
                dead = await fetch(c, self._sql.dead(*shape), (*due_args, max_recoveries))
                for raw_id, recoveries in dead:
                    run_id = text(raw_id)
                    await execute(c, self._sql.bury, (run_id,))
                    error = dead_letter_error(recoveries)
                    await self._finish(c, run_id, RunStatus.DEAD_LETTER, None, error, now)
            # SKIP LOCKED: runs another worker is claiming (or a writer holds) are left
            # to it, and this claim never waits on anyone.
            found = await fetch(c, self._sql.claim(*shape), (*due_args, limit))
            if not found:
                return []
            ids = [text(r[0]) for r in found]
            await execute(c, self._sql.take(len(ids)), (owner, lease_until, now, now, *ids))
            recs = sorted(
                (run_record(r) for r in await fetch(c, self._sql.runs_by_id(len(ids)), ids)),
                key=lambda r: (r.wake_at or 0.0, r.created_at, r.id),
            )
            # A separate statement, so it sees every message counted in the mailboxes
            # just read (a delivery that committed while the claim waited for nothing).
            due: dict[str, list[InboxItem]] = defaultdict(list)
            for r in await fetch(c, self._sql.due_many(len(ids)), (*ids, now)):
                item = inbox_item(r)
                due[item.run_id].append(item)
            return [Claim(rec, rec.lease_token, due[rec.id]) for rec in recs]

        return await self._db.transact(claim)

    async def admit_runs(self, queue: QueueLimits, now: float, limit: int = 100) -> list[str]:
        # Look before opening a transaction: most calls find nothing waiting.
        if not await self._db.rows(self._sql.any_waiting, (queue.name, now)):
            return []
        return await self._db.transact(functools.partial(self._admit, queue, now, limit))

    async def _admit(self, queue: QueueLimits, now: float, limit: int, c: Connection) -> list[str]:
        sql = self._sql
        # Held until commit: another admission to this queue, from any process, waits
        # here, then counts the runs this one admits.
        await execute(c, sql.lock_queue, (queue.name,))
        by_key = {text(k): int(n) for k, n in await fetch(c, sql.occupied, (queue.name,))}
        recent = 0
        if queue.rate is not None:
            [(count,)] = await fetch(c, sql.admitted_since, (queue.name, now - queue.period))
            recent = int(count)
        room = admission_room(queue, sum(by_key.values()), recent, limit)
        if room == 0:
            return []
        rows = await fetch(
            c, sql.waiting(queue.per_key is not None), waiting_runs_params(queue, now, room)
        )
        picked = pick_admissions(queue, room, by_key, [(text(i), text(k)) for i, k in rows])
        if not picked:
            return []
        waiting = {text(r[0]) for r in await fetch(c, sql.lock_waiting(len(picked)), picked)}
        admitted = [run_id for run_id in picked if run_id in waiting]
        if admitted:
            await execute(c, sql.admit(len(admitted)), (now, now, now, *admitted))
        return admitted

    async def extend_leases(
        self, owner: str, leases: dict[str, int], lease_until: float
    ) -> dict[str, int]:
        if not leases:
            return {}
        ids = sorted(leases)

        async def extend(c: Connection) -> dict[str, int]:
            held = {
                text(r[0]): int(r[3])
                for r in await fetch(c, self._sql.leases(len(ids)), ids)
                if text(r[1]) == owner and r[2] == leases[text(r[0])]
            }
            if held:
                await execute(c, self._sql.extend(len(held)), (lease_until, *held))
            return held

        return await self._db.transact(extend)

    async def release(self, run_id: str, owner: str, token: int, now: float) -> bool:
        async with self._db.connection() as conn:
            changed = await execute(conn, self._sql.release, (now, now, run_id, owner, token))
            return changed == 1

    # -- journal and inbox ---------------------------------------------------------------

    async def read_journal(self, run_id: str) -> list[JournalEntry]:
        return [entry_from_row(r) for r in await self._db.rows(self._sql.read_journal, (run_id,))]

    async def read_inbox(self, run_id: str, now: float) -> list[InboxItem]:
        return [inbox_item(r) for r in await self._db.rows(self._sql.due, (run_id, now))]

    async def _add_inbox(self, c: Connection, item: NewInboxItem) -> bool:
        added = await execute(c, self._sql.add_inbox, inbox_values(item))
        return added == 1

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

    async def _deliver(self, c: Connection, item: NewInboxItem, now: float) -> bool:
        rows = await fetch(c, self._sql.lock_run, (item.run_id,))
        if not rows:
            raise RunNotFound(item.run_id)
        status, owner = RunStatus(rows[0][0]), text(rows[0][1])
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
            await execute(c, self._sql.notify_pending, (item.run_id,))
        elif status is RunStatus.RUNNING:
            wake = max(now, item.visible_at)
            await execute(c, self._sql.notify_running, (wake, wake, item.run_id))
        return True

    async def get_event(self, run_id: str, key: str) -> bytes | None:
        rows = await self._db.rows(self._sql.get_event, (run_id, key_hash(key)))
        return rows[0][0] if rows else None

    async def next_wake_at(self) -> float | None:
        rows = await self._db.rows(self._sql.next_wake)
        return None if not rows or rows[0][0] is None else float(rows[0][0])

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
            # A child that exists already is locked by its (idempotent) creation.
            runs.update(child.id for child in cp.children)
            if cp.outcome in _FINISHED:
                parents_of.add(cp.run_id)

        async def write(c: Connection) -> list[CheckpointResult]:
            states = await self._lock_runs(c, runs, parents_of, always=True)
            return await self._apply_batch(c, batch, states)

        async def write_one_by_one(c: Connection) -> list[CheckpointResult]:
            states = await self._lock_runs(c, runs, parents_of, always=True)
            results = []
            for cp in batch:
                await execute(c, "SAVEPOINT one_checkpoint")
                try:
                    [result] = await self._apply_round(c, [cp], states)
                except IntegrityError:
                    await execute(c, "ROLLBACK TO SAVEPOINT one_checkpoint")
                    result = CheckpointResult(False, await self._mailbox(c, cp.run_id))
                states = await self._read_states(c, states)
                results.append(result)
            return results

        try:
            return await self._db.transact(write)
        except IntegrityError:
            # A constraint refused a row (a journal entry recorded twice): again, one
            # checkpoint at a time, so that only the offending one is not applied.
            return await self._db.transact(write_one_by_one)

    async def _read_states(self, c: Connection, states: dict[str, RunState]) -> dict[str, RunState]:
        """The current state of runs this transaction holds locked (its own writes
        included)."""
        if not states:
            return {}
        rows = await fetch(c, self._sql.state(len(states)), list(states))
        return {text(r[0]): run_state(r) for r in rows}

    async def _apply_batch(
        self, c: Connection, batch: Sequence[Checkpoint], states: dict[str, RunState]
    ) -> list[CheckpointResult]:
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
        for k, indexes in enumerate(rounds):
            if k:
                states = await self._read_states(c, states)
            applied = await self._apply_round(c, [batch[i] for i in indexes], states)
            for i, result in zip(indexes, applied, strict=True):
                results[i] = result
        return results

    async def _apply_round(
        self, c: Connection, cps: list[Checkpoint], states: dict[str, RunState]
    ) -> list[CheckpointResult]:
        """Checkpoints of distinct runs, fenced against their locked rows' state: the
        lease and journal length of those that hold their lease in one statement, then
        the writes."""
        live: list[Checkpoint] = []
        for cp in cps:
            state = states.get(cp.run_id)
            if state is None or state.owner != cp.owner or state.token != cp.token:
                continue
            base = cp.entries[0].seq if cp.entries else None
            if base is None or (
                state.journal_len == base
                and all(e.seq == base + i for i, e in enumerate(cp.entries))
            ):
                live.append(cp)
        if live:
            await self._write_round(c, live, states)
        held = {cp.run_id for cp in live}
        lost = sorted({cp.run_id for cp in cps} - held)
        mailboxes: dict[str, int] = {}
        if lost:
            rows = await fetch(c, self._sql.mailboxes(len(lost)), lost)
            mailboxes = {text(r[0]): int(r[1]) for r in rows}
        # Nothing in a checkpoint delivers to its own run, so the mailbox read with the
        # lock is still current.
        return [
            CheckpointResult(True, states[cp.run_id].mailbox)
            if cp.run_id in held
            else CheckpointResult(False, mailboxes.get(cp.run_id, 0))
            for cp in cps
        ]

    async def _write_round(
        self, c: Connection, live: list[Checkpoint], states: dict[str, RunState]
    ) -> None:
        sql = self._sql
        # The fence's writes: the journal length and the lease extension.
        await execute_rows(
            c,
            sql.fence,
            [
                (
                    cp.run_id,
                    states[cp.run_id].journal_len + len(cp.entries),
                    len(cp.entries),
                    cp.now,
                    cp.lease_until,
                )
                for cp in live
            ],
        )
        # What each checkpoint writes to its own run, all runs at once.
        await self._append(c, [(cp.run_id, e) for cp in live for e in cp.entries])
        consumed = [(i, cp.run_id) for cp in live for i in cp.consumed]
        if consumed:
            await execute_rows(c, sql.consume, consumed)
        timers = [
            (cp.run_id, key_hash(f"timer:{states[cp.run_id].generation}:{p}"))
            for cp in live
            for p in cp.cancel_timers
        ]
        if timers:
            await execute_rows(c, sql.cancel_timers, timers)
        own = [inbox_values(item) for cp in live for item in cp.inbox if item.run_id == cp.run_id]
        if own:
            await execute_many(c, sql.add_inbox, own)
        events = [(cp.run_id, key_hash(k), k, v) for cp in live for k, v in cp.events.items()]
        if events:
            await execute_many(c, sql.set_event, events)

        # The runs' new states.
        finishing = [cp for cp in live if cp.outcome in _FINISHED]
        if finishing:
            await execute_rows(
                c,
                sql.finish,
                [(cp.run_id, cp.outcome.value, cp.result, cp.error, cp.now) for cp in finishing],
            )
        for cp in live:
            if cp.outcome is Outcome.HELD:
                await execute(c, sql.hold, (cp.error, cp.run_id))
            elif cp.outcome is Outcome.CONTINUED:
                await execute(c, sql.clear_journal, (cp.run_id,))
                await execute(c, sql.clear_inbox, (cp.run_id,))
                await execute(c, sql.continue_run, (cp.new_input, cp.now, cp.now, cp.run_id))
        parking = [cp for cp in live if cp.outcome is Outcome.NONE and cp.release]
        if parking:
            ids = [cp.run_id for cp in parking]
            pending: dict[str, list[InboxItem]] = defaultdict(list)
            for r in await fetch(c, sql.pending(len(ids)), ids):
                found = inbox_item(r)
                pending[found.run_id].append(found)
            wakes = [
                wake_after(
                    pending[cp.run_id],
                    states[cp.run_id].mailbox,
                    cp.mailbox_seen,
                    cp.now,
                    cp.runnable,
                )
                for cp in parking
            ]
            await execute_rows(c, sql.park, list(zip(ids, wakes, strict=True)))

        # Then what they do to other runs, as a delivery from elsewhere would: after the
        # runs of this round parked, so that a message to one of them wakes it.
        children = [cp.run_id for cp in finishing if states[cp.run_id].parent_id is not None]
        finished: dict[str, RunRecord] = {}
        if children:
            rows = await fetch(c, sql.runs_by_id(len(children)), children)
            finished = {rec.id: rec for rec in map(run_record, rows)}
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

    async def _append(self, c: Connection, entries: Sequence[tuple[str, JournalEntry]]) -> None:
        if entries:
            await execute_many(
                c,
                self._sql.append_journal,
                [(r, *entry_values(e)) for r, e in entries],
            )

    # -- operators ------------------------------------------------------------------------

    async def change_run(self, change: RunChange, now: float) -> tuple[RunRecord, bool]:
        async def apply(c: Connection) -> tuple[RunRecord, bool]:
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
                    raise RunDeduplicated(rec.queue, rec.dedup_key, text(holder[0][0]))
            sql = self._sql
            if change.fence:
                await execute(c, sql.fence_off, (run_id,))
            length = rec.journal_len
            if change.truncate_from is not None:
                await execute(c, sql.truncate_journal, (run_id, change.truncate_from))
                await execute(c, sql.forget_consumed, (run_id,))
                length = min(length, change.truncate_from)
            entries = [replace(e, seq=length + i) for i, e in enumerate(change.entries)]
            await self._append(c, [(run_id, e) for e in entries])
            added = 0
            for item in change.inbox:
                added += await self._add_inbox(c, item)
            await execute(c, sql.bump_mailbox, (length + len(entries), added, now, run_id))
            if change.status.is_terminal:
                await self._finish(c, run_id, change.status, None, change.error, now)
            else:
                await execute(
                    c, sql.reopen, (change.status.value, change.fence, change.wake, now, run_id)
                )
            after = await self._get(c, run_id)
            assert after is not None
            return after, True

        return await self._db.transact(apply)

    async def purge_runs(
        self, finished_before: float, limit: int, run_id: str | None = None
    ) -> list[str]:
        cutoff = finite(finished_before)

        async def purge(c: Connection) -> list[str]:
            rows = await fetch(c, self._sql.purgeable, (cutoff, run_id, run_id, limit))
            ids = [text(r[0]) for r in rows]
            if ids:
                for statement in self._sql.purge(len(ids)):
                    await execute(c, statement, ids)
            return ids

        return await self._db.transact(purge)

    # -- workers --------------------------------------------------------------------------

    async def save_worker(self, worker_id: str, seen_at: float, info: bytes) -> None:
        async with self._db.connection() as conn:
            await execute(conn, self._sql.save_worker, (worker_id, seen_at, info))

    async def list_workers(self, seen_after: float) -> list[WorkerRecord]:
        rows = await self._db.rows(self._sql.list_workers, (finite(seen_after),))
        return [WorkerRecord(text(r[0]), float(r[1]), bytes(r[2])) for r in rows]

    async def forget_workers(self, seen_before: float, worker_id: str | None = None) -> int:
        async with self._db.connection() as conn:
            if worker_id is not None:
                return await execute(conn, self._sql.forget_worker, (worker_id,))
            return await execute(conn, self._sql.forget_workers, (finite(seen_before),))

    async def _mailbox(self, c: Connection, run_id: str) -> int:
        rows = await fetch(c, self._sql.mailboxes(1), (run_id,))
        return int(rows[0][1]) if rows else 0

    async def _finish(
        self,
        c: Connection,
        run_id: str,
        status: RunStatus,
        result: bytes | None,
        error: bytes | None,
        now: float,
    ) -> None:
        await execute(c, self._sql.finish_one, (status.value, result, error, now, now, run_id))
        rec = await self._get(c, run_id)
        assert rec is not None
        await self._notify_parent(c, rec, now)

    async def _notify_parent(self, c: Connection, rec: RunRecord, now: float) -> None:
        if rec.parent_id is not None:
            with contextlib.suppress(RunNotFound):  # raised before it writes anything
                await self._deliver(c, child_outcome_item(rec, now), now)


__all__ = ["MySQLBackend"]
