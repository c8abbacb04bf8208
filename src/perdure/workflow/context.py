"""Which workflow (or step) is running right now."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .instance import WorkflowInstance


def current_instance() -> WorkflowInstance | None:
    """The workflow whose code is running on this thread, or None."""
    from .loop import WorkflowLoop

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop.instance if isinstance(loop, WorkflowLoop) else None


@dataclass(frozen=True)
class StepInfo:
    """What a running step knows about itself (``perdure.info()`` inside a step)."""

    run_id: str
    workflow: str
    step: str
    position: int
    attempt: int
    idempotency_key: str  # stable across attempts and recoveries: run, generation, position


@dataclass(frozen=True)
class WorkflowInfo:
    """What a running workflow knows about itself (``perdure.info()`` in a workflow)."""

    run_id: str
    workflow: str
    generation: int  # how many times it continued as new
    parent_id: str | None
    replaying: bool  # True while re-executing recorded history


current_step: contextvars.ContextVar[StepInfo | None] = contextvars.ContextVar(
    "perdure_step", default=None
)


@dataclass
class StepLog:
    """The lines a step attempt logs through perdure.logger, kept with the run."""

    now: Callable[[], float]  # the worker's clock
    lines: list[tuple[float, str, str]] = field(default_factory=list)

    def add(self, level: str, message: str) -> None:
        self.lines.append((self.now(), level, message))


# Set by the worker around each step attempt.
step_log: contextvars.ContextVar[StepLog | None] = contextvars.ContextVar(
    "perdure_step_log", default=None
)
# The app of the worker executing the current step (for the control steps).
running_app: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "perdure_running_app", default=None
)
