"""The records that cross the backend contract: runs, journal entries, inbox items,
checkpoints. Plain data; no behaviour beyond small conveniences."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

DEFAULT_QUEUE = "default"


class RunStatus(enum.StrEnum):
    """Where a run is in its life."""

    PENDING = "pending"  # created, not yet picked up by a worker
    RUNNING = "running"  # started; executing or waiting (timer, signal, child)
    COMPLETED = "completed"  # returned a result
    FAILED = "failed"  # raised; the error is stored
    CANCELLED = "cancelled"  # cancelled by request or by its timeout
    HELD = "held"  # stopped by a non-determinism error; waits for an operator
    PAUSED = "paused"  # an operator paused it: it starts nothing until resumed
    TERMINATED = "terminated"  # ended at once by an operator, without its cleanup
    DEAD_LETTER = "dead_letter"  # its workers died on it too often; waits for a retry

    @property
    def is_terminal(self) -> bool:
        """Ended: nothing runs it again unless an operator retries it."""
        return self in _TERMINAL

    @property
    def is_active(self) -> bool:
        """A worker may claim it when it is due."""
        return self in (RunStatus.PENDING, RunStatus.RUNNING)


_TERMINAL = {
    RunStatus.COMPLETED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.TERMINATED,
    RunStatus.DEAD_LETTER,
}


class IdPolicy(enum.StrEnum):
    """What starting a run under an id that is taken does."""

    USE_EXISTING = "use_existing"  # return the existing run's handle (idempotent start)
    REJECT = "reject"  # raise RunExists
    REPLACE_ENDED = "replace_ended"  # start anew if the existing run ended, however
    REPLACE_FAILED = "replace_failed"  # start anew if it ended other than completed

    def replaces(self, status: RunStatus) -> bool:
        if self is IdPolicy.REPLACE_ENDED:
            return status.is_terminal
        if self is IdPolicy.REPLACE_FAILED:
            return status.is_terminal and status is not RunStatus.COMPLETED
        return False


class EntryKind(enum.StrEnum):
    """What a journal entry records. Entries marked *delivered* complete an operation
    and are fed back to the workflow, on replay, in journal order."""

    STEP = "step"  # delivered: a step's final result or error
    STEP_ATTEMPT = "step_attempt"  # a failed attempt that will be retried
    TIMER = "timer"  # delivered: a durable timer fired
    SIGNAL = "signal"  # delivered: a message consumed by receive()
    CHILD_STARTED = "child_started"  # a child run was created
    CHILD = "child"  # delivered: a child run finished
    SIDE_EFFECT = "side_effect"  # the recorded value of side_effect()
    EVENT = "event"  # set_event(key, value)
    PATCH = "patch"  # patched(change_id) took the new branch
    CANCEL = "cancel"  # delivered: cancellation was requested
    CONTROL = "control"  # an operator's action (name: pause, resume, retry, terminate, fork)
    LOG = "log"  # a line a step wrote through perdure.logger

    @property
    def delivered(self) -> bool:
        return self in _DELIVERED


_DELIVERED = {EntryKind.STEP, EntryKind.TIMER, EntryKind.SIGNAL, EntryKind.CHILD, EntryKind.CANCEL}


class InboxKind(enum.StrEnum):
    """Things that happen to a run that it has not consumed yet."""

    SIGNAL = "signal"  # a message sent to the run (topic, payload)
    TIMER = "timer"  # a durable timer at ``pos`` is due at ``visible_at``
    RETRY = "retry"  # the step at ``pos`` may try again at ``visible_at``
    CHILD = "child"  # the child started at ``pos`` finished (payload: outcome)
    CANCEL = "cancel"  # cancellation requested (payload: reason)
    DEADLINE = "deadline"  # the run's own timeout is due at ``visible_at``
    PAUSE = "pause"  # an operator paused the run (payload: who and why)
    RESUME = "resume"  # an operator resumed it (payload: who and why)

    @property
    def scheduled(self) -> bool:
        """Due at ``visible_at`` (timers, retries, deadlines). The others are due at once,
        whatever their timestamp says: it comes from the sender's clock."""
        return self in _SCHEDULED

    def due(self, visible_at: float, now: float) -> bool:
        return visible_at <= now or not self.scheduled


_SCHEDULED = {InboxKind.TIMER, InboxKind.RETRY, InboxKind.DEADLINE}


@dataclass(frozen=True)
class JournalEntry:
    seq: int  # order within the run's current generation, from 0
    pos: int  # the operation's position in the code (-1: none)
    kind: EntryKind
    name: str  # step / workflow / topic / event key / change id
    payload: bytes | None  # encoded result, value or error
    at: float  # workflow time when it was recorded
    attempt: int = 0  # for steps: the attempt that produced this entry
    failed: bool = False  # the payload is an ErrorInfo (JSON), not a value
    detail: bytes | None = None  # for steps: when the attempt started, and its input


@dataclass(frozen=True)
class InboxItem:
    id: int
    run_id: str
    kind: InboxKind
    pos: int = -1
    topic: str | None = None
    payload: bytes | None = None
    visible_at: float = 0.0
    key: str | None = None


@dataclass(frozen=True)
class NewInboxItem:
    """An inbox item to add; ``key`` makes the insert idempotent per run."""

    run_id: str
    kind: InboxKind
    visible_at: float
    pos: int = -1
    topic: str | None = None
    payload: bytes | None = None
    key: str | None = None


@dataclass(frozen=True)
class NewRun:
    id: str
    workflow: str
    input: bytes
    created_at: float
    parent_id: str | None = None
    parent_pos: int = -1
    timeout: float | None = None  # seconds from the first start; a DEADLINE item
    start_at: float | None = None  # delayed start (defaults to created_at)
    # A fork starts with a journal and events taken from another run (seq from 0;
    # one value per event key).
    journal: tuple[JournalEntry, ...] = ()
    events: tuple[tuple[str, bytes], ...] = ()
    version: str | None = None  # only workers of this code version may run it
    key: str | None = None  # the caller's business key: for listing and per-key limits
    queue: str = DEFAULT_QUEUE
    priority: int = 0  # higher is admitted first, where a queue admits runs by turn
    dedup_key: str | None = None  # no two unfinished runs of one queue share it
    queued: bool = False  # waits for ``admit_runs`` before any worker may claim it


@dataclass(frozen=True)
class RunRecord:
    id: str
    workflow: str
    status: RunStatus
    input: bytes
    result: bytes | None
    error: bytes | None  # encoded ErrorInfo when failed / cancelled / held
    parent_id: str | None
    parent_pos: int
    generation: int
    journal_len: int
    created_at: float
    started_at: float | None
    updated_at: float
    finished_at: float | None
    wake_at: float | None
    owner: str | None
    lease_token: int
    lease_until: float | None
    mailbox: int
    recoveries: int
    version: str | None = None  # the code version it is pinned to (None: any)
    key: str | None = None
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    dedup_key: str | None = None
    queued: bool = False  # still waiting for a place in its queue
    admitted_at: float | None = None  # when its queue let it start


@dataclass(frozen=True)
class QueueLimits:
    """What a queue allows at once, enforced by ``Backend.admit_runs`` across workers.

    ``concurrency`` caps the queue's admitted, unfinished runs; ``per_key`` caps them
    per run key (runs without a key are not limited by it); ``rate`` caps admissions
    in any ``period`` seconds. None: no such limit.
    """

    name: str
    concurrency: int | None = None
    per_key: int | None = None
    rate: int | None = None
    period: float = 0.0


@dataclass(frozen=True)
class WorkerRecord:
    """A worker in the registry: when it last checked in, and what it says of itself
    (JSON the backend does not read)."""

    id: str
    seen_at: float
    info: bytes


@dataclass(frozen=True)
class Claim:
    """A run claimed by a worker: the lease token fences its writes."""

    run: RunRecord
    token: int
    inbox: list[InboxItem]


class Outcome(enum.StrEnum):
    """How a checkpoint changes the run's status."""

    NONE = "none"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    HELD = "held"
    CONTINUED = "continued"  # continue-as-new: journal cleared, new input


@dataclass
class Checkpoint:
    """Everything one worker step of one run writes, as one fenced transaction."""

    run_id: str
    owner: str
    token: int
    now: float
    lease_until: float
    entries: list[JournalEntry] = field(default_factory=list)
    consumed: list[int] = field(default_factory=list)  # inbox ids
    inbox: list[NewInboxItem] = field(default_factory=list)  # own timers, messages out
    cancel_timers: list[int] = field(default_factory=list)  # positions
    children: list[NewRun] = field(default_factory=list)
    cancel_runs: list[tuple[str, str]] = field(default_factory=list)  # (run id, reason)
    events: dict[str, bytes] = field(default_factory=dict)
    outcome: Outcome = Outcome.NONE
    result: bytes | None = None
    error: bytes | None = None
    new_input: bytes | None = None  # for CONTINUED
    release: bool = False
    mailbox_seen: int = 0
    runnable: bool = False  # with release: the run has work now (e.g. steps not started)

    def is_empty(self) -> bool:
        return not (
            self.entries
            or self.consumed
            or self.inbox
            or self.cancel_timers
            or self.children
            or self.cancel_runs
            or self.events
            or self.outcome is not Outcome.NONE
            or self.release
        )


@dataclass(frozen=True)
class CheckpointResult:
    applied: bool  # False: the lease was lost; nothing was written
    mailbox: int  # the run's mailbox counter after the write


@dataclass(frozen=True)
class RunChange:
    """An operator's change to one run, applied atomically by ``Backend.change_run``.

    It applies only while the run's status is in ``expect``. ``fence`` ends any lease
    (a new token, no owner), so the worker holding the run can write nothing more;
    only then may the journal be rewritten: ``truncate_from`` deletes entries from
    that seq on (and the run's consumed inbox items, which only mattered to them),
    and ``entries`` are appended at the end (their ``seq`` assigned by the backend).
    A terminal ``status`` ends the run with ``error`` and tells a parent; any other
    clears the outcome, and with ``wake`` makes the run due now (a run still waiting
    for a place in its queue stays queued: its queue admits it).
    """

    run_id: str
    expect: frozenset[RunStatus]
    status: RunStatus
    fence: bool = False
    truncate_from: int | None = None
    entries: tuple[JournalEntry, ...] = ()
    error: bytes | None = None
    inbox: tuple[NewInboxItem, ...] = ()
    wake: bool = False

    def __post_init__(self) -> None:
        if (self.truncate_from is not None or self.entries) and not self.fence:
            raise ValueError("the journal may only be rewritten behind a fence")


@dataclass(frozen=True)
class RunFilter:
    workflow: str | None = None
    status: RunStatus | None = None
    parent_id: str | None = None
    key: str | None = None
    queue: str | None = None
    created_after: float | None = None
    created_before: float | None = None


@dataclass(frozen=True)
class RunPage:
    runs: list[RunRecord]
    cursor: str | None  # pass back to get the next page; None at the end


def describe(entry: JournalEntry) -> str:
    return f"{entry.kind.value} {entry.name!r}"


Json = Any
