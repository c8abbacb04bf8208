"""The worker: claim runnable runs, drive them, keep their leases alive.

A worker holds a run only while it has something to do for it. When a run waits
(timer, message, child, retry) its lease is released in the same checkpoint, and its
live coroutine may stay in the *sticky cache*: if this worker claims the run again and
the journal has not moved on, it continues from memory; otherwise it replays. The
cache is an optimisation only; correctness never depends on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import socket
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ErrorInfo, RegistrationError
from ..queues import Queue
from ..records import Checkpoint, Claim, Outcome
from ..workflow.instance import WorkflowInstance
from . import registry
from .committer import Committer
from .driver import RunDriver

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("perdure.worker")

_MAX_WAKES = 4096
RETENTION_INTERVAL = 600.0  # seconds between purges of old runs, at most


@dataclass
class _Cached:
    instance: WorkflowInstance
    token: int  # the lease it was parked under: the next claim must be the very next
    journal_len: int
    generation: int
    parked_at: float


class Worker:
    """Runs workflows registered on ``app``. Use ``async with app.worker():`` or
    ``app.run_worker()``; several workers (threads, processes, machines) may share
    one database."""

    def __init__(
        self,
        app: App,
        *,
        concurrency: int = 1000,
        lease_ttl: float | None = None,
        poll_interval: float | None = None,
        sticky_cache: bool | None = None,
        cache_size: int = 2000,
        cache_idle: float = 60.0,
        threads: int = 32,
        shutdown_timeout: float = 30.0,
        worker_id: str | None = None,
        queues: Sequence[str] | None = None,
    ) -> None:
        self.app = app
        self.backend = app.backend
        self.clock = app.clock
        self.payloads = app.payloads
        self.app_hub = app.hub
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.concurrency = concurrency
        if isinstance(queues, str):
            raise TypeError("queues= takes a list of queue names, e.g. queues=['default']")
        # Checked now: a worker told to serve a queue its app does not declare is a typo.
        self.queues = [app.queues.get(name).name for name in queues] if queues else None
        self.lease_ttl = lease_ttl if lease_ttl is not None else app.lease_ttl
        self.poll_interval = poll_interval if poll_interval is not None else app.poll_interval
        self.sticky = app.sticky_cache if sticky_cache is None else sticky_cache
        self.cache_size = cache_size
        self.cache_idle = cache_idle
        self.shutdown_timeout = shutdown_timeout
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="perdure-step")
        self.committer = Committer(self.backend)
        self.drivers: dict[str, RunDriver] = {}
        self._driver_tasks: dict[str, asyncio.Task[None]] = {}
        self._queue_of: dict[str, str] = {}  # the queue of each run in _driver_tasks
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._wakes: list[float] = []  # a heap of times runs released here want a worker
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.stopping = False
        # "looks": passes of the claim loop (admit, then claim), for tests to wait on.
        self.stats = {"claimed": 0, "replayed": 0, "cache_hits": 0, "finished": 0, "looks": 0}

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await self.app.open()
        self._loop = asyncio.get_running_loop()
        self.committer.start()
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="perdure-claim"),
            asyncio.create_task(self._heartbeat_loop(), name="perdure-heartbeat"),
            asyncio.create_task(registry.registry_loop(self), name="perdure-registry"),
            asyncio.create_task(self._watch(), name="perdure-watch"),
        ]
        if self.app.retention is not None:
            self._tasks.append(
                asyncio.create_task(self._retention_loop(self.app.retention), name="perdure-purge")
            )
        self.app.hub.add_worker(self)
        # Schedules declared in code exist (or are brought up to date) wherever a worker
        # runs: an embedded one, `perdure worker`, `perdure serve`, a test store.
        await self.app.schedules.ensure_declared()
        log.info("worker %s started (%s)", self.id, self.backend.url)

    async def stop(self, timeout: float | None = None) -> None:
        """Stop claiming; let held runs finish their in-flight steps and hand back their
        leases; after ``timeout`` seconds abort what is left and release it."""
        if self.stopping:
            return
        self.stopping = True
        self.app.hub.remove_worker(self)
        self._wake.set()
        for driver in self.drivers.values():
            driver.wakeup.set()
        deadline = self.shutdown_timeout if timeout is None else timeout
        pending = list(self._driver_tasks.values())
        if pending:
            _, still = await asyncio.wait(pending, timeout=deadline)
            for run_id, task in list(self._driver_tasks.items()):
                if task in still:
                    held = self.drivers.get(run_id)
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
                    if held is not None:
                        await held.abort()
                        with contextlib.suppress(Exception):
                            await self.backend.release(
                                run_id, self.id, held.token, self.clock.now()
                            )
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await registry.check_out(self)
        await self.committer.stop()
        for cached in self._cache.values():
            cached.instance.close()
        self._cache.clear()
        self.executor.shutdown(wait=False, cancel_futures=True)
        log.info("worker %s stopped", self.id)

    async def stop_from_any_loop(self) -> None:
        """``stop()``, also when called from another thread's event loop."""
        loop = self._loop
        if loop is None or _on_loop(loop) or loop.is_closed():
            await self.stop()
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.stop(), loop))

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    # -- waking -------------------------------------------------------------------------

    def poke(self) -> None:
        """New work may be runnable (thread-safe)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if _on_loop(loop):
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    def time_moved(self) -> None:
        """The clock jumped (a virtual clock in tests): every wait may be over. Call on
        the worker's loop."""
        self._wake.set()
        for driver in self.drivers.values():
            driver.poke()

    def is_idle(self) -> bool:
        """Nothing held, nothing being set up, nothing waiting to be written."""
        return not self._driver_tasks and not self.drivers and self.committer.idle()

    def poke_run(self, run_id: str) -> None:
        """Something was delivered to ``run_id`` (thread-safe)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def deliver() -> None:
            driver = self.drivers.get(run_id)
            if driver is not None:
                driver.poke()
            else:
                self._wake.set()

        if _on_loop(loop):
            deliver()
        else:
            loop.call_soon_threadsafe(deliver)

    # -- claiming -----------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while not self.stopping:
            claims: list[Claim] = []
            # Count runs still being set up (journal read, replay) too, not only drivers.
            capacity = self.concurrency - len(self._driver_tasks)
            looked_at = self.clock.now()
            # Clear before claiming: a poke that lands while we claim is not lost.
            self._wake.clear()
            served = self._served()
            await self._admit(served, looked_at)
            if capacity > 0:
                try:
                    claims = await self._claim(capacity, looked_at, served)
                except Exception:
                    log.exception("claiming runs failed; retrying")
                    await asyncio.sleep(min(1.0, self.poll_interval * 4))
                    continue
                for claim in claims:
                    self._begin(claim)
            self.stats["looks"] += 1
            self._sweep_cache()
            if claims and len(claims) >= min(capacity, 100):
                await asyncio.sleep(0)
                continue
            # Wake-ups due by the time we looked were served by that claim.
            while self._wakes and self._wakes[0] <= looked_at:
                heapq.heappop(self._wakes)
            timeout = self.poll_interval
            if self._wakes:
                timeout = max(0.0, min(timeout, self._wakes[0] - self.clock.now()))
            # asyncio.timeout, not wait_for: on 3.11 wait_for may swallow a cancel
            # that lands as the event is set, and stop() would wait on us forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _watch(self) -> None:
        """Push wake-ups from the backend, where it has them (polling goes on anyway)."""
        try:
            await self.backend.watch(self.poke)
        except Exception:
            log.exception("watching for wake-ups failed; polling only")

    async def _retention_loop(self, keep: float) -> None:
        """Delete runs that ended more than ``keep`` seconds ago, now and then. Every
        worker does it; deleting is idempotent, so they need not agree who."""
        while not self.stopping:
            try:
                gone = await self.app.purge(keep)
                if gone:
                    log.info("retention: deleted %d runs that ended over %g s ago", gone, keep)
            except Exception:
                log.exception("retention: deleting old runs failed; trying again later")
            await asyncio.sleep(min(keep / 10, RETENTION_INTERVAL))

    def _begin(self, claim: Claim) -> None:
        run = claim.run
        self.stats["claimed"] += 1
        task = asyncio.create_task(self._drive(claim), name=f"perdure-run:{run.id}")
        self._driver_tasks[run.id] = task
        self._queue_of[run.id] = run.queue

    async def _drive(self, claim: Claim) -> None:
        run = claim.run
        driver: RunDriver | None = None
        try:
            instance = await self._instance_for(claim)
            if instance is None:
                return
            driver = RunDriver(self, run.id, claim.token, run.mailbox, instance, claim.inbox)
            self.drivers[run.id] = driver
            await driver.run()
            if driver.lost and not driver.parked:
                instance.close()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("run %s: worker error; releasing it for another attempt", run.id)
            if driver is not None:
                driver.instance.close()
                await driver.abort()
            with contextlib.suppress(Exception):
                await self.backend.release(run.id, self.id, claim.token, self.clock.now())
        finally:
            # Only our own entries: a newer claim of the same run may have replaced them.
            if driver is not None and self.drivers.get(run.id) is driver:
                del self.drivers[run.id]
            if self._driver_tasks.get(run.id) is asyncio.current_task():
                full = len(self._driver_tasks) >= self.concurrency
                del self._driver_tasks[run.id]
                del self._queue_of[run.id]
                if full:  # a place is free: claim now, not at the next poll
                    self._wake.set()

    async def _instance_for(self, claim: Claim) -> WorkflowInstance | None:
        run = claim.run
        cached = self._cache.pop(run.id, None)
        if cached is not None:
            usable = not cached.instance.finished and not cached.instance.loop.is_closed()
            # Another claim or an operator's change (which fences) moves the token on.
            if usable and (cached.token + 1, cached.journal_len, cached.generation) == (
                claim.token,
                run.journal_len,
                run.generation,
            ):
                self.stats["cache_hits"] += 1
                return cached.instance
            cached.instance.close()
        workflow = self.app.workflows.get(run.workflow)
        if workflow is None:  # claimed by name filter, so only if unregistered meanwhile
            raise RegistrationError(f"workflow {run.workflow!r} is not registered")
        journal = await self.backend.read_journal(run.id) if run.journal_len else []
        instance = WorkflowInstance(run, workflow, self.payloads, journal)
        if journal:
            self.stats["replayed"] += 1
        try:
            instance.start()
        except Exception as exc:  # input that no longer decodes, etc.
            log.exception("run %s could not start", run.id)
            await self.committer.commit(
                Checkpoint(
                    run.id,
                    self.id,
                    claim.token,
                    self.clock.now(),
                    0.0,
                    outcome=Outcome.FAILED,
                    error=ErrorInfo.from_exception(exc).to_bytes(),
                )
            )
            self.app_hub.changed(run.id)
            return None
        return instance

    # -- what drivers report ------------------------------------------------------------

    def on_finished(self, run_id: str, outcome: Outcome) -> None:
        self.stats["finished"] += 1
        # A run that ended may have freed a place in a queue: admit the next at once.
        if outcome is Outcome.CONTINUED or any(q.admits_by_turn for q in self._served()):
            self.poke()

    # -- queues -------------------------------------------------------------------------

    def _served(self) -> list[Queue]:
        queues = self.app.queues
        return [queues.get(n) for n in self.queues] if self.queues else list(queues)

    def served_queues(self) -> list[str]:
        return [q.name for q in self._served()]

    async def _admit(self, served: list[Queue], now: float) -> None:
        """Let queued runs of the queues with limits in, as far as their limits allow
        (the database arbitrates between workers doing the same)."""
        for queue in served:
            if not queue.admits_by_turn:
                continue
            try:
                admitted = await self.backend.admit_runs(queue.limits(), now)
            except Exception:
                log.exception("admitting runs to queue %r failed; retrying", queue.name)
                continue
            if admitted:
                log.debug("queue %r admitted %d runs", queue.name, len(admitted))

    async def _claim(self, capacity: int, now: float, served: list[Queue]) -> list[Claim]:
        """Claim up to ``capacity`` runs of the served queues; a queue with a
        ``per_worker`` limit only as far as this worker has room for it."""
        plain = [q.name for q in served if q.per_worker is None]
        groups: list[tuple[list[str], int]] = [(plain, capacity)] if plain else []
        if len(plain) < len(served):
            held = Counter(self._queue_of.values())
            for queue in served:
                if queue.per_worker is not None:
                    groups.append(([queue.name], queue.per_worker - held[queue.name]))
        claims: list[Claim] = []
        for names, room in groups:
            room = min(room, capacity - len(claims), 100)
            if room <= 0:
                continue
            claims += await self.backend.claim_runs(
                self.id,
                room,
                now,
                now + self.lease_ttl,
                self.app.workflow_names(),
                self.app.max_recoveries,
                self.app.version,
                names,
            )
        return claims

    def on_released(self, driver: RunDriver, due: float | None) -> None:
        now = self.clock.now()
        if due is not None:
            heapq.heappush(self._wakes, due)
            if len(self._wakes) > _MAX_WAKES:
                # Only the soonest matter for precision; later ones are met by polling.
                self._wakes = heapq.nsmallest(_MAX_WAKES // 4, self._wakes)
            self.poke()
        keep = (
            self.sticky
            and not self.stopping
            and not driver.instance.finished  # ended while paused: replayed on resume
            and (due is None or due - now <= self.cache_idle)
        )
        driver.parked = keep
        if keep:
            self._cache[driver.run_id] = _Cached(
                driver.instance,
                driver.token,
                driver.instance.committed,
                driver.instance.generation,
                time.monotonic(),
            )
            while len(self._cache) > self.cache_size:
                _, old = self._cache.popitem(last=False)
                old.instance.close()
        else:
            driver.instance.close()

    def _sweep_cache(self) -> None:
        limit = time.monotonic() - self.cache_idle
        while self._cache:
            run_id, first = next(iter(self._cache.items()))
            if first.parked_at > limit:
                break
            del self._cache[run_id]
            first.instance.close()

    # -- leases ---------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        interval = max(0.05, self.lease_ttl / 3)
        while True:
            await asyncio.sleep(interval)
            if not self.drivers:
                continue
            snapshot = dict(self.drivers)
            leases = {run_id: d.token for run_id, d in snapshot.items()}
            now = self.clock.now()
            try:
                held = await self.backend.extend_leases(self.id, leases, now + self.lease_ttl)
            except Exception:
                log.exception("extending leases failed")
                continue
            for run_id, driver in snapshot.items():
                if not driver.holding:
                    continue  # it released or finished while we were extending
                if run_id not in held:
                    driver.lost = True
                    driver.poke()
                elif held[run_id] != driver.mailbox_seen:
                    driver.poke(held[run_id])


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def describe_stats(worker: Worker) -> dict[str, Any]:
    return dict(worker.stats, held=len(worker.drivers), cached=len(worker._cache))
