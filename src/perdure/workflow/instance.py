"""One run's workflow code, executing on its deterministic loop against its journal.

The instance turns what workflow code asks for into *operations*, each at a
position (0, 1, 2, ... in the order the code asks). What happened to operations is
*delivered* back in journal order: on replay from the recorded journal, live from
the worker. Between deliveries the loop runs until every task waits, so a replay
sees exactly the interleaving the live run saw. The instance never writes anything
itself: the worker collects what it produced (new journal entries, timers, children,
events, the outcome) and commits it as one checkpoint before acting on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import random as _random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..codec import Payloads
from ..errors import (
    ChildFailed,
    ContinueAsNew,
    ErrorInfo,
    NonDeterminismError,
    RunCancelled,
    SerializationError,
    StepError,
)
from ..records import (
    DEFAULT_QUEUE,
    EntryKind,
    InboxItem,
    InboxKind,
    JournalEntry,
    NewInboxItem,
    NewRun,
    Outcome,
    RunRecord,
    RunStatus,
    describe,
)
from .definition import StepFunction, WorkflowFunction, routed_runner
from .loop import WorkflowLoop

log = logging.getLogger("perdure.workflow")

HISTORY_WARNING = 10_000
MAX_STORED_LINES = 100  # log lines kept per step attempt, and per workflow checkpoint

# Which recorded kinds a requested operation may find at its position.
_ACCEPTS: dict[EntryKind, tuple[EntryKind, ...]] = {
    EntryKind.STEP: (EntryKind.STEP, EntryKind.STEP_ATTEMPT),
    EntryKind.TIMER: (EntryKind.TIMER,),
    EntryKind.SIGNAL: (EntryKind.SIGNAL,),
    EntryKind.CHILD: (EntryKind.CHILD_STARTED, EntryKind.CHILD),
    EntryKind.SIDE_EFFECT: (EntryKind.SIDE_EFFECT,),
    EntryKind.EVENT: (EntryKind.EVENT,),
}


@dataclass(eq=False)
class Operation:
    """Something workflow code is waiting for, at a position."""

    pos: int
    kind: EntryKind
    name: str
    future: asyncio.Future[Any] | None = None
    step: StepFunction[..., Any] | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0  # failed attempts recorded so far
    attempt_base: int = 0  # attempts made before an operator's retry; they do not count
    input: bytes | None = None  # a step's arguments, encoded when first recorded
    timer: asyncio.TimerHandle | None = None
    topic: str | None = None
    child_id: str | None = None
    child_workflow: str | None = None
    cancelled: bool = False


class WorkflowInstance:
    def __init__(
        self,
        run: RunRecord,
        workflow: WorkflowFunction[..., Any],
        payloads: Payloads,
        journal: list[JournalEntry],
    ) -> None:
        self.run_id = run.id
        self.workflow = workflow
        self.generation = run.generation
        self.parent_id = run.parent_id
        self.version = run.version  # children are pinned to the same code version
        self.queue = run.queue
        self.payloads = payloads
        self.loop = WorkflowLoop(self, run.started_at or run.created_at)  # type: ignore[abstract]
        # Seeded per run (not per id: a reused id after deletion gets new values); not secret.
        self.rng = _random.Random(f"{run.id}:{run.created_at:.6f}:{run.generation}")
        self._input = run.input
        self.committed = len(journal)  # journal entries already stored
        self._recorded: dict[int, list[JournalEntry]] = {}
        for entry in journal:
            if entry.pos >= 0:
                self._recorded.setdefault(entry.pos, []).append(entry)
        self._patches = {e.name for e in journal if e.kind is EntryKind.PATCH}
        controls = [e for e in journal if e.kind is EntryKind.CONTROL]
        # Paused by an operator (and not resumed since): start no steps.
        self.paused = bool(controls) and controls[-1].name == "pause"
        retries = [e.seq for e in controls if e.name in ("retry", "resume")]
        self._retried_at = retries[-1] if retries else -1
        self._last_recorded_pos = max((e.pos for e in journal), default=-1)
        self._replay = deque(e for e in journal if e.kind.delivered)
        self.ops: dict[int, Operation] = {}
        self._timer_pos: dict[int, int] = {}  # id(TimerHandle) -> position
        self._next_pos = 0
        self._main: asyncio.Task[Any] | None = None
        self.cancel_requested = False
        self._cancel_reason = ""
        self.live_children: dict[str, int] = {}
        # What the next checkpoint must write.
        self._new: list[JournalEntry] = []
        self._logs = 0  # lines the code logged since the last checkpoint
        # Lines the workflow's own code logged (position -1), recorded / seen this time.
        self._lines_recorded = sum(
            1
            for e in journal
            if e.kind is EntryKind.LOG and json.loads(e.payload or b"{}").get("position") == -1
        )
        self._lines_seen = 0
        self._consumed: list[int] = []
        self._inbox_out: list[NewInboxItem] = []
        self._cancel_timers: list[int] = []
        self._children: list[NewRun] = []
        self._cancel_runs: list[tuple[str, str]] = []
        self._events: dict[str, bytes] = {}
        self._dispatch: list[Operation] = []
        self.outcome = Outcome.NONE
        self.result: bytes | None = None
        self.error: bytes | None = None
        self.new_input: bytes | None = None
        self.nondeterminism: NonDeterminismError | None = None
        self._warned_history = False

    # -- life cycle ---------------------------------------------------------------------

    @property
    def replaying(self) -> bool:
        return bool(self._replay)

    @property
    def finished(self) -> bool:
        return self.outcome is not Outcome.NONE

    def start(self) -> None:
        """Run the code from the top, replaying the recorded journal."""
        args, kwargs = self.payloads.decode_call(self.workflow.fn, self._input)
        self._main = self.loop.create_task(
            self.workflow.fn(*args, **kwargs),
            name=f"perdure:{self.run_id}",
            context=contextvars.Context(),
        )
        self._main.add_done_callback(self._on_main_done)
        self.loop.run_until_idle()
        while self._replay and self.nondeterminism is None:
            entry = self._replay.popleft()
            self.loop.set_time(entry.at)
            self._deliver(entry)
            self.loop.run_until_idle()

    def _on_main_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled():
            task.exception()  # mark it retrieved: the outcome below is how it is reported
        if self.nondeterminism is not None:
            return
        if self._replay:
            self._nondeterministic(
                self._replay[0].pos, describe(self._replay[0]), "the workflow to return"
            )
            return
        if task.cancelled():
            reason = self._cancel_reason or "cancelled"
            self._set_outcome(Outcome.CANCELLED, error=ErrorInfo("Cancelled", reason))
            return
        exc = task.exception()
        if exc is None:
            try:
                self._set_outcome(Outcome.COMPLETED, result=self.payloads.encode(task.result()))
            except SerializationError as err:
                self._set_outcome(Outcome.FAILED, error=ErrorInfo.from_exception(err))
        elif isinstance(exc, ContinueAsNew):
            try:
                data = self.payloads.encode_call(self.workflow.fn, exc.args_, exc.kwargs)
            except (SerializationError, TypeError) as err:
                self._set_outcome(Outcome.FAILED, error=ErrorInfo.from_exception(err))
            else:
                self.new_input = data
                self._set_outcome(Outcome.CONTINUED)
        elif isinstance(exc, NonDeterminismError):
            self.nondeterminism = self.nondeterminism or exc
        elif isinstance(exc, RunCancelled) and self.cancel_requested:
            self._set_outcome(Outcome.CANCELLED, error=ErrorInfo("Cancelled", self._cancel_reason))
        else:
            self._set_outcome(Outcome.FAILED, error=ErrorInfo.from_exception(exc))

    def _set_outcome(
        self, outcome: Outcome, *, result: bytes | None = None, error: ErrorInfo | None = None
    ) -> None:
        self.outcome = outcome
        self.result = result
        self.error = error.to_bytes() if error else None

    def close(self) -> None:
        """Drop the coroutine and any tasks it left behind (finished, evicted, lease
        lost): cancel them quietly so nothing is reported as destroyed while pending."""
        if not self.loop.is_closed():
            for task in list(self.loop.tasks):
                task.cancel()
            with contextlib.suppress(Exception):  # best-effort teardown
                self.loop.run_until_idle()
            for task in list(self.loop.tasks):
                if task.done() and not task.cancelled():
                    task.exception()
        self.loop.close()

    # -- positions and determinism ------------------------------------------------------

    def _take_pos(self, kind: EntryKind, name: str) -> int:
        pos = self._next_pos
        self._next_pos += 1
        recorded = self._recorded.get(pos)
        if recorded:
            first = recorded[0]
            if first.kind not in _ACCEPTS[kind] or (
                first.name != name and first.kind is not EntryKind.CHILD
            ):
                raise self._nondeterministic(pos, describe(first), f"{kind.value} {name!r}")
        return pos

    def _nondeterministic(self, pos: int, recorded: str, requested: str) -> NonDeterminismError:
        """Note the first divergence; the worker holds the run instead of finishing it."""
        err = NonDeterminismError(self.run_id, pos, recorded, requested)
        if self.nondeterminism is None:
            self.nondeterminism = err
        return err

    def _recorded_first(self, pos: int, kind: EntryKind) -> JournalEntry | None:
        for entry in self._recorded.get(pos, ()):
            if entry.kind is kind:
                return entry
        return None

    def _append(
        self,
        pos: int,
        kind: EntryKind,
        name: str,
        payload: bytes | None,
        *,
        attempt: int = 0,
        failed: bool = False,
        detail: bytes | None = None,
    ) -> JournalEntry:
        entry = JournalEntry(
            self.committed + len(self._new),
            pos,
            kind,
            name,
            payload,
            self.loop.time(),
            attempt,
            failed,
            detail,
        )
        self._new.append(entry)
        total = self.committed + len(self._new)
        if total >= HISTORY_WARNING and not self._warned_history:
            self._warned_history = True
            log.warning(
                "run %s has %d journal entries; long histories slow replay, "
                "consider perdure.continue_as_new()",
                self.run_id,
                total,
            )
        return entry

    # -- operations requested by workflow code -------------------------------------------

    def schedule_step(
        self, step: StepFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> asyncio.Future[Any]:
        pos = self._take_pos(EntryKind.STEP, step.name)
        tried = [e.seq for e in self._recorded.get(pos, ()) if e.kind is EntryKind.STEP_ATTEMPT]
        attempts = len(tried)
        op = Operation(
            pos,
            EntryKind.STEP,
            step.name,
            self.loop.create_future(),
            step=step,
            args=args,
            kwargs=kwargs,
            attempts=attempts,
            attempt_base=sum(1 for seq in tried if seq < self._retried_at),
        )
        self._track(op)
        self._dispatch.append(op)
        assert op.future is not None
        return op.future

    def add_timer(self, handle: asyncio.TimerHandle) -> None:
        pos = self._take_pos(EntryKind.TIMER, "timer")
        op = Operation(pos, EntryKind.TIMER, "timer", timer=handle)
        self.ops[pos] = op
        self._timer_pos[id(handle)] = pos
        if self._recorded_first(pos, EntryKind.TIMER) is None:
            self._inbox_out.append(
                NewInboxItem(
                    self.run_id, InboxKind.TIMER, handle.when(), pos=pos, key=self.timer_key(pos)
                )
            )

    def timer_key(self, pos: int) -> str:
        return f"timer:{self.generation}:{pos}"

    def cancel_timer(self, handle: asyncio.TimerHandle) -> None:
        pos = self._timer_pos.pop(id(handle), None)
        if pos is not None and self.ops.pop(pos, None) is not None:
            # Not yet written: never write it. Written earlier: delete it.
            key = self.timer_key(pos)
            self._inbox_out = [item for item in self._inbox_out if item.key != key]
            self._cancel_timers.append(pos)

    def receive(self, topic: str | None) -> asyncio.Future[Any]:
        pos = self._take_pos(EntryKind.SIGNAL, topic or "")
        op = Operation(pos, EntryKind.SIGNAL, topic or "", self.loop.create_future(), topic=topic)
        self._track(op)
        assert op.future is not None
        return op.future

    def set_event(self, key: str, value: Any) -> None:
        pos = self._take_pos(EntryKind.EVENT, key)
        if self._recorded_first(pos, EntryKind.EVENT) is None:
            payload = self.payloads.encode(value)
            self._append(pos, EntryKind.EVENT, key, payload)
            self._events[key] = payload

    def side_effect(self, fn: Callable[[], Any]) -> Any:
        pos = self._take_pos(EntryKind.SIDE_EFFECT, "side_effect")
        recorded = self._recorded_first(pos, EntryKind.SIDE_EFFECT)
        hint = self.payloads.return_hint(fn)
        if recorded is not None:
            return self.payloads.decode(recorded.payload, hint)
        payload = self.payloads.encode(fn())
        self._append(pos, EntryKind.SIDE_EFFECT, "side_effect", payload)
        return self.payloads.decode(payload, hint)

    def patched(self, change_id: str) -> bool:
        if change_id in self._patches:
            return True
        if self.replaying or self._next_pos <= self._last_recorded_pos:
            return False  # the run got past this point before the change: old branch
        self._patches.add(change_id)
        self._append(-1, EntryKind.PATCH, change_id, None)
        return True

    def start_child(
        self,
        workflow: WorkflowFunction[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        run_id: str | None,
        timeout: float | None,
        queue: str | None = None,
        key: str | None = None,
        priority: int = 0,
    ) -> Operation:
        pos = self._take_pos(EntryKind.CHILD, workflow.name)
        started = self._recorded_first(pos, EntryKind.CHILD_STARTED)
        if started is not None:
            child_id = str(self.payloads.decode(started.payload))
        else:
            suffix = f"{pos}" if self.generation == 0 else f"{self.generation}.{pos}"
            child_id = run_id or f"{self.run_id}-{suffix}"
            data = self.payloads.encode_call(workflow.fn, args, kwargs)
            self._append(
                pos, EntryKind.CHILD_STARTED, workflow.name, self.payloads.encode(child_id)
            )
            self._children.append(
                NewRun(
                    child_id,
                    workflow.name,
                    data,
                    self.loop.time(),
                    parent_id=self.run_id,
                    parent_pos=pos,
                    timeout=timeout,
                    version=self.version,
                    key=key,
                    queue=queue or workflow.queue or DEFAULT_QUEUE,
                    priority=priority,
                )
            )
        op = Operation(
            pos,
            EntryKind.CHILD,
            workflow.name,
            self.loop.create_future(),
            child_id=child_id,
            child_workflow=workflow.name,
        )
        self._track(op)
        self.live_children[child_id] = pos
        if self.cancel_requested:
            self._cancel_runs.append((child_id, "parent run cancelled"))
        return op

    def route_step(
        self, step: StepFunction[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> asyncio.Future[Any]:
        """A step routed to a queue: a child run of its runner workflow on that queue.
        The future resolves like a step's: its result, or StepError."""
        runner = routed_runner(step)
        op = self.start_child(runner, args, kwargs, None, None)
        assert op.future is not None
        child_id = op.child_id or ""
        done: asyncio.Future[Any] = self.loop.create_future()

        def settle(child: asyncio.Future[Any]) -> None:
            if done.done():
                return
            if child.cancelled():
                done.cancel()
                return
            error = child.exception()
            if error is not None:
                done.set_exception(error)
                return
            status, payload = child.result()
            if status == RunStatus.COMPLETED.value:
                done.set_result(self.payloads.decode(payload, self.payloads.return_hint(step.fn)))
            else:
                info = ErrorInfo.from_bytes(payload)
                done.set_exception(StepError(step.name, op.pos, info, 0, run_id=child_id))

        op.future.add_done_callback(settle)
        return done

    def cancel_child(self, child_id: str, reason: str) -> None:
        if child_id in self.live_children:
            self._cancel_runs.append((child_id, reason))

    def consume(self, item_id: int) -> None:
        """Mark an inbox item as used up in the next checkpoint."""
        self._consumed.append(item_id)

    def _track(self, op: Operation) -> None:
        self.ops[op.pos] = op
        assert op.future is not None
        op.future.add_done_callback(lambda fut: self._on_op_done(op, fut))

    def _on_op_done(self, op: Operation, fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled():
            return
        op.cancelled = True
        if op.kind is EntryKind.SIGNAL:
            self.ops.pop(op.pos, None)  # a receive that gave up takes no message
        elif op.kind is EntryKind.CHILD and op.child_id in self.live_children:
            self._cancel_runs.append((op.child_id or "", "awaiting parent was cancelled"))

    # -- deliveries ---------------------------------------------------------------------

    def _deliver(self, entry: JournalEntry) -> None:
        if entry.kind is EntryKind.CANCEL:
            self._apply_cancel(entry.name)
            return
        op = self.ops.pop(entry.pos, None)
        if op is None or op.kind is not entry.kind:
            wanted = f"{op.kind.value} {op.name!r}" if op else "nothing at that position"
            self._nondeterministic(entry.pos, describe(entry), wanted)
            return
        fut = op.future
        if entry.kind is EntryKind.TIMER:
            self._timer_pos.pop(id(op.timer), None)
            assert op.timer is not None
            self.loop.fire(op.timer)
            return
        if entry.kind is EntryKind.CHILD:
            self.live_children.pop(op.child_id or "", None)
        if fut is None or fut.done():
            return
        if entry.kind is EntryKind.STEP:
            if entry.failed:
                error = ErrorInfo.from_bytes(entry.payload)
                fut.set_exception(StepError(entry.name, entry.pos, error, entry.attempt))
            else:
                assert op.step is not None
                hint = self.payloads.return_hint(op.step.fn)
                fut.set_result(self.payloads.decode(entry.payload, hint))
        elif entry.kind is EntryKind.SIGNAL:
            fut.set_result(self.payloads.decode(entry.payload))
        elif entry.kind is EntryKind.CHILD:
            fut.set_result((entry.name, entry.payload))

    def _apply_cancel(self, reason: str) -> None:
        if self.cancel_requested:
            return
        self.cancel_requested = True
        self._cancel_reason = reason
        self.paused = False  # its cleanup may run steps
        for child_id in self.live_children:
            self._cancel_runs.append((child_id, "parent run cancelled"))
        if self._main is not None and not self._main.done():
            self._main.cancel(msg=reason)

    def log_line(self, level: str, message: str) -> bool:
        """Keep a line the workflow code logged with the run; False if the journal has
        it already (code re-executed after its last recorded result logs it again)."""
        self._lines_seen += 1
        if self.replaying or self._lines_seen <= self._lines_recorded:
            return False
        self._logs += 1
        if self._logs <= MAX_STORED_LINES:
            payload = {"level": level, "message": message, "position": -1, "attempt": 0}
            self._append(-1, EntryKind.LOG, self.workflow.name, json.dumps(payload).encode())
        return True

    def complete_step(
        self,
        op: Operation,
        attempt: int,
        value: bytes | None,
        error: ErrorInfo | None,
        retry_at: float | None,
        at: float,
        consumed: list[int],
        logs: Sequence[tuple[float, str, str]] = (),
        started_at: float | None = None,
    ) -> None:
        """Record a step attempt's outcome, after the lines it logged; a final outcome is
        delivered to the code."""
        for logged_at, level, message in logs[:MAX_STORED_LINES]:
            line = {"level": level, "message": message, "position": op.pos, "attempt": attempt}
            self._new.append(
                JournalEntry(
                    self.committed + len(self._new),
                    -1,
                    EntryKind.LOG,
                    op.name,
                    json.dumps(line).encode(),
                    logged_at,
                )
            )
        self.loop.set_time(at)
        self._consumed.extend(consumed)
        final_failure = error is not None and retry_at is None
        # For a final failure, the positions taken before the code hears of it: a
        # retry of the run keeps what they record, since it was not a reaction to it.
        detail = self._step_detail(op, started_at, self._next_pos if final_failure else None)
        if error is not None and retry_at is not None:
            self._append(
                op.pos,
                EntryKind.STEP_ATTEMPT,
                op.name,
                error.to_bytes(),
                attempt=attempt,
                failed=True,
                detail=detail,
            )
            op.attempts = attempt
            self._inbox_out.append(
                NewInboxItem(
                    self.run_id,
                    InboxKind.RETRY,
                    retry_at,
                    pos=op.pos,
                    key=f"retry:{self.generation}:{op.pos}:{attempt}",
                )
            )
            return
        payload = error.to_bytes() if error is not None else value
        entry = self._append(
            op.pos,
            EntryKind.STEP,
            op.name,
            payload,
            attempt=attempt,
            failed=error is not None,
            detail=detail,
        )
        self._deliver(entry)
        self.loop.run_until_idle()

    def _step_detail(
        self, op: Operation, started_at: float | None, taken: int | None = None
    ) -> bytes:
        """When the attempt started (and, for a final failure, ``taken``: how many
        positions the code had taken), then the step's input (encoded once per step,
        as any payload; a step may take values no codec can store, and then has none)."""
        if op.input is None:
            try:
                op.input = self.payloads.encode({"args": list(op.args), "kwargs": op.kwargs})
            except (SerializationError, TypeError, ValueError):
                op.input = b""
        # A float's repr is its JSON; written by hand, as json.dumps is the dearer
        # part of this for a small step.
        started = b"null" if started_at is None else repr(float(started_at)).encode()
        header = b'{"started": ' + started
        if taken is not None:
            header += b', "taken": ' + str(taken).encode()
        header += b"}"
        return header + b"\n" + op.input

    def accept(self, item: InboxItem) -> bool:
        """Take a due inbox item if the run can use it now; False leaves it in the inbox.
        The workflow's clock moves to when the item became due (never backwards), so a
        timer that fired during a worker's absence is seen at its deadline."""
        self.loop.set_time(item.visible_at)
        if item.kind is InboxKind.SIGNAL:
            op = self._waiting_receive(item.topic)
            if op is None:
                return False
            entry = self._append(op.pos, EntryKind.SIGNAL, op.name, item.payload)
        elif item.kind is InboxKind.TIMER:
            op = self.ops.get(item.pos)
            if op is None or op.kind is not EntryKind.TIMER:
                self._consumed.append(item.id)  # a timer the code cancelled meanwhile
                return True
            entry = self._append(item.pos, EntryKind.TIMER, "timer", None)
        elif item.kind is InboxKind.CHILD:
            op = self.ops.get(item.pos)
            # The key names the child: a child of an earlier generation at the same
            # position must not complete this generation's operation.
            if op is None or op.kind is not EntryKind.CHILD or item.key != f"child:{op.child_id}":
                self._consumed.append(item.id)
                return True
            entry = self._append(
                item.pos,
                EntryKind.CHILD,
                item.topic or "failed",
                item.payload,
                failed=item.topic != "completed",
            )
        elif item.kind in (InboxKind.CANCEL, InboxKind.DEADLINE):
            if self.cancel_requested:
                self._consumed.append(item.id)
                return True
            reason = (item.payload or b"").decode() or (
                "timed out" if item.kind is InboxKind.DEADLINE else "cancelled"
            )
            entry = self._append(-1, EntryKind.CANCEL, reason, None)
        elif item.kind in (InboxKind.PAUSE, InboxKind.RESUME):
            self.paused = item.kind is InboxKind.PAUSE
            self._append(-1, EntryKind.CONTROL, item.kind.value, item.payload)
            self._consumed.append(item.id)
            return True
        else:
            return False  # RETRY items are the worker's business
        self._consumed.append(item.id)
        self._deliver(entry)
        self.loop.run_until_idle()
        return True

    def _waiting_receive(self, topic: str | None) -> Operation | None:
        for pos in sorted(self.ops):
            op = self.ops[pos]
            if op.kind is EntryKind.SIGNAL and not op.cancelled and op.topic == topic:
                return op
        return None

    # -- what the worker takes ----------------------------------------------------------

    def take_dispatch(self) -> list[Operation]:
        """Steps asked for since the last call that still wait for a result."""
        ops = [op for op in self._dispatch if self.ops.get(op.pos) is op and not op.cancelled]
        self._dispatch.clear()
        return ops

    def take_writes(self) -> dict[str, Any]:
        """Everything produced since the last checkpoint, for the next one."""
        writes = {
            "entries": self._new,
            "consumed": self._consumed,
            "inbox": self._inbox_out,
            "cancel_timers": self._cancel_timers,
            "children": self._children,
            "cancel_runs": self._cancel_runs,
            "events": self._events,
        }
        self.committed += len(self._new)
        self._logs = 0
        self._new, self._consumed, self._inbox_out = [], [], []
        self._cancel_timers, self._children, self._cancel_runs = [], [], []
        self._events = {}
        return writes

    def next_timer_at(self) -> float | None:
        times = [
            op.timer.when()
            for op in self.ops.values()
            if op.kind is EntryKind.TIMER and op.timer is not None
        ]
        return min(times) if times else None

    def child_outcome(
        self,
        status: str,
        payload: bytes | None,
        workflow: WorkflowFunction[..., Any] | None,
        child_id: str,
    ) -> Any:
        if status == RunStatus.COMPLETED.value:
            hint = self.payloads.return_hint(workflow.fn) if workflow else Any
            return self.payloads.decode(payload, hint)
        error = ErrorInfo.from_bytes(payload)
        raise ChildFailed(child_id, error, cancelled=status == RunStatus.CANCELLED.value)
