"""The records that cross the backend contract: runs, journal entries, inbox items,
checkpoints. Plain data; no behaviour beyond small conveniences."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class RunStatus(enum.StrEnum):
    """Where a run is in its life."""

    PENDING = "pending"  # created, not yet picked up by a worker
    RUNNING = "running"  # started; executing or waiting (timer, signal, child)
    COMPLETED = "completed"  # returned a result
    FAILED = "failed"  # raised; the error is stored
    CANCELLED = "cancelled"  # cancelled by request or by its timeout
    HELD = "held"  # stopped by a non-determinism error; waits for an operator

    @property
    def is_terminal(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


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
class RunFilter:
    workflow: str | None = None
    status: RunStatus | None = None
    parent_id: str | None = None
    created_after: float | None = None
    created_before: float | None = None


@dataclass(frozen=True)
class RunPage:
    runs: list[RunRecord]
    cursor: str | None  # pass back to get the next page; None at the end


def describe(entry: JournalEntry) -> str:
    return f"{entry.kind.value} {entry.name!r}"


Json = Any
