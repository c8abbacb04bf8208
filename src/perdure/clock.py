"""The one place perdure reads the time. Tests swap in a :class:`VirtualClock`."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Wall-clock time as POSIX seconds."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def is_virtual(self) -> bool:
        return False


class VirtualClock(Clock):
    """A clock that only moves when told to; used by the testing kit."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._mono = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds

    def is_virtual(self) -> bool:
        return True


def to_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)
