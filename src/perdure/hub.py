"""In-process wake-ups: tell local workers and waiters that something changed.

Across processes, workers and waiters poll the database; inside one process these
notifications make starts, messages and results immediate. Every method is
thread-safe (the sync portal runs on its own thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .worker import Worker


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workers: list[Worker] = []
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = {}

    def add_worker(self, worker: Worker) -> None:
        with self._lock:
            self._workers.append(worker)

    def remove_worker(self, worker: Worker) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._workers.remove(worker)

    def has_worker(self) -> bool:
        with self._lock:
            return bool(self._workers)

    def work(self) -> None:
        """A run became runnable."""
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.poke()

    def message(self, run_id: str) -> None:
        """Something was delivered to ``run_id``."""
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.poke_run(run_id)

    def changed(self, run_id: str) -> None:
        """``run_id`` changed (finished, set an event): wake whoever waits on it."""
        with self._lock:
            waiters = list(self._waiters.get(run_id, ()))
        for loop, waiter in waiters:
            if loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                _wake(waiter)
            else:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_wake, waiter)

    async def wait(self, run_id: str, timeout: float) -> None:
        """Wait until ``changed(run_id)`` or ``timeout`` seconds pass."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        entry = (loop, waiter)
        with self._lock:
            self._waiters.setdefault(run_id, set()).add(entry)
        timer = loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            with self._lock:
                waiters = self._waiters.get(run_id)
                if waiters is not None:
                    waiters.discard(entry)
                    if not waiters:
                        del self._waiters[run_id]


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
