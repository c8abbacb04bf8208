"""Group commit: checkpoints from many runs share one transaction.

Drivers hand their checkpoints to the committer and wait. While one batch is being
written, the next one gathers; an fsync costs the same for one checkpoint or a
hundred, so throughput grows with load instead of queueing behind the disk.
"""

from __future__ import annotations

import asyncio
import contextlib

from ..backends.base import Backend
from ..records import Checkpoint, CheckpointResult


class Committer:
    def __init__(self, backend: Backend, max_batch: int = 256) -> None:
        self._backend = backend
        self._max_batch = max_batch
        self._queue: list[tuple[Checkpoint, asyncio.Future[CheckpointResult]]] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._writing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="perdure-committer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for _, fut in self._queue:
            if not fut.done():
                fut.set_exception(RuntimeError("worker stopped before the checkpoint was written"))
        self._queue.clear()

    def idle(self) -> bool:
        return not self._queue and not self._writing

    async def commit(self, checkpoint: Checkpoint) -> CheckpointResult:
        fut: asyncio.Future[CheckpointResult] = asyncio.get_running_loop().create_future()
        self._queue.append((checkpoint, fut))
        self._ready.set()
        return await fut

    async def _loop(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                self._writing = True
                try:
                    results = await self._backend.checkpoint([cp for cp, _ in batch])
                except Exception as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                finally:
                    self._writing = False
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
