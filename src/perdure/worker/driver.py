"""Drives one claimed run: deliver what happened, checkpoint, then act.

The cycle, repeated while the worker holds the run's lease:

1. deliver finished step attempts and due inbox items to the workflow instance,
   each followed by running its loop until idle;
2. write everything that produced as one fenced checkpoint (releasing the lease when
   nothing is left to do here);
3. only then start the steps the code asked for, so nothing acts on unrecorded state;
4. wait for a step to finish, a timer to come due, or a message to arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import ErrorInfo, SerializationError, StepTimeout
from ..records import Checkpoint, EntryKind, InboxItem, InboxKind, Outcome
from ..workflow.context import StepInfo, StepLog, current_step, running_app, step_log
from ..workflow.instance import Operation, WorkflowInstance

if TYPE_CHECKING:
    from .worker import Worker

log = logging.getLogger("perdure.worker")


_CONTROLS = (InboxKind.PAUSE, InboxKind.RESUME)


@dataclass
class _Attempt:
    op: Operation
    attempt: int
    value: bytes | None
    error: ErrorInfo | None
    retry_at: float | None
    consumed: list[int]
    done_at: float  # when the attempt finished (the workflow's time for it)
    logs: list[tuple[float, str, str]]  # what it logged through perdure.logger
    started_at: float


class RunDriver:
    def __init__(
        self,
        worker: Worker,
        run_id: str,
        token: int,
        mailbox: int,
        instance: WorkflowInstance,
        inbox: list[InboxItem],
    ) -> None:
        self.worker = worker
        self.run_id = run_id
        self.token = token
        self.instance = instance
        self.mailbox_seen = mailbox  # the mailbox counter the inbox was read at
        self.mailbox_latest = mailbox  # the newest counter heard of
        self.inbox: dict[int, InboxItem] = {item.id: item for item in inbox}
        self.results: list[_Attempt] = []
        self.inflight: dict[int, asyncio.Task[None]] = {}
        self.wakeup = asyncio.Event()
        self.need_fetch = False
        self.lost = False
        self.holding = True  # False once a checkpoint released the lease or ended the run
        self.parked = False  # True once the instance was handed to the sticky cache
        self.retry_due: dict[int, float] = {}  # position -> when its retry item is due

    # -- the cycle ----------------------------------------------------------------------

    async def run(self) -> None:
        inst = self.instance
        worker = self.worker
        while True:
            now = worker.clock.now()
            self._drain(now)
            if inst.nondeterminism is not None:
                await self._hold()
                return
            # A paused run does not end either: its outcome is written after a resume.
            ending = inst.finished and not inst.paused
            held_back = (worker.stopping or inst.paused) and not ending
            # Shutting down or paused: start nothing new, and hand the run back.
            to_start = [] if inst.finished or held_back else self._steps_to_start(now)
            release = not ending and not self.inflight and not to_start
            writes = inst.take_writes()
            if writes["children"]:
                # Children on a queue with limits wait for their turn there.
                queues = worker.app.queues
                writes["children"] = [
                    replace(c, queued=queues.admits_by_turn(c.queue)) for c in writes["children"]
                ]
            cp = Checkpoint(
                self.run_id,
                worker.id,
                self.token,
                now,
                now + worker.lease_ttl,
                **writes,
                outcome=inst.outcome if ending else Outcome.NONE,
                result=inst.result if ending else None,
                error=inst.error if ending else None,
                new_input=inst.new_input if ending else None,
                release=release,
                mailbox_seen=self.mailbox_seen,
                # Steps left unstarted by a shutdown: another worker should go on at once
                # (a paused run is not claimed until it is resumed).
                runnable=held_back and (inst.finished or self._has_unstarted_steps()),
            )
            if not cp.is_empty():
                result = await worker.committer.commit(cp)
                if not result.applied:
                    self.lost = True
                    log.warning("run %s: lease lost; another worker owns it now", self.run_id)
                    return
                if result.mailbox != self.mailbox_seen:
                    self.mailbox_latest = max(self.mailbox_latest, result.mailbox)
                    self.need_fetch = True
                if cp.events or ending:
                    worker.app_hub.changed(self.run_id)
                if release or ending:
                    self.holding = False
            if ending:
                inst.close()
                worker.on_finished(self.run_id, inst.outcome)
                return
            if release:
                worker.on_released(self, self._next_due())
                return
            for op, consumed in to_start:
                self._start(op, consumed)
            await self._wait()
            if self.lost:
                return

    def _drain(self, now: float) -> None:
        """Deliver what happened, oldest first: finished step attempts by the time they
        finished, inbox items by the time they became due. Order by time (not by arrival
        in this worker) makes the outcome independent of how long a worker was away."""
        inst = self.instance
        # Code that ended while paused takes nothing more but the operator's resume.
        while (not inst.finished or inst.paused) and inst.nondeterminism is None:
            events: list[tuple[float, int, int]] = []
            if not inst.finished:
                events.extend((r.done_at, 0, i) for i, r in enumerate(self.results))
            events.extend(
                (item.visible_at, 1, item.id)
                for item in self.inbox.values()
                if item.kind.due(item.visible_at, now)
                and item.kind is not InboxKind.RETRY
                and (not inst.finished or item.kind in _CONTROLS)
            )
            events.sort()
            for _, source, key in events:
                if source == 0:
                    self._deliver_attempt(self.results.pop(key))
                    break
                item = self.inbox[key]
                if inst.accept(item):
                    # The code moved on; look again from the oldest event (a message it
                    # skipped may be what it waits for now).
                    del self.inbox[key]
                    break
            else:
                return  # nothing the run can take right now

    def _deliver_attempt(self, r: _Attempt) -> None:
        if r.retry_at is not None:
            self.retry_due[r.op.pos] = r.retry_at
        else:
            self.retry_due.pop(r.op.pos, None)
        self.instance.complete_step(
            r.op,
            r.attempt,
            r.value,
            r.error,
            r.retry_at,
            r.done_at,
            r.consumed,
            r.logs,
            r.started_at,
        )

    def _steps_to_start(self, now: float) -> list[tuple[Operation, list[int]]]:
        inst = self.instance
        inst.take_dispatch()
        retries: dict[int, InboxItem] = {}
        for item in list(self.inbox.values()):
            if item.kind is InboxKind.RETRY and item.visible_at <= now:
                op = inst.ops.get(item.pos)
                if op is None or op.kind is not EntryKind.STEP or op.cancelled:
                    del self.inbox[item.id]
                    inst.consume(item.id)  # stale: the step is settled
                else:
                    retries[item.pos] = item
        out: list[tuple[Operation, list[int]]] = []
        for op in inst.ops.values():
            if op.kind is not EntryKind.STEP or op.cancelled or op.pos in self.inflight:
                continue
            if op.attempts == 0:
                out.append((op, []))
            elif op.pos in retries:
                item = retries[op.pos]
                del self.inbox[item.id]
                self.retry_due.pop(op.pos, None)
                out.append((op, [item.id]))
        return out

    def _has_unstarted_steps(self) -> bool:
        return any(
            op.kind is EntryKind.STEP and not op.cancelled and op.pos not in self.inflight
            for op in self.instance.ops.values()
        )

    def _next_due(self) -> float | None:
        times = [
            item.visible_at for item in self.inbox.values() if item.kind is not InboxKind.SIGNAL
        ]
        timer = self.instance.next_timer_at()
        if timer is not None:
            times.append(timer)
        times.extend(self.retry_due.values())
        return min(times) if times else None

    async def _wait(self) -> None:
        if not self.results and not self.need_fetch:
            due = self._next_due()
            timeout = None if due is None else max(0.0, due - self.worker.clock.now())
            if timeout is None:  # nothing due: a wake-up brings the next thing to do
                await self.wakeup.wait()
            else:
                try:
                    # Not wait_for: on 3.11 it may swallow a cancel that lands as the
                    # event is set (a shutdown would then wait on this run forever).
                    async with asyncio.timeout(timeout):
                        await self.wakeup.wait()
                except TimeoutError:
                    self.need_fetch = True
        self.wakeup.clear()
        if self.need_fetch:
            self.need_fetch = False
            # Read at least as new as the counter we heard of; the release compares it.
            self.mailbox_seen = self.mailbox_latest
            items = await self.worker.backend.read_inbox(self.run_id, self.worker.clock.now())
            for item in items:
                self.inbox.setdefault(item.id, item)

    def poke(self, mailbox: int | None = None) -> None:
        """Something arrived for this run (message, cancel): look at the inbox."""
        if mailbox is not None:
            self.mailbox_latest = max(self.mailbox_latest, mailbox)
        self.need_fetch = True
        self.wakeup.set()

    async def _hold(self) -> None:
        inst = self.instance
        err = inst.nondeterminism
        assert err is not None
        log.error("%s", err)
        inst.take_writes()  # nothing of a diverged replay may be written
        cp = Checkpoint(
            self.run_id,
            self.worker.id,
            self.token,
            self.worker.clock.now(),
            0.0,
            outcome=Outcome.HELD,
            error=ErrorInfo.from_exception(err).to_bytes(),
        )
        result = await self.worker.committer.commit(cp)
        self.lost = not result.applied
        self.holding = False
        self.worker.app_hub.changed(self.run_id)
        inst.close()
        self.worker.on_finished(self.run_id, Outcome.HELD)

    # -- steps --------------------------------------------------------------------------

    def _start(self, op: Operation, consumed: list[int]) -> None:
        task = asyncio.create_task(
            self._attempt(op, op.attempts + 1, consumed),
            name=f"perdure-step:{self.run_id}:{op.pos}",
        )
        self.inflight[op.pos] = task

    async def _attempt(self, op: Operation, attempt: int, consumed: list[int]) -> None:
        step = op.step
        assert step is not None
        worker = self.worker
        current_step.set(
            StepInfo(
                self.run_id,
                self.instance.workflow.name,
                step.name,
                op.pos,
                attempt,
                f"{self.run_id}:{self.instance.generation}:{op.pos}",
            )
        )
        value: bytes | None = None
        error: ErrorInfo | None = None
        retry_at: float | None = None
        started_at = worker.clock.now()
        logs = StepLog(worker.clock.now)
        step_log.set(logs)
        running_app.set(worker.app)
        try:
            result = await self._call(
                step.fn, op.args, op.kwargs, step.is_async, step.timeout, step.name
            )
            value = worker.payloads.encode(result)
        except asyncio.CancelledError:
            self.inflight.pop(op.pos, None)
            raise
        except SerializationError as exc:
            error = ErrorInfo.from_exception(exc)
        except Exception as exc:
            error = ErrorInfo.from_exception(exc)
            # An operator's retry gives the step a fresh set of attempts.
            counted = attempt - op.attempt_base
            if step.retry.should_retry(exc, counted):
                retry_at = worker.clock.now() + step.retry.delay(counted)
        self.inflight.pop(op.pos, None)
        done_at = worker.clock.now()
        self.results.append(
            _Attempt(op, attempt, value, error, retry_at, consumed, done_at, logs.lines, started_at)
        )
        self.wakeup.set()

    async def _call(
        self,
        fn: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        is_async: bool,
        timeout: float | None,
        name: str,
    ) -> Any:
        if is_async:
            work = fn(*args, **kwargs)
        else:
            import contextvars

            ctx = contextvars.copy_context()
            work = asyncio.get_running_loop().run_in_executor(
                self.worker.executor, functools.partial(ctx.run, fn, *args, **kwargs)
            )
        if timeout is None:
            return await work
        try:
            return await asyncio.wait_for(work, timeout)
        except TimeoutError:
            raise StepTimeout(f"step {name!r} timed out after {timeout:g} s") from None

    async def abort(self) -> None:
        """Stop at once (shutdown deadline, lost lease): in-flight steps are cancelled."""
        for task in list(self.inflight.values()):
            task.cancel()
        for task in list(self.inflight.values()):
            with contextlib.suppress(BaseException):
                await task
