"""What ``@app.workflow`` and ``@app.step`` turn functions into."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from ..retry import NO_RETRY, Retry, seconds
from .context import current_instance

if TYPE_CHECKING:
    from datetime import timedelta

P = ParamSpec("P")
R = TypeVar("R")


class StepFunction(Generic[P, R]):
    """A checkpointed step. Inside a workflow, calling it returns an awaitable whose
    result is recorded once; anywhere else it is the plain function."""

    def __init__(
        self,
        fn: Callable[P, Any],
        *,
        name: str,
        retry: Retry | None,
        timeout: float | timedelta | None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.retry = retry or NO_RETRY
        self.timeout = seconds(timeout)
        self.is_async = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        instance = current_instance()
        if instance is None:
            return self.fn(*args, **kwargs)
        return instance.schedule_step(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<perdure step {self.name!r}>"


class WorkflowFunction(Generic[P, R]):
    """A durable workflow. Start it with ``app.start(fn, ...)``; calling it directly
    (even from another workflow) just runs the coroutine inline."""

    def __init__(
        self, fn: Callable[P, Any], *, name: str, timeout: float | timedelta | None
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"workflow {name!r} must be an `async def` function")
        self.fn = fn
        self.name = name
        self.timeout = seconds(timeout)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<perdure workflow {self.name!r}>"


def is_coroutine_function(fn: Callable[..., Any]) -> bool:
    return asyncio.iscoroutinefunction(fn)
