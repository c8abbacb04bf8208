"""The backend contract: every method is one domain transaction.

A backend stores runs, their journals, inboxes and events. Each method below is
atomic on its own; none takes SQL or keys. Writes made on behalf of a worker are
*fenced*: they apply only while the worker's lease (owner + token) is current. Every
method receives the time from the caller, so one injectable clock rules them all.

The conformance suite in ``tests/backends`` runs against every implementation.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace

from ..records import (
    Checkpoint,
    CheckpointResult,
    Claim,
    InboxItem,
    JournalEntry,
    NewInboxItem,
    NewRun,
    QueueLimits,
    RunChange,
    RunFilter,
    RunPage,
    RunRecord,
    RunStatus,
    WorkerRecord,
)


class Feature(enum.Flag):
    """Optional abilities a backend declares."""

    NONE = 0
    MULTI_PROCESS = enum.auto()  # several processes may share the store
    DURABLE = enum.auto()  # survives the process that wrote it


class Backend(ABC):
    """Storage for runs: memory, sqlite, postgres."""

    features: Feature = Feature.NONE
    url: str = ""

    @classmethod
    def from_url(cls, url: str) -> Backend:
        """Build, not yet open, the backend a URL names (options in its query string)."""
        return cls()

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect and apply pending migrations. Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Idempotent."""

    async def watch(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever another process may have made work due now (started
        a run, sent a message), until cancelled. A backend without push notifications
        returns at once: workers poll for work either way, so a missed notification
        only costs latency."""
        return None

    @abstractmethod
    async def create_run(self, run: NewRun) -> tuple[RunRecord, bool]:
        """Create a run, idempotent on its id: returns the run and whether it was created.
        An existing run is returned unchanged whatever its workflow; the caller
        decides whether a different workflow is a conflict. A new run whose
        ``dedup_key`` an unfinished run of its queue holds is not created:
        RunDeduplicated. A ``queued`` run is not due until ``admit_runs`` admits it."""

    @abstractmethod
    async def get_run(self, run_id: str) -> RunRecord | None:
        """Read a run, or None."""

    @abstractmethod
    async def list_runs(self, filter: RunFilter, limit: int, cursor: str | None) -> RunPage:
        """List runs, newest first, ``limit`` at a time; the cursor is stable under inserts."""

    async def count_runs(self, filter: RunFilter) -> dict[RunStatus, int]:
        """How many runs match ``filter`` (its ``status`` ignored), by status; a status
        no run has is left out. This default pages through ``list_runs``; a backend
        that can count in one query does."""
        whole = replace(filter, status=None)
        counts: Counter[RunStatus] = Counter()
        cursor: str | None = None
        while True:
            page = await self.list_runs(whole, 1000, cursor)
            counts.update(rec.status for rec in page.runs)
            if page.cursor is None:
                return dict(counts)
            cursor = page.cursor

    @abstractmethod
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
        """Lease up to ``limit`` runs of ``workflows`` that need a worker (pending or
        running, due ``wake_at``, no live lease), and, given a ``version``, whose
        version is that one or none, and given ``queues``, on one of those queues.
        Increments each lease token, marks pending runs running, counts recoveries of
        expired leases, and returns each run's due inbox items. A run whose lease
        expired after ``max_recoveries`` recoveries in a row is not claimed but ends
        as ``dead_letter`` (telling its parent); a checkpoint that records journal
        entries resets the count."""

    @abstractmethod
    async def admit_runs(self, queue: QueueLimits, now: float, limit: int = 100) -> list[str]:
        """Admit up to ``limit`` queued runs of ``queue.name`` whose start time has come,
        as many as its limits allow now (counting its admitted runs that have not
        ended), highest ``priority`` first and oldest first within one; they become due
        at once. Returns their ids. Serialized per queue across processes, so limits
        hold however many workers admit at the same time."""

    @abstractmethod
    async def read_journal(self, run_id: str) -> list[JournalEntry]:
        """The run's journal for its current generation, in order."""

    @abstractmethod
    async def read_inbox(self, run_id: str, now: float) -> list[InboxItem]:
        """The run's unconsumed inbox items visible at ``now``, oldest first."""

    @abstractmethod
    async def checkpoint(self, batch: Sequence[Checkpoint]) -> list[CheckpointResult]:
        """Apply each checkpoint atomically and fenced (owner + token); a checkpoint whose
        lease is lost writes nothing and reports ``applied=False``. Journal entries are
        unique by (run, seq): a duplicate aborts that checkpoint. Finishing a child run
        notifies its parent's inbox in the same transaction."""

    @abstractmethod
    async def extend_leases(
        self, owner: str, leases: dict[str, int], lease_until: float
    ) -> dict[str, int]:
        """Extend the leases still held (run id -> token); returns run id -> mailbox
        counter for those extended. Runs missing from the result were lost."""

    @abstractmethod
    async def release(self, run_id: str, owner: str, token: int, now: float) -> bool:
        """Give a run back without writing anything else (shutdown, errors)."""

    @abstractmethod
    async def deliver(self, item: NewInboxItem, now: float) -> bool:
        """Add an item to a run's inbox and wake the run. Idempotent on ``item.key``:
        returns False if that key was already delivered. Raises RunNotFound."""

    @abstractmethod
    async def get_event(self, run_id: str, key: str) -> bytes | None:
        """The last value set for ``key`` by the run, or None."""

    @abstractmethod
    async def change_run(self, change: RunChange, now: float) -> tuple[RunRecord, bool]:
        """Apply an operator's change (see ``RunChange``) as one transaction. Returns the
        run afterwards and whether the change applied (False: the run's status was not
        in ``change.expect``; nothing was written). Raises RunNotFound."""

    @abstractmethod
    async def purge_runs(
        self, finished_before: float, limit: int, run_id: str | None = None
    ) -> list[str]:
        """Delete up to ``limit`` ended runs (terminal status) that finished before the
        cutoff, with their journals, inboxes and events; only ``run_id`` if given.
        Returns the ids deleted. A run that has not ended is never touched."""

    @abstractmethod
    async def save_worker(self, worker_id: str, seen_at: float, info: bytes) -> None:
        """Record that a worker is alive (insert or replace its row)."""

    @abstractmethod
    async def list_workers(self, seen_after: float) -> list[WorkerRecord]:
        """The workers seen after ``seen_after``, by id."""

    @abstractmethod
    async def forget_workers(self, seen_before: float, worker_id: str | None = None) -> int:
        """Delete the workers last seen before ``seen_before`` (only ``worker_id``, at
        any time, if given); returns how many."""

    @abstractmethod
    async def next_wake_at(self) -> float | None:
        """When a worker should next look: the earliest ``wake_at`` of unleased runs, or
        ``lease_until`` of leased ones (an expired lease makes its run claimable)."""
