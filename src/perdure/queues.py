"""Queues: where runs wait for a worker, and how many may run at once.

Every run is on a queue (``"default"`` unless told otherwise). A queue with a
``concurrency``, ``per_key`` or ``rate`` limit admits its runs by turn: a run started
on it waits (status ``pending``, ``waiting_for`` says why) until a worker admits it,
highest priority first and in start order within a priority, and it holds its place
until it ends. The database enforces those limits, so they hold across every worker.
``per_worker`` caps how many of the queue's runs one worker executes at a time.

A worker serves the queues its app declares, or those it is told to
(``app.worker(queues=[...])``, ``perdure worker --queues``); a step declared with
``queue=`` runs, as a run of its own, on a worker serving that queue only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from .errors import RegistrationError
from .records import DEFAULT_QUEUE, QueueLimits
from .retry import seconds

MAX_PRIORITY = 1_000_000  # priorities range from -MAX_PRIORITY to MAX_PRIORITY
ROUTED_STEP_PREFIX = "perdure.step:"  # workflow name of a step routed to a queue


@dataclass(frozen=True)
class Rate:
    """At most ``limit`` admissions in any window of ``per`` (seconds or a timedelta)."""

    limit: int
    per: float | timedelta

    def __post_init__(self) -> None:
        if not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"Rate limit={self.limit!r}: use a whole number of 1 or more")
        if not (seconds(self.per) or 0.0) > 0:
            raise ValueError(f"Rate per={self.per!r}: use a positive duration")

    @property
    def period(self) -> float:
        return seconds(self.per) or 0.0


@dataclass(frozen=True)
class Queue:
    """A named queue and its limits (None: unlimited). Declare it with ``app.queue``."""

    name: str
    concurrency: int | None = None  # admitted, unfinished runs of the queue
    per_worker: int | None = None  # of its runs one worker executes at a time
    per_key: int | None = None  # admitted, unfinished runs per run key
    rate: Rate | None = None  # admissions per period
    implicit: bool = field(default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_name("queue name", self.name)
        for option in ("concurrency", "per_worker", "per_key"):
            value = getattr(self, option)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(
                    f"queue {self.name!r}: {option}={value!r}; use a whole number of 1 or "
                    "more, or None for no limit"
                )
        if self.rate is not None and not isinstance(self.rate, Rate):
            raise ValueError(f"queue {self.name!r}: rate must be a perdure.Rate(limit, per=...)")

    @property
    def admits_by_turn(self) -> bool:
        """Its runs wait to be admitted (it has a limit the database enforces)."""
        return self.concurrency is not None or self.per_key is not None or self.rate is not None

    def limits(self) -> QueueLimits:
        return QueueLimits(
            self.name,
            concurrency=self.concurrency,
            per_key=self.per_key,
            rate=self.rate.limit if self.rate else None,
            period=self.rate.period if self.rate else 0.0,
        )


class Queues:
    """An app's declared queues. ``default`` always exists (unlimited unless declared)."""

    def __init__(self) -> None:
        self._queues: dict[str, Queue] = {DEFAULT_QUEUE: Queue(DEFAULT_QUEUE, implicit=True)}

    def declare(self, queue: Queue) -> Queue:
        existing = self._queues.get(queue.name)
        if existing is not None and queue.implicit:
            return existing  # only named (by a workflow or step): whatever it is
        if existing is not None and not existing.implicit and existing != queue:
            raise RegistrationError(
                f"queue {queue.name!r} is already declared as {existing!r}; declare each queue once"
            )
        self._queues[queue.name] = queue
        return queue

    def get(self, name: str) -> Queue:
        queue = self._queues.get(name)
        if queue is None:
            known = ", ".join(sorted(self._queues))
            raise RegistrationError(
                f"queue {name!r} is not declared (declared: {known}); declare it with "
                f"app.queue({name!r}, ...)"
            )
        return queue

    def names(self) -> list[str]:
        return list(self._queues)

    def admits_by_turn(self, name: str) -> bool:
        queue = self._queues.get(name)
        return queue is not None and queue.admits_by_turn

    def __iter__(self) -> Iterator[Queue]:
        return iter(list(self._queues.values()))


def check_name(what: str, value: object) -> str:
    """Names and keys are non-empty strings of at most 200 characters, without NUL
    (which some databases cannot store)."""
    if not isinstance(value, str) or not value or len(value) > 200 or "\0" in value:
        raise ValueError(
            f"{what} must be a non-empty string of at most 200 characters, without NUL"
        )
    return value


def check_priority(priority: object) -> int:
    if (
        not isinstance(priority, int)
        or isinstance(priority, bool)
        or not -MAX_PRIORITY <= priority <= MAX_PRIORITY
    ):
        raise ValueError(
            f"priority={priority!r}: use a whole number from {-MAX_PRIORITY} to {MAX_PRIORITY} "
            "(higher is admitted first)"
        )
    return priority
