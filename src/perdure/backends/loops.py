"""What the server backends share about event loops: a store's connections belong to
the loop that opened them (the sync surface runs a loop of its own, on its thread), so
closing the store closes each loop's connections on that loop; and a wake-up listener
that loses its connection comes back after a growing pause."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping
from typing import Protocol


class Closable(Protocol):
    async def close(self) -> None: ...


async def close_on_their_loops(
    states: Mapping[asyncio.AbstractEventLoop, Closable], closing: set[asyncio.Task[None]]
) -> None:
    """Close each loop's state: the running loop's now; another thread's loop's there,
    not waited for, since that loop may be blocked on this very call (a sync caller).
    ``closing`` keeps those tasks referenced until they end."""
    try:
        current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    for loop, state in states.items():
        if loop is current:
            await state.close()
        elif not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # it closed meanwhile
                loop.call_soon_threadsafe(_close_here, state, closing)


def _close_here(state: Closable, closing: set[asyncio.Task[None]]) -> None:
    task = asyncio.get_running_loop().create_task(state.close())
    closing.add(task)
    task.add_done_callback(closing.discard)


class Backoff:
    """Pauses between attempts to reconnect: from half a second, doubling up to ten,
    jittered so that many workers do not all come back at once; ``reset`` once
    connected."""

    FIRST = 0.5
    LONGEST = 10.0

    def __init__(self) -> None:
        self.delay = self.FIRST

    def reset(self) -> None:
        self.delay = self.FIRST

    async def pause(self) -> None:
        await asyncio.sleep(self.delay * (1 + random.random()))
        self.delay = min(self.delay * 2, self.LONGEST)
