"""The in-memory backend: the whole contract in plain Python objects.

For tests and for the testing kit. One process only; nothing survives it. It is
also the reference the other backends are held to by the conformance suite.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

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
    CARRIED_OVER,
    UNFINISHED,
    admission_room,
    cancel_error,
    cancels_at_once,
    child_outcome_item,
    dead_letter_error,
    dead_letters,
    deadline_item,
    decode_cursor,
    encode_cursor,
    pick_admissions,
    reclaims_dedup_key,
    wake_after,
)


@dataclass
class _Inbox:
    item: InboxItem
    consumed: bool = False


@dataclass
class _Run:
    rec: RunRecord
    journal: list[JournalEntry] = field(default_factory=list)
    inbox: list[_Inbox] = field(default_factory=list)
    events: dict[str, bytes] = field(default_factory=dict)
    ready_at: float = 0.0  # when a queued run may be admitted

    def set(self, **changes: object) -> None:
        self.rec = dataclasses.replace(self.rec, **changes)  # type: ignore[arg-type]


class MemoryBackend(Backend):
    features = Feature.NONE
    url = "memory://"

    def __init__(self) -> None:
        self._runs: dict[str, _Run] = {}
        self._workers: dict[str, WorkerRecord] = {}
        self._lock = threading.RLock()
        self._next_inbox_id = 1

    # -- runs -------------------------------------------------------------------------

    async def create_run(self, run: NewRun) -> tuple[RunRecord, bool]:
        with self._lock:
            return self._create(run)

    def _create(self, run: NewRun) -> tuple[RunRecord, bool]:
        existing = self._runs.get(run.id)
        if existing is not None:
            return existing.rec, False
        if run.dedup_key is not None:
            for other in self._runs.values():
                o = other.rec
                if (o.queue, o.dedup_key) == (run.queue, run.dedup_key) and o.status in UNFINISHED:
                    raise RunDeduplicated(run.queue, run.dedup_key, o.id)
        start = run.start_at if run.start_at is not None else run.created_at
        rec = RunRecord(
            id=run.id,
            workflow=run.workflow,
            status=RunStatus.PENDING,
            input=run.input,
            result=None,
            error=None,
            parent_id=run.parent_id,
            parent_pos=run.parent_pos,
            generation=0,
            journal_len=0,
            created_at=run.created_at,
            started_at=None,
            updated_at=run.created_at,
            finished_at=None,
            wake_at=None if run.queued else start,
            owner=None,
            lease_token=0,
            lease_until=None,
            mailbox=0,
            recoveries=0,
            version=run.version,
            key=run.key,
            queue=run.queue,
            priority=run.priority,
            dedup_key=run.dedup_key,
            queued=run.queued,
            admitted_at=None if run.queued else start,
        )
        self._runs[run.id] = _Run(rec, list(run.journal), events=dict(run.events), ready_at=start)
        if run.journal:
            self._runs[run.id].set(journal_len=len(run.journal))
        if run.timeout is not None:
            self._add_inbox(deadline_item(run.id, start, run.timeout))
        return self._runs[run.id].rec, True

    async def get_run(self, run_id: str) -> RunRecord | None:
        with self._lock:
            run = self._runs.get(run_id)
            return run.rec if run else None

    async def list_runs(self, filter: RunFilter, limit: int, cursor: str | None) -> RunPage:
        with self._lock:
            recs = [r.rec for r in self._runs.values() if _matches(r.rec, filter)]
        recs.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        if cursor is not None:
            after = decode_cursor(cursor)
            recs = [r for r in recs if (r.created_at, r.id) < after]
        page = recs[:limit]
        more = len(recs) > limit
        return RunPage(page, encode_cursor(page[-1].created_at, page[-1].id) if more else None)

    # -- leases -----------------------------------------------------------------------

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
        with self._lock:
            names = set(workflows)
            due = [
                r
                for r in self._runs.values()
                if r.rec.workflow in names
                and _claimable(r.rec, now)
                and (version is None or r.rec.version in (None, version))
                and (queues is None or r.rec.queue in queues)
            ]
            due.sort(key=lambda r: (r.rec.wake_at or 0.0, r.rec.created_at))
            claims: list[Claim] = []
            for run in due:
                if len(claims) == limit:
                    break
                rec = run.rec
                if dead_letters(rec.recoveries, rec.owner, max_recoveries):
                    run.set(lease_token=rec.lease_token + 1, recoveries=rec.recoveries + 1)
                    self._finish(
                        run, RunStatus.DEAD_LETTER, None, dead_letter_error(rec.recoveries), now
                    )
                    continue
                run.set(
                    owner=owner,
                    lease_token=rec.lease_token + 1,
                    lease_until=lease_until,
                    started_at=rec.started_at if rec.started_at is not None else now,
                    status=RunStatus.RUNNING,
                    updated_at=now,
                    recoveries=rec.recoveries + (1 if rec.owner is not None else 0),
                )
                claims.append(Claim(run.rec, run.rec.lease_token, self._due(run, now)))
            return claims

    async def admit_runs(self, queue: QueueLimits, now: float, limit: int = 100) -> list[str]:
        with self._lock:
            mine = [r for r in self._runs.values() if r.rec.queue == queue.name]
            occupying = [
                r.rec for r in mine if r.rec.admitted_at is not None and r.rec.status in UNFINISHED
            ]
            recent = 0
            if queue.rate is not None:
                since = now - queue.period
                recent = sum(1 for r in mine if (r.rec.admitted_at or since) > since)
            room = admission_room(queue, len(occupying), recent, limit)
            if room == 0:
                return []
            waiting = [
                r
                for r in mine
                if r.rec.queued and r.rec.status is RunStatus.PENDING and r.ready_at <= now
            ]
            waiting.sort(key=lambda r: (-r.rec.priority, r.ready_at, r.rec.id))
            by_key = Counter(rec.key for rec in occupying)
            picked = pick_admissions(queue, room, by_key, [(r.rec.id, r.rec.key) for r in waiting])
            for run_id in picked:
                self._runs[run_id].set(queued=False, admitted_at=now, wake_at=now, updated_at=now)
            return picked

    async def extend_leases(
        self, owner: str, leases: dict[str, int], lease_until: float
    ) -> dict[str, int]:
        with self._lock:
            held: dict[str, int] = {}
            for run_id, token in leases.items():
                run = self._runs.get(run_id)
                if run and run.rec.owner == owner and run.rec.lease_token == token:
                    run.set(lease_until=lease_until)
                    held[run_id] = run.rec.mailbox
            return held

    async def release(self, run_id: str, owner: str, token: int, now: float) -> bool:
        with self._lock:
            run = self._runs.get(run_id)
            if not run or run.rec.owner != owner or run.rec.lease_token != token:
                return False
            run.set(
                owner=None,
                lease_until=None,
                updated_at=now,
                wake_at=now if not run.rec.status.is_terminal else None,
            )
            return True

    # -- journal and inbox ------------------------------------------------------------

    async def read_journal(self, run_id: str) -> list[JournalEntry]:
        with self._lock:
            run = self._runs.get(run_id)
            return list(run.journal) if run else []

    async def read_inbox(self, run_id: str, now: float) -> list[InboxItem]:
        with self._lock:
            run = self._runs.get(run_id)
            return self._due(run, now) if run else []

    def _due(self, run: _Run, now: float) -> list[InboxItem]:
        return [
            b.item for b in run.inbox if not b.consumed and b.item.kind.due(b.item.visible_at, now)
        ]

    def _add_inbox(self, new: NewInboxItem) -> bool:
        run = self._runs[new.run_id]
        if new.key is not None and any(b.item.key == new.key for b in run.inbox):
            return False
        item = InboxItem(
            self._next_inbox_id,
            new.run_id,
            new.kind,
            new.pos,
            new.topic,
            new.payload,
            new.visible_at,
            new.key,
        )
        self._next_inbox_id += 1
        run.inbox.append(_Inbox(item))
        return True

    async def deliver(self, item: NewInboxItem, now: float) -> bool:
        with self._lock:
            return self._deliver(item, now)

    def _deliver(self, item: NewInboxItem, now: float) -> bool:
        run = self._runs.get(item.run_id)
        if run is None:
            raise RunNotFound(item.run_id)
        status = run.rec.status
        if item.kind is InboxKind.CANCEL and status.is_terminal:
            return False
        if not self._add_inbox(item):
            return False
        if item.kind is InboxKind.CANCEL and cancels_at_once(status, run.rec.owner):
            # Nothing to unwind (never started, or held): it ends here, without a worker.
            self._finish(run, RunStatus.CANCELLED, None, cancel_error(item.payload), now)
            return True
        if status is RunStatus.PENDING:
            # It keeps its start time: a message does not start a delayed run early.
            run.set(mailbox=run.rec.mailbox + 1)
        elif status is RunStatus.RUNNING:
            wake = max(now, item.visible_at)
            current = run.rec.wake_at
            run.set(
                mailbox=run.rec.mailbox + 1, wake_at=wake if current is None else min(current, wake)
            )
        return True

    # -- operators --------------------------------------------------------------------

    async def change_run(self, change: RunChange, now: float) -> tuple[RunRecord, bool]:
        with self._lock:
            run = self._runs.get(change.run_id)
            if run is None:
                raise RunNotFound(change.run_id)
            if run.rec.status not in change.expect:
                return run.rec, False
            if reclaims_dedup_key(run.rec, change):
                rec = run.rec
                for other in self._runs.values():
                    o = other.rec
                    if (o.queue, o.dedup_key) == (rec.queue, rec.dedup_key) and (
                        o.status in UNFINISHED
                    ):
                        assert rec.dedup_key is not None
                        raise RunDeduplicated(rec.queue, rec.dedup_key, o.id)
            if change.fence:
                run.set(owner=None, lease_until=None, lease_token=run.rec.lease_token + 1)
            if change.truncate_from is not None:
                del run.journal[change.truncate_from :]
                run.inbox = [b for b in run.inbox if not b.consumed]
            for entry in change.entries:
                run.journal.append(dataclasses.replace(entry, seq=len(run.journal)))
            run.set(journal_len=len(run.journal), updated_at=now)
            for item in change.inbox:
                if self._add_inbox(item):
                    run.set(mailbox=run.rec.mailbox + 1)
            if change.status.is_terminal:
                self._finish(run, change.status, None, change.error, now)
            else:
                run.set(status=change.status, result=None, error=None, finished_at=None)
                if change.fence:
                    run.set(recoveries=0)
                if change.wake and not run.rec.queued:
                    run.set(wake_at=now)
            return run.rec, True

    async def purge_runs(
        self, finished_before: float, limit: int, run_id: str | None = None
    ) -> list[str]:
        with self._lock:
            candidates = [self._runs[run_id]] if run_id in self._runs else []
            if run_id is None:
                candidates = list(self._runs.values())
            ended = [
                r.rec
                for r in candidates
                if r.rec.status.is_terminal
                and r.rec.finished_at is not None
                and r.rec.finished_at < finished_before
            ]
            ended.sort(key=lambda rec: rec.finished_at or 0.0)
            gone = [rec.id for rec in ended[:limit]]
            for key in gone:
                del self._runs[key]
            return gone

    # -- workers ----------------------------------------------------------------------

    async def save_worker(self, worker_id: str, seen_at: float, info: bytes) -> None:
        with self._lock:
            self._workers[worker_id] = WorkerRecord(worker_id, seen_at, info)

    async def list_workers(self, seen_after: float) -> list[WorkerRecord]:
        with self._lock:
            return sorted(
                (w for w in self._workers.values() if w.seen_at > seen_after),
                key=lambda w: w.id,
            )

    async def forget_workers(self, seen_before: float, worker_id: str | None = None) -> int:
        with self._lock:
            gone = [
                w.id
                for w in self._workers.values()
                if (w.id == worker_id if worker_id is not None else w.seen_at < seen_before)
            ]
            for key in gone:
                del self._workers[key]
            return len(gone)

    async def get_event(self, run_id: str, key: str) -> bytes | None:
        with self._lock:
            run = self._runs.get(run_id)
            return run.events.get(key) if run else None

    async def next_wake_at(self) -> float | None:
        with self._lock:
            times = [
                r.rec.wake_at if r.rec.owner is None else r.rec.lease_until
                for r in self._runs.values()
                if r.rec.wake_at is not None and r.rec.status in _ACTIVE
            ]
            return min((t for t in times if t is not None), default=None)

    # -- checkpoints ------------------------------------------------------------------

    async def checkpoint(self, batch: Sequence[Checkpoint]) -> list[CheckpointResult]:
        with self._lock:
            return [self._checkpoint(cp) for cp in batch]

    def _checkpoint(self, cp: Checkpoint) -> CheckpointResult:
        run = self._runs.get(cp.run_id)
        if run is None or run.rec.owner != cp.owner or run.rec.lease_token != cp.token:
            return CheckpointResult(False, run.rec.mailbox if run else 0)
        base = run.rec.journal_len
        if any(e.seq != base + i for i, e in enumerate(cp.entries)):
            return CheckpointResult(False, run.rec.mailbox)
        run.journal.extend(cp.entries)
        run.set(journal_len=base + len(cp.entries), updated_at=cp.now)
        if cp.entries:
            run.set(recoveries=0)  # progress: the worker deaths so far were not this run's doing
        consumed = set(cp.consumed)
        for box in run.inbox:
            if box.item.id in consumed:
                box.consumed = True
        if cp.cancel_timers:
            gone = {f"timer:{run.rec.generation}:{p}" for p in cp.cancel_timers}
            run.inbox = [b for b in run.inbox if b.consumed or b.item.key not in gone]
        for child in cp.children:
            self._create(child)
        for new in cp.inbox:
            if new.run_id == cp.run_id:
                self._add_inbox(new)
            elif new.run_id in self._runs:
                self._deliver(new, cp.now)
        for target, reason in cp.cancel_runs:
            if target in self._runs:
                self._deliver(
                    NewInboxItem(
                        target, InboxKind.CANCEL, cp.now, payload=reason.encode(), key="cancel"
                    ),
                    cp.now,
                )
        run.events.update(cp.events)
        if cp.outcome in (Outcome.COMPLETED, Outcome.FAILED, Outcome.CANCELLED):
            status = RunStatus(cp.outcome.value)
            self._finish(run, status, cp.result, cp.error, cp.now)
        elif cp.outcome is Outcome.HELD:
            run.set(
                status=RunStatus.HELD, error=cp.error, owner=None, lease_until=None, wake_at=None
            )
        elif cp.outcome is Outcome.CONTINUED:
            run.journal.clear()
            run.inbox = [b for b in run.inbox if not b.consumed and b.item.kind in CARRIED_OVER]
            run.set(
                generation=run.rec.generation + 1,
                journal_len=0,
                input=cp.new_input or run.rec.input,
                owner=None,
                lease_until=None,
                wake_at=cp.now,
                started_at=cp.now,  # the new generation's clock starts now
            )
        elif cp.release:
            pending = [b.item for b in run.inbox if not b.consumed]
            run.set(
                owner=None,
                lease_until=None,
                wake_at=wake_after(pending, run.rec.mailbox, cp.mailbox_seen, cp.now, cp.runnable),
            )
        else:
            run.set(lease_until=cp.lease_until)
        return CheckpointResult(True, run.rec.mailbox)

    def _finish(
        self, run: _Run, status: RunStatus, result: bytes | None, error: bytes | None, now: float
    ) -> None:
        run.set(
            status=status,
            result=result,
            error=error,
            finished_at=now,
            updated_at=now,
            owner=None,
            lease_until=None,
            wake_at=None,
        )
        parent = run.rec.parent_id
        if parent is not None and parent in self._runs:
            self._deliver(child_outcome_item(run.rec, now), now)


_ACTIVE = (RunStatus.PENDING, RunStatus.RUNNING)


def _claimable(rec: RunRecord, now: float) -> bool:
    return (
        rec.status in _ACTIVE
        and rec.wake_at is not None
        and rec.wake_at <= now
        and (rec.owner is None or (rec.lease_until or 0.0) < now)
    )


def _matches(rec: RunRecord, f: RunFilter) -> bool:
    return (
        (f.workflow is None or rec.workflow == f.workflow)
        and (f.status is None or rec.status == f.status)
        and (f.parent_id is None or rec.parent_id == f.parent_id)
        and (f.key is None or rec.key == f.key)
        and (f.queue is None or rec.queue == f.queue)
        and (f.created_after is None or rec.created_at >= f.created_after)
        and (f.created_before is None or rec.created_at < f.created_before)
    )


__all__ = ["MemoryBackend"]
