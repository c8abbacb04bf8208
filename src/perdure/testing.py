"""Test workflows in milliseconds: the memory backend, a virtual clock, step mocks.

::

    from perdure.testing import TestApp

    async def test_reminder_after_a_week():
        async with TestApp(app) as env:
            handle = await env.start(remind, "ada")
            await env.advance(timedelta(days=7))      # the week passes at once
            assert await env.result(handle) == "reminded ada"

``TestApp`` runs the workflows registered on your app, unchanged, on a fresh in-memory
store with a worker of its own. Time stands still until the test moves it: durable
sleeps, retry back-offs, receive timeouts and workflow timeouts fire when
:meth:`TestApp.advance` passes their deadline (or when :meth:`TestApp.result` skips
ahead to them). Steps run for real unless replaced with :meth:`TestApp.mock`. Your app
itself is not opened or changed; its DAGs and state machines (``machine.trigger``,
``callback_for``, ``get``) work on the test store while the environment is open.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from .app import App
from .client import Handle
from .clock import Clock, VirtualClock, to_datetime
from .errors import PerdureError
from .records import JournalEntry, RunStatus
from .retry import seconds
from .worker import Worker
from .workflow.definition import StepFunction, WorkflowFunction

R = TypeVar("R")

__all__ = ["Stuck", "TestApp"]


class Stuck(PerdureError):
    """A run can make no progress: it waits for a message nobody sent, or for something
    no timer will bring."""


class TestApp:
    """A test environment for ``app``'s workflows. Use as ``async with TestApp(app) as
    env:``; every method below is for use inside that block."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self, app: App, *, start: datetime | None = None, sticky_cache: bool = True
    ) -> None:
        # Whole microseconds, like workflow time, so deadlines land exactly on advance().
        begin = start.timestamp() if start is not None else Clock().now()
        self.clock = VirtualClock(round(begin, 6))
        self.app = App(
            "memory://",
            codec=app.payloads.codec,
            clock=self.clock,
            poll_interval=3600.0,
            sticky_cache=sticky_cache,
        )
        self.app.workflows = app.workflows
        self.app.steps = app.steps
        self.app.queues = app.queues
        self.app.schedules.declared = app.schedules.declared
        # DAGs and state machines start and read their runs through the app they were
        # declared on: while the environment is open they use the test store instead.
        self._definitions = {
            id(wf.definition): wf.definition
            for wf in app.workflows.values()
            if getattr(wf.definition, "app", None) is app
        }
        self._user_app = app
        self._worker: Worker | None = None
        self._mocked: dict[StepFunction[..., Any], tuple[Callable[..., Any], bool]] = {}

    async def __aenter__(self) -> TestApp:
        await self.app.open()
        for definition in self._definitions.values():
            definition.app = self.app
        # Polling never finds anything that a poke would not: the clock only moves here.
        self._worker = self.app.worker(poll_interval=3600.0, lease_ttl=3600.0 * 24)
        await self._worker.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._worker is not None:
            await self._worker.stop(timeout=5.0)
            self._worker = None
        for step, (fn, is_async) in self._mocked.items():
            step.fn, step.is_async = fn, is_async
        self._mocked.clear()
        for definition in self._definitions.values():
            definition.app = self._user_app
        await self.app.close()

    # -- time -----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The virtual time."""
        return to_datetime(self.clock.now())

    async def advance(self, delta: float | timedelta) -> None:
        """Move time forward by ``delta`` and let every run react to it: timers,
        retries and timeouts due by then fire, in the order of their deadlines."""
        target = self.clock.now() + (seconds(delta) or 0.0)
        await self.idle()
        while True:
            due = await self.app.backend.next_wake_at()
            if due is None or due > target:
                break
            if due > self.clock.now():
                self.clock.advance(due - self.clock.now())
            await self._settle()
        if target > self.clock.now():
            self.clock.advance(target - self.clock.now())
        await self._settle()

    async def _settle(self) -> None:
        worker = self._require_worker()
        worker.time_moved()
        await self.idle()

    async def idle(self) -> None:
        """Wait until every run has done all it can at the current virtual time."""
        worker = self._require_worker()
        quiet = 0
        while quiet < 3:  # a few quiet looks in a row: wake-ups ripple through tasks
            await asyncio.sleep(0)
            due = await self.app.backend.next_wake_at()
            runnable = due is not None and due <= self.clock.now()
            if worker.is_idle() and not runnable:
                if quiet == 0:
                    # Runs waiting for a place in a queue are let in by the worker's
                    # claim loop, which polls only hourly here: let it look now.
                    looks = worker.stats["looks"]
                    worker.poke()
                    while worker.stats["looks"] == looks:
                        await asyncio.sleep(0)
                quiet += 1
            else:
                quiet = 0
                if runnable:
                    worker.poke()
                await asyncio.sleep(0.001)

    # -- runs -----------------------------------------------------------------------------

    async def start(
        self, workflow: WorkflowFunction[Any, R] | str, *args: Any, **kwargs: Any
    ) -> Handle[R]:
        """``app.start`` on the test store; the run has gone as far as it can on return."""
        handle: Handle[R] = await self.app.start(workflow, *args, **kwargs)
        await self.idle()
        return handle

    async def send(
        self,
        handle: Handle[Any] | str,
        topic: str | None,
        message: Any = None,
        *,
        key: str | None = None,
    ) -> bool:
        """Send a message, then let the run react to it."""
        target = handle if isinstance(handle, Handle) else self.app.handle(handle)
        delivered = await target.send(topic, message, key=key)
        await self.idle()
        return delivered

    async def result(
        self,
        handle: Handle[R],
        *,
        limit: float | timedelta = timedelta(days=3650),
    ) -> R:
        """The run's result, skipping virtual time ahead to each next timer until it
        finishes. Raises :class:`Stuck` if it waits for something no timer brings (a
        message, say), or if it has not finished within ``limit`` of virtual time."""
        await self.run_until(handle, lambda status: status.is_terminal, limit)
        return await handle.result()

    async def wait_for_status(
        self,
        handle: Handle[Any],
        status: RunStatus | str,
        *,
        limit: float | timedelta = timedelta(days=3650),
    ) -> None:
        """Skip time ahead until the run reaches ``status`` (see :meth:`result`)."""
        wanted = RunStatus(status)
        await self.run_until(handle, lambda current: current is wanted, limit)

    async def run_until(
        self, handle: Handle[Any], done: Callable[[RunStatus], bool], limit: float | timedelta
    ) -> None:
        end = self.clock.now() + (seconds(limit) or 0.0)
        await self.idle()
        while True:
            status = await handle.status()
            if done(status):
                return
            if status.is_terminal or status is RunStatus.HELD:
                raise Stuck(f"run {handle.id!r} ended {status.value} instead")
            due = await self.app.backend.next_wake_at()
            if due is None:
                raise Stuck(
                    f"run {handle.id!r} is {status.value} and waits for something no "
                    "timer brings (a message? use env.send)"
                )
            if due > end:
                raise Stuck(f"run {handle.id!r} is still {status.value} after the time limit")
            await self.advance(max(0.0, due - self.clock.now()))

    async def journal(self, handle: Handle[Any] | str) -> list[JournalEntry]:
        """What the run recorded, in order (for assertions on steps, timers, messages)."""
        run_id = handle.id if isinstance(handle, Handle) else handle
        return await self.app.backend.read_journal(run_id)

    # -- steps ----------------------------------------------------------------------------

    def mock(self, step: StepFunction[..., Any], replacement: Callable[..., Any]) -> None:
        """Run ``replacement`` (sync or async, same arguments) instead of ``step``'s body
        until the environment closes. Retries, timeouts and recording stay as they are."""
        if not isinstance(step, StepFunction):
            raise TypeError("mock() takes a function decorated with @app.step")
        self._mocked.setdefault(step, (step.fn, step.is_async))
        step.fn = replacement
        step.is_async = inspect.iscoroutinefunction(replacement)

    def _require_worker(self) -> Worker:
        if self._worker is None:
            raise RuntimeError("use TestApp inside `async with TestApp(app) as env:`")
        return self._worker
