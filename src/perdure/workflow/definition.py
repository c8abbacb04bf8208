"""What ``@app.workflow`` and ``@app.step`` turn functions into."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, overload

from ..queues import ROUTED_STEP_PREFIX
from ..retry import NO_RETRY, Retry, seconds
from .context import current_instance

if TYPE_CHECKING:
    from datetime import timedelta

P = ParamSpec("P")
R = TypeVar("R")


T = TypeVar("T")


class StepFunction(Generic[P, R]):
    """A checkpointed step. Inside a workflow, calling it returns an awaitable whose
    result is recorded once; anywhere else it is the plain function.

    For typing, a step is seen as returning an awaitable of its result (a sync step
    too, since inside a workflow it is awaited like any other)."""

    def __init__(
        self,
        fn: Callable[P, Any],
        *,
        name: str,
        retry: Retry | None,
        timeout: float | timedelta | None,
        queue: str | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.retry = retry or NO_RETRY
        self.timeout = seconds(timeout)
        self.queue = queue  # routed: runs as a run of its own, on that queue's workers
        self.is_async = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        instance = current_instance()
        if instance is None:
            return self.fn(*args, **kwargs)  # type: ignore[no-any-return]
        if self.queue is not None and not instance.workflow.name.startswith(ROUTED_STEP_PREFIX):
            return instance.route_step(self, args, kwargs)  # type: ignore[return-value]
        # The position is taken now, at the call, so it follows the code's order. The
        # future goes wherever asyncio takes one (gather, wait, wait_for); the workflow
        # loop's create_task wraps it, for asyncio.create_task and TaskGroup.
        return instance.schedule_step(self, args, kwargs)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"<perdure step {self.name!r}>"


class StepDecorator(Protocol):
    """What ``@app.step(...)`` returns: turns a function into a :class:`StepFunction`."""

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]]
    ) -> StepFunction[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> StepFunction[P, Awaitable[T]]: ...


class WorkflowFunction(Generic[P, R]):
    """A durable workflow. Start it with ``app.start(fn, ...)``; calling it directly
    (even from another workflow) just runs the coroutine inline."""

    def __init__(
        self,
        fn: Callable[P, Any],
        *,
        name: str,
        timeout: float | timedelta | None,
        queue: str | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"workflow {name!r} must be an `async def` function")
        self.fn = fn
        self.name = name
        self.timeout = seconds(timeout)
        self.queue = queue  # where its runs go unless a start names another
        # The DAG or state machine it was compiled from (with ``describe()``), if any.
        self.definition: Any = None
        # Called with (run id, key, time) after an operator pauses one of its runs from
        # outside the run; a state machine starts its on_pause hook with it.
        self.when_paused: Callable[[str, str | None, float], Awaitable[None]] | None = None
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<perdure workflow {self.name!r}>"


def routed_runner(step: StepFunction[..., Any]) -> WorkflowFunction[..., Any]:
    """The workflow a step routed to a queue runs as: one step, with the step's own
    retries and timeout, on a worker serving the queue. Its signature and hints are
    the step's, so arguments and result keep their types."""

    async def run_routed_step(*args: Any, **kwargs: Any) -> Any:
        instance = current_instance()
        assert instance is not None
        return await instance.schedule_step(step, args, kwargs)

    functools.update_wrapper(run_routed_step, step.fn)
    run_routed_step.__signature__ = inspect.signature(step.fn)  # type: ignore[attr-defined]
    return WorkflowFunction(
        run_routed_step, name=ROUTED_STEP_PREFIX + step.name, timeout=None, queue=step.queue
    )


def is_coroutine_function(fn: Callable[..., Any]) -> bool:
    return asyncio.iscoroutinefunction(fn)
