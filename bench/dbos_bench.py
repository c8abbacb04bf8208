"""The workloads on DBOS Transact, with its documented APIs: ``@DBOS.workflow`` and
``@DBOS.step`` on ``async def``, ``DBOS.start_workflow_async`` and handles,
``DBOS.sleep_async``, and recovery of pending workflows when a process with the same
executor id launches. One workload per process:

    python bench/dbos_bench.py w1 --url sqlite:///x.sqlite

W5 makes this process the coordinator: it enqueues the workflows with a
``DBOSClient``, runs ``dbos_bench.py w5-worker`` subprocesses, kills the first and
times the second. W6 makes it the client of 1, 2 or 4 ``dbos_bench.py w6-worker``
processes that dequeue from one queue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any

import harness  # bench/ is on sys.path: the script's folder, or the worker's cwd
from dbos import DBOS, DBOSClient

W5_STEP_SECONDS = 0.05
effects = harness.EffectLog(os.environ.get("BENCH_EFFECTS", os.devnull))


@DBOS.step()
async def noop(i: int) -> int:
    return i


@DBOS.workflow()
async def sequential(steps: int) -> int:
    for i in range(steps):
        await noop(i)
    return steps


@DBOS.workflow()
async def fan_out(width: int) -> int:
    # DBOS numbers async steps in the order their tasks start, so gather is replayable.
    results = await asyncio.gather(*(noop(i) for i in range(width)))
    return len(results)


@DBOS.workflow()
async def sleeper(seconds: float) -> None:
    await DBOS.sleep_async(seconds)


@DBOS.step()
async def effect(workflow: int, step: int) -> int:
    effects.begin(workflow, step)
    await asyncio.sleep(W5_STEP_SECONDS)
    effects.effect(workflow, step)
    return step


@DBOS.workflow()
async def recoverable(workflow: int, steps: int) -> int:
    for i in range(steps):
        await effect(workflow, i)
    return steps


def launch(url: str, executor_id: str | None = None) -> None:
    """Configure and launch DBOS on ``url`` from the running event loop, so async
    workflows (recovered ones too) run on it. Called inside that loop."""
    config: Any = {"name": "bench", "system_database_url": url, "log_level": "WARNING"}
    if executor_id is not None:
        config["executor_id"] = executor_id
    DBOS(config=config)
    DBOS.launch()


async def warm_up() -> None:
    """One small workflow before the clock starts, so first-call costs are not
    measured: both engines get one."""
    await (await DBOS.start_workflow_async(sequential, 1)).get_result()


async def gather_in_chunks(coros: list[Any], chunk: int) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(coros), chunk):
        out.extend(await asyncio.gather(*coros[i : i + chunk]))
    return out


# -- workloads ------------------------------------------------------------------------------


async def w1(url: str, p: dict[str, Any]) -> dict[str, Any]:
    n, steps = p["workflows"], p["steps"]
    launch(url)
    await warm_up()
    t0 = time.perf_counter()
    handles = await asyncio.gather(
        *(DBOS.start_workflow_async(sequential, steps) for _ in range(n))
    )
    results = await asyncio.gather(*(h.get_result() for h in handles))
    wall = time.perf_counter() - t0
    assert results == [steps] * n
    return {"workflows_per_s": n / wall, "steps_per_s": n * steps / wall, "wall_s": wall}


async def w2(url: str, p: dict[str, Any]) -> dict[str, Any]:
    launch(url)
    await warm_up()
    samples = []
    for _ in range(p["iterations"]):
        t0 = time.perf_counter()
        handle = await DBOS.start_workflow_async(sequential, 1)
        assert await handle.get_result() == 1
        samples.append(time.perf_counter() - t0)
    return harness.latency_figures(samples)


async def w3(url: str, p: dict[str, Any]) -> dict[str, Any]:
    width = p["width"]
    launch(url)
    await warm_up()
    t0 = time.perf_counter()
    handle = await DBOS.start_workflow_async(fan_out, width)
    assert await handle.get_result() == width
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "steps_per_s": width / wall}


class SleepProbe:
    """Counts workflows whose durable sleep is recorded (DBOS writes the wake-up time
    as a step output before it starts waiting)."""

    SQL = "SELECT COUNT(*) FROM {}operation_outputs WHERE function_name = 'DBOS.sleep'"

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite"):
            path = harness.sqlite_path(url)
            self.conn: Any = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30
            )
            self.sql = self.SQL.format("")
        else:
            self.conn = harness.pg_connect(url)
            self.sql = self.SQL.format("dbos.")

    def _count(self) -> int:
        return int(self.conn.execute(self.sql).fetchone()[0])

    async def asleep(self) -> int:
        return await asyncio.to_thread(self._count)


async def w4(url: str, p: dict[str, Any]) -> dict[str, Any]:
    n = p["workflows"]
    launch(url)
    await warm_up()
    probe = SleepProbe(url)
    rss_before = harness.rss_mib()
    t0 = time.perf_counter()
    await gather_in_chunks(
        [DBOS.start_workflow_async(sleeper, 3600.0) for _ in range(n)], p["chunk"]
    )
    started = time.perf_counter() - t0
    # Polled less often than perdure's WAL file: on DBOS's rollback-journal SQLite
    # file a reader holds off writers while it reads.
    while await probe.asleep() < n:
        await asyncio.sleep(0.05)
    asleep = time.perf_counter() - t0
    rss = harness.rss_mib()
    return {
        "start_s": asleep,
        "start_calls_s": started,
        "rss_mib": rss,
        "rss_before_mib": rss_before,
        "db_mib": harness.db_size_mib(url),
        "threads": len(os.listdir("/proc/self/task")),
    }


W5_QUEUE = "w5"
# How often a worker looks for enqueued workflows: perdure's default poll on SQLite.
W5_QUEUE_POLL = 0.2


async def w5_worker(url: str) -> None:
    """A worker process: launching recovers the workflows this executor had dequeued
    (its predecessor's, after a kill); the queue hands it the rest."""
    launch(url)
    await DBOS.register_queue_async(W5_QUEUE, polling_interval_sec=W5_QUEUE_POLL)
    await asyncio.Event().wait()


def w5(url: str, p: dict[str, Any], workdir: Path) -> dict[str, Any]:
    n, steps = p["workflows"], p["steps"]
    effects_log = harness.EffectLog(workdir / "effects.log")
    env = dict(os.environ, BENCH_EFFECTS=effects_log.path)
    # Create every workflow before a worker runs, as perdure's coordinator does: a
    # DBOS process runs what it starts itself, so they are enqueued from a client.
    DBOS.migrate(url)
    client = DBOSClient(system_database_url=url)
    client.register_queue(W5_QUEUE, polling_interval_sec=W5_QUEUE_POLL)
    for k in range(n):
        client.enqueue(
            {"queue_name": W5_QUEUE, "workflow_name": "recoverable", "workflow_id": f"w5-{k}"},
            k,
            steps,
        )

    def spawn(first: bool) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, __file__, "w5-worker", "--url", url]
        return subprocess.Popen(cmd, env=env)

    def completed() -> int:
        runs = client.list_workflows(status="SUCCESS", load_input=False, load_output=False)
        return len(runs)

    figures = harness.run_recovery(
        workflows=n,
        steps=steps,
        effects=effects_log,
        spawn_worker=spawn,
        count_completed=completed,
        kill_after=p.get("kill_after", 1.0),
        step_seconds=W5_STEP_SECONDS,
    )
    client.destroy()
    figures["queue_poll_s"] = W5_QUEUE_POLL
    return figures


# -- W6: scale-out over worker processes ----------------------------------------------------

W6_QUEUE = "w6"
W6_QUEUE_POLL = 0.2  # as W5: perdure's default poll on a database shared by processes
W6_POLL = 0.05
W6_WARM_UP = 10  # as perdure's W6 workers


def w6(url: str, p: dict[str, Any]) -> dict[str, Any]:
    """W1's shape run by ``processes`` DBOS processes on one database. A process runs
    what it starts itself, so this client enqueues every workflow on a queue that all
    of them dequeue from. The queue's worker_concurrency is 0 (nothing dequeued) while
    the processes launch and warm up; once all are ready, setting it to the
    per-process limit is the word to go. The clock runs from then to the last
    workflow's ``updated_at``."""
    n, steps, processes = p["workflows"], p["steps"], p["processes"]
    DBOS.migrate(url)
    client = DBOSClient(system_database_url=url)
    client.register_queue(W6_QUEUE, worker_concurrency=0, polling_interval_sec=W6_QUEUE_POLL)
    for k in range(n):
        client.enqueue(
            {"queue_name": W6_QUEUE, "workflow_name": "sequential", "workflow_id": f"w6-{k}"},
            steps,
        )
    cmd = [sys.executable, __file__, "w6-worker", "--url", url, "--params", json.dumps(p)]
    workers = harness.WorkerGroup(
        cmd, processes, env_for=lambda i: dict(os.environ, BENCH_EXECUTOR=f"w6-{i}")
    )
    try:
        workers.wait_ready()
        queue = client.retrieve_queue(W6_QUEUE)
        assert queue is not None
        ticks = harness.cpu_ticks()
        t0 = workers.go()
        queue.set_worker_concurrency(harness.w6_per_process(p))
        while True:
            done = client.list_workflows(
                status="SUCCESS", queue_name=W6_QUEUE, load_input=False, load_output=False
            )
            if len(done) >= n:
                break
            workers.check_alive()
            time.sleep(W6_POLL)
        end = max((w.updated_at or 0) for w in done) / 1000
        busy = harness.cpu_busy_since(ticks)
        reports = workers.stop()
    finally:
        workers.kill()
        client.destroy()
    wall = end - t0
    by_executor = Counter(w.executor_id for w in done)
    return {
        "processes": processes,
        "steps_per_s": n * steps / wall,
        "workflows_per_s": n / wall,
        "wall_s": wall,
        "per_process": harness.w6_per_process(p),
        "finished_by_process": sorted(by_executor.values(), reverse=True),
        "worker_cpu_ms_per_step": sum(r["cpu_s"] for r in reports) * 1000 / (n * steps),
        "machine_cpu_busy": busy,
        "queue_poll_s": W6_QUEUE_POLL,
    }


async def w6_worker(url: str) -> None:
    """One W6 process: launch (with its own executor id; the queue hands out nothing
    yet), warm up as in W1 with a few 1-step workflows run at once, say ready, then run
    whatever the queue hands it until stdin closes."""
    launch(url, os.environ["BENCH_EXECUTOR"])
    handles = await asyncio.gather(
        *(DBOS.start_workflow_async(sequential, 1) for _ in range(W6_WARM_UP))
    )
    await asyncio.gather(*(h.get_result() for h in handles))
    harness.WorkerGroup.ready()
    await asyncio.to_thread(harness.WorkerGroup.wait_for_go)
    cpu0 = time.process_time()
    await asyncio.to_thread(harness.WorkerGroup.wait_for_stop)
    harness.WorkerGroup.report({"cpu_s": time.process_time() - cpu0})


# -- entry point ----------------------------------------------------------------------------


def durability(url: str) -> str:
    if url.startswith("sqlite"):
        path = harness.sqlite_path(url)
        mode = harness.sqlite_journal_mode(path) if os.path.exists(path) else "?"
        # DBOS sets no synchronous pragma, so SQLite's default (FULL) applies.
        return f"SQLite journal_mode={mode.upper()}, synchronous=FULL (SQLite default)"
    return harness.server_durability(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "workload", choices=["w1", "w2", "w3", "w4", "w5", "w5-worker", "w6", "w6-worker"]
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--params", default="{}", help="workload sizes, as JSON")
    parser.add_argument("--workdir", default=".", help="where W5 keeps its effect log")
    args = parser.parse_args()
    params = json.loads(args.params)
    if args.workload == "w5-worker":
        asyncio.run(w5_worker(args.url))
        return
    if args.workload == "w6-worker":
        asyncio.run(w6_worker(args.url))
        return

    def report(figures: dict[str, Any]) -> None:
        harness.emit(
            figures, engine="dbos", version=version("dbos"), durability=durability(args.url)
        )

    if args.workload == "w5":
        report(w5(args.url, params, Path(args.workdir)))
    if args.workload == "w6":
        report(w6(args.url, params))
    workload = {"w1": w1, "w2": w2, "w3": w3, "w4": w4}[args.workload]

    async def run() -> None:
        # Report from inside the loop: the process exits before asyncio.run would
        # cancel whatever DBOS still has on it (W4: thousands of sleeping workflows).
        report(await workload(args.url, params))

    asyncio.run(run())


if __name__ == "__main__":
    main()
