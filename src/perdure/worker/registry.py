"""The worker registry: every worker checks in now and then, so operators (and the
API) can see who is alive, what it serves and how busy it is, and a run that no live
worker can execute can say so."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..clock import to_datetime
from ..records import RunRecord, RunStatus, WorkerRecord

if TYPE_CHECKING:
    from .worker import Worker

log = logging.getLogger("perdure.worker")

CHECK_IN = 5.0  # seconds between a worker's check-ins, at most
FORGET_AFTER = 86400.0  # rows of workers silent this long are deleted


@dataclass(frozen=True)
class WorkerInfo:
    """A live worker, as it last described itself."""

    id: str
    host: str
    pid: int
    version: str | None  # the code version of its app (App(version=...))
    workflows: list[str]
    concurrency: int
    held: int  # runs it held when it last checked in
    started_at: datetime
    seen_at: datetime
    queues: list[str] | None = None  # the queues it serves (None: not said)

    @classmethod
    def from_record(cls, rec: WorkerRecord) -> WorkerInfo:
        data = json.loads(rec.info)
        return cls(
            rec.id,
            str(data.get("host", "")),
            int(data.get("pid", 0)),
            data.get("version"),
            list(data.get("workflows", [])),
            int(data.get("concurrency", 0)),
            int(data.get("held", 0)),
            to_datetime(float(data.get("started_at", rec.seen_at))),
            to_datetime(rec.seen_at),
            list(data["queues"]) if isinstance(data.get("queues"), list) else None,
        )


def interval(worker: Worker) -> float:
    return max(0.05, min(CHECK_IN, worker.lease_ttl / 3))


def alive_after(worker_lease_ttl: float, now: float) -> float:
    """Workers seen since this time count as alive: a few missed check-ins are fine."""
    return now - 3 * max(0.05, min(CHECK_IN, worker_lease_ttl / 3)) - 1.0


async def check_in(worker: Worker, started_at: float) -> None:
    info = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "version": worker.app.version,
        "workflows": worker.app.workflow_names(),
        "queues": worker.served_queues(),
        "concurrency": worker.concurrency,
        "held": len(worker.drivers),
        "started_at": started_at,
    }
    await worker.backend.save_worker(worker.id, worker.clock.now(), json.dumps(info).encode())


async def registry_loop(worker: Worker) -> None:
    """Check in at start (forgetting long-silent workers), then every ``interval``."""
    started_at = worker.clock.now()
    try:
        await worker.backend.forget_workers(started_at - FORGET_AFTER)
    except Exception:
        log.exception("worker registry: clearing old entries failed")
    while not worker.stopping:
        try:
            await check_in(worker, started_at)
        except Exception:
            log.exception("worker registry: checking in failed; trying again")
        await asyncio.sleep(interval(worker))


async def check_out(worker: Worker) -> None:
    try:
        await worker.backend.forget_workers(0.0, worker.id)
    except Exception:
        log.exception("worker registry: checking out failed")


OVERDUE = 5.0  # seconds a due run may wait for a worker before it explains itself


def why_waiting(rec: RunRecord, workers: list[WorkerInfo]) -> str | None:
    """Why no live worker takes a run that is overdue or queued, or None if one could."""
    if not workers:
        return "no worker is running on this database"
    serving = [w for w in workers if rec.workflow in w.workflows]
    if not serving:
        return f"no live worker serves workflow {rec.workflow!r}"
    serving = [w for w in serving if w.queues is None or rec.queue in w.queues]
    if not serving:
        return (
            f"no live worker serving {rec.workflow!r} serves queue {rec.queue!r}; start one "
            f"with --queues {rec.queue}"
        )
    version = rec.version
    if version is not None and not any(w.version in (None, version) for w in serving):
        running = ", ".join(sorted({repr(w.version) for w in serving}))
        return (
            f"it is pinned to version {version!r} and no live worker serving "
            f"{rec.workflow!r} runs that version (live: {running}); deploy it, or fork the run"
        )
    if rec.status is RunStatus.PENDING and rec.queued:
        return f"its turn in queue {rec.queue!r}: the queue's limits are reached for now"
    return None
