"""Push wake-ups (``Backend.watch``): where a backend has them (PostgreSQL's
LISTEN/NOTIFY, Redis pub/sub), another process's start or message reaches a watcher
without waiting for its poll. Backends without them return from ``watch`` at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from test_conformance import NOW, checkpoint, commit, new_run, signal, start

from perdure.backends import Backend

PUSHING = ("postgresql", "redis")


async def woken_by(backend: Backend, act: Callable[[], Awaitable[object]]) -> bool:
    """Watch ``backend``; once subscribed, ``act``; whether a wake-up followed."""
    woken = asyncio.Event()
    watching = asyncio.create_task(backend.watch(woken.set))
    try:
        # The first wake-up says the subscription is live (and that anything sent
        # before it may have been missed).
        async with asyncio.timeout(30):
            await woken.wait()
        woken.clear()
        await act()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await woken.wait()
        return woken.is_set()
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)


def pushes(url: str) -> bool:
    return url.startswith(PUSHING)


async def test_a_start_elsewhere_wakes_a_watcher(
    backend: Backend, other_backend: Backend, url: str
) -> None:
    if not pushes(url):
        # Polling only: watch returns at once, and says so by returning.
        async with asyncio.timeout(5):
            await backend.watch(lambda: None)
        return
    assert await woken_by(backend, lambda: other_backend.create_run(new_run("r1")))


async def test_a_message_elsewhere_wakes_a_watcher(
    backend: Backend, other_backend: Backend, url: str
) -> None:
    if not pushes(url):
        return
    c = await start(other_backend, "r1")
    # Parked waiting for a message: only the message makes it due again.
    assert (await commit(other_backend, checkpoint(c, release=True))).applied
    assert await woken_by(backend, lambda: other_backend.deliver(signal("r1", "go"), NOW))
