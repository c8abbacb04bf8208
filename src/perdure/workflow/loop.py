"""A deterministic asyncio event loop for workflow code.

Workflow code runs on this loop, stepped by the worker: ``run_until_idle`` runs the
ready callbacks in FIFO order until every task waits. Its clock is the workflow's
recorded time, so ``loop.time()`` and everything built on it replays identically.
Timers (``asyncio.sleep``, ``wait_for``, ``asyncio.timeout``) become durable timers
owned by the run; I/O, threads and subprocesses are refused, because workflow code
must be a pure function of its journal.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref
from asyncio import events
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import WorkflowSandboxError

if TYPE_CHECKING:
    from .instance import WorkflowInstance

log = logging.getLogger("perdure.workflow")


class WorkflowLoop(asyncio.AbstractEventLoop):
    def __init__(self, instance: WorkflowInstance, start_time: float) -> None:
        self.instance = instance
        self._ready: deque[asyncio.Handle] = deque()
        self._time = round(start_time, 6)
        self._closed = False
        # This loop's own tasks (asyncio.all_tasks would scan every task in the process).
        self.tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

    # -- driving ------------------------------------------------------------------------

    def run_until_idle(self) -> None:
        """Run ready callbacks until none is left (every task waits on something)."""
        previous = events._get_running_loop()
        events._set_running_loop(self)
        try:
            ready = self._ready
            while ready:
                handle = ready.popleft()
                if not handle._cancelled:
                    handle._run()
        finally:
            events._set_running_loop(previous)

    def set_time(self, when: float) -> None:
        # Workflow time never goes backwards, even if the wall clock does. It moves in
        # whole microseconds, the resolution of datetime: a timer of d seconds then shows
        # exactly d on perdure.now(), not d minus a float rounding error.
        when = round(when, 6)
        if when > self._time:
            self._time = when

    # -- the part of the loop API asyncio's own machinery uses ---------------------------

    def time(self) -> float:
        return self._time

    def call_soon(
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        self._refuse("call_soon_threadsafe")

    def call_later(
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_at(self._time + delay, callback, *args, context=context)

    def call_at(
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, args, self, context)
        if when <= self._time:
            self._ready.append(handle)
        else:
            # So that cancel() reports back through _timer_handle_cancelled.
            handle._scheduled = True  # type: ignore[attr-defined]
            self.instance.add_timer(handle)
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        self.instance.cancel_timer(handle)

    def fire(self, handle: asyncio.TimerHandle) -> None:
        """A durable timer is due: run its callback in order with everything else."""
        handle._scheduled = False  # type: ignore[attr-defined]
        if not handle._cancelled:
            self._ready.append(handle)

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(
        self,
        coro: Coroutine[Any, Any, Any] | Any,
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[Any]:
        if isinstance(coro, asyncio.Future):  # a step call: give it a task of its own
            coro = _await(coro)
        task = asyncio.Task(coro, loop=self, name=name, context=context)
        self.tasks.add(task)
        return task

    def get_debug(self) -> bool:
        return False

    def is_running(self) -> bool:
        return True

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._ready.clear()

    def get_exception_handler(self) -> None:
        return None

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        message = context.get("message", "unhandled error in workflow code")
        exc = context.get("exception")
        if isinstance(exc, asyncio.CancelledError):
            return
        log.warning("%s (run %s)", message, self.instance.run_id, exc_info=exc)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.default_exception_handler(context)

    def get_task_factory(self) -> None:
        return None

    async def shutdown_asyncgens(self) -> None:
        return None

    # -- everything else is not deterministic: refuse with a clear message ---------------

    def _refuse(self, what: str) -> NoReturn:
        raise WorkflowSandboxError(
            f"workflow code called loop.{what}(), which is not deterministic; do I/O, "
            "threads and subprocesses inside a step (@app.step), not in the workflow"
        )

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> NoReturn:
        self._refuse("run_in_executor")

    async def getaddrinfo(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("getaddrinfo")

    async def create_connection(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("create_connection")

    async def create_server(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("create_server")

    async def subprocess_exec(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("subprocess_exec")

    async def subprocess_shell(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("subprocess_shell")

    def add_reader(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("add_reader")

    def add_writer(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("add_writer")

    async def sock_connect(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("sock_connect")

    def run_forever(self) -> NoReturn:
        self._refuse("run_forever")

    def run_until_complete(self, future: Any) -> NoReturn:
        self._refuse("run_until_complete")

    def stop(self) -> None:
        return None


async def _await(future: asyncio.Future[Any]) -> Any:
    return await future
