"""Retry policies for steps: exponential backoff on durable timers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from .errors import NonRetryableError


def seconds(value: float | timedelta | None) -> float | None:
    """Accept seconds or a timedelta; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


@dataclass(frozen=True)
class Retry:
    """How a failing step is retried.

    Attempt ``k`` (1-based) that fails waits ``initial_interval * backoff**(k-1)``
    seconds, capped at ``max_interval``, before attempt ``k+1``; after
    ``max_attempts`` attempts the error is final. Exceptions whose type is in
    ``non_retryable`` (or subclasses :class:`perdure.NonRetryableError`) are final at
    once. The waits are durable timers: no thread sleeps, and a restart keeps them.
    """

    max_attempts: int = 3
    initial_interval: float | timedelta = 1.0
    backoff: float = 2.0
    max_interval: float | timedelta = 60.0
    non_retryable: tuple[type[BaseException], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("Retry.max_attempts must be at least 1")
        if self.backoff < 1:
            raise ValueError("Retry.backoff must be at least 1.0")
        if (seconds(self.initial_interval) or 0) < 0:
            raise ValueError("Retry.initial_interval must not be negative")
        object.__setattr__(self, "non_retryable", tuple(self.non_retryable))

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after attempt ``failed_attempt`` (1-based) failed."""
        base = seconds(self.initial_interval) or 0.0
        # The cap never undercuts the first interval: initial_interval=3600 waits an hour.
        cap = max(seconds(self.max_interval) or 0.0, base)
        return float(min(base * self.backoff ** (failed_attempt - 1), cap))

    def should_retry(self, exc: BaseException, failed_attempt: int) -> bool:
        if failed_attempt >= self.max_attempts:
            return False
        if isinstance(exc, NonRetryableError):
            return False
        return not isinstance(exc, self.non_retryable)


NO_RETRY = Retry(max_attempts=1)
DEFAULT_RETRY = Retry()
