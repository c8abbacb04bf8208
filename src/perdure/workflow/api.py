"""What workflow code calls: ``perdure.sleep``, ``receive``, ``start_child`` and friends.

Each of these is durable inside a workflow. Outside one, the time and randomness
helpers fall back to the real clock and real randomness, ``sleep`` just sleeps, and
the rest raise :class:`perdure.NotInWorkflow`.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import uuid as _uuid
from collections.abc import Callable, MutableMapping
from datetime import datetime, timedelta
from typing import Any, Generic, NoReturn, TypeVar

from ..clock import Clock, to_datetime
from ..errors import ContinueAsNew, NotInWorkflow
from ..queues import check_name, check_priority
from ..retry import seconds
from .context import StepInfo, WorkflowInfo, current_instance, current_step, step_log
from .definition import WorkflowFunction
from .instance import Operation, WorkflowInstance

T = TypeVar("T")
_WALL = Clock()


def _instance(what: str) -> WorkflowInstance:
    instance = current_instance()
    if instance is None:
        raise NotInWorkflow(f"perdure.{what}() can only be called inside a workflow")
    return instance


async def sleep(duration: float | timedelta) -> None:
    """Sleep durably: the run holds no memory or thread meanwhile, and a restart keeps
    the original deadline."""
    await asyncio.sleep(seconds(duration) or 0.0)


async def receive(topic: str | None = None, *, timeout: float | timedelta | None = None) -> Any:
    """Wait for the next message sent to this run on ``topic`` (None is its own topic).

    Messages sent before the call are buffered; each is received once. Returns None
    if ``timeout`` passes first (the deadline survives restarts).
    """
    future = _instance("receive").receive(topic)
    if timeout is None:
        return await future
    try:
        return await asyncio.wait_for(future, seconds(timeout))
    except TimeoutError:
        return None


def set_event(key: str, value: Any) -> None:
    """Publish ``value`` under ``key``; readers (``handle.get_event``) see the last one."""
    _instance("set_event").set_event(key, value)


def side_effect(fn: Callable[[], T]) -> T:
    """Run ``fn`` once and record its value; replays return the recorded value."""
    return _instance("side_effect").side_effect(fn)  # type: ignore[no-any-return]


def patched(change_id: str) -> bool:
    """True for runs that reach this point with the new code (the change ``change_id``);
    False for runs that recorded this point before it existed. Branch on it to change
    workflow code without breaking runs in flight."""
    return _instance("patched").patched(change_id)


def continue_as_new(*args: Any, **kwargs: Any) -> NoReturn:
    """End this generation of the run and start it again with new arguments and an
    empty history, under the same run id."""
    _instance("continue_as_new")
    raise ContinueAsNew(args, kwargs)


def now() -> datetime:
    """The workflow's current time (UTC), recorded so replays see the same value."""
    instance = current_instance()
    return to_datetime(instance.loop.time() if instance is not None else _WALL.now())


def random() -> float:
    """A random float in [0, 1), the same on every replay of the run."""
    instance = current_instance()
    return instance.rng.random() if instance is not None else _random.random()


def uuid4() -> _uuid.UUID:
    """A random UUID, the same on every replay of the run."""
    instance = current_instance()
    if instance is None:
        return _uuid.uuid4()
    return _uuid.UUID(int=instance.rng.getrandbits(128), version=4)


def info() -> WorkflowInfo | StepInfo:
    """Inside a step: its run, position, attempt and idempotency key. Inside a
    workflow: its run id, generation, parent and whether it is replaying."""
    step = current_step.get()
    if step is not None:
        return step
    instance = _instance("info")
    return WorkflowInfo(
        instance.run_id,
        instance.workflow.name,
        instance.generation,
        instance.parent_id,
        instance.replaying,
    )


class ChildHandle(Generic[T]):
    """A child run started from a workflow. Await it (or ``.result()``) for its result."""

    def __init__(
        self, instance: WorkflowInstance, op: Operation, workflow: WorkflowFunction[..., T]
    ) -> None:
        self._instance = instance
        self._op = op
        self._workflow = workflow
        self.id = op.child_id or ""

    async def result(self) -> T:
        """The child's result; raises :class:`perdure.ChildFailed` if it failed or was
        cancelled."""
        assert self._op.future is not None
        status, payload = await self._op.future
        return self._instance.child_outcome(  # type: ignore[no-any-return]
            status, payload, self._workflow, self.id
        )

    def __await__(self) -> Any:
        return self.result().__await__()

    def cancel(self) -> None:
        """Ask the child run to cancel; its result then raises ChildFailed."""
        self._instance.cancel_child(self.id, "cancelled by parent")


async def start_child(
    workflow: WorkflowFunction[..., T],
    *args: Any,
    id: str | None = None,
    timeout: float | timedelta | None = None,
    queue: str | None = None,
    key: str | None = None,
    priority: int = 0,
    **kwargs: Any,
) -> ChildHandle[T]:
    """Start ``workflow`` as a child run (created when this step of the parent is
    recorded). Cancelling the parent cancels its children. ``queue``, ``key`` and
    ``priority`` as for ``app.start``."""
    if not isinstance(workflow, WorkflowFunction):
        raise TypeError("start_child() takes a function decorated with @app.workflow")
    if queue is not None:
        check_name("queue name", queue)
    if key is not None:
        check_name("key", key)
    check_priority(priority)
    instance = _instance("start_child")
    op = instance.start_child(
        workflow,
        args,
        kwargs,
        id,
        seconds(timeout) if timeout is not None else workflow.timeout,
        queue=queue,
        key=key,
        priority=priority,
    )
    return ChildHandle(instance, op, workflow)


STORED_LEVEL = logging.INFO  # lines at this level or above are kept with the run
MAX_LINE_CHARS = 4000


def stored_line(level: int, msg: Any, args: tuple[Any, ...]) -> tuple[str, str]:
    try:
        text = str(msg) % args if args else str(msg)
    except (TypeError, ValueError):
        text = f"{msg} {args}"
    if len(text) > MAX_LINE_CHARS:
        text = text[: MAX_LINE_CHARS - 3] + "..."
    return logging.getLevelName(level), text


class _RunLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Adds run and step ids to each record; stays quiet while a workflow replays.
    Lines at INFO and above are also stored with the run (whatever the logging
    configuration says), to be read later with ``handle.logs()``."""

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if level >= STORED_LEVEL:
            lines = step_log.get()
            instance = current_instance() if lines is None else None
            if lines is not None:
                lines.add(*stored_line(level, msg, args))
            elif instance is not None and not instance.log_line(*stored_line(level, msg, args)):
                return  # logged (and kept) before: the code is re-executing
        super().log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = dict(kwargs.get("extra") or {})
        step = current_step.get()
        if step is not None:
            extra.update(run_id=step.run_id, step=step.step, attempt=step.attempt)
        else:
            instance = current_instance()
            if instance is not None:
                extra.update(run_id=instance.run_id, workflow=instance.workflow.name)
        kwargs["extra"] = extra
        return msg, kwargs

    def isEnabledFor(self, level: int) -> bool:
        instance = current_instance()
        if instance is not None and instance.replaying:
            return False
        return bool(self.logger.isEnabledFor(level))


logger = _RunLogger(logging.getLogger("perdure.run"), {})
