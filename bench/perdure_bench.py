"""The workloads on perdure. One workload per process:

    python bench/perdure_bench.py w1 --url 'sqlite:///x.db?synchronous=normal'

W1-W4 run an embedded worker (``async with app:``) in this process. W5 makes this
process the coordinator: it creates the runs, then runs ``perdure worker
perdure_bench:app`` subprocesses (``app`` below, bound to ``$BENCH_URL``), kills the
first one and times the second. W6 makes it the coordinator of 1, 2 or 4
``perdure_bench.py w6-worker`` processes that share one database.
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
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import harness  # bench/ is on sys.path: the script's folder, or the worker's cwd

import perdure
from perdure.records import RunFilter, RunStatus

W5_STEP_SECONDS = 0.05
W5_LEASE_TTL = 2.0


def build(url: str, **options: Any) -> SimpleNamespace:
    """An app with the benchmark's workflows registered on it."""
    app = perdure.App(url, **options)
    effects = harness.EffectLog(os.environ.get("BENCH_EFFECTS", os.devnull))

    @app.step()
    async def noop(i: int) -> int:
        return i

    @app.workflow()
    async def sequential(steps: int) -> int:
        for i in range(steps):
            await noop(i)
        return steps

    @app.workflow()
    async def fan_out(width: int) -> int:
        results = await asyncio.gather(*(noop(i) for i in range(width)))
        return len(results)

    @app.workflow()
    async def sleeper(seconds: float) -> None:
        await perdure.sleep(seconds)

    @app.step()
    async def effect(workflow: int, step: int) -> int:
        effects.begin(workflow, step)
        await asyncio.sleep(W5_STEP_SECONDS)
        effects.effect(workflow, step)
        return step

    @app.workflow()
    async def recoverable(workflow: int, steps: int) -> int:
        for i in range(steps):
            await effect(workflow, i)
        return steps

    return SimpleNamespace(
        app=app, sequential=sequential, fan_out=fan_out, sleeper=sleeper, recoverable=recoverable
    )


# What ``perdure worker perdure_bench:app`` serves (W5). Building an App opens nothing.
_served = build(os.environ.get("BENCH_URL", "memory://"))
app = _served.app


async def warm_up(ns: SimpleNamespace) -> None:
    """One small workflow before the clock starts, so first-call costs (imports,
    codec set-up, SQL statement cache) are not measured: both engines get one."""
    await (await ns.app.start(ns.sequential, 1)).result(timeout=60)


async def gather_in_chunks(coros: list[Any], chunk: int) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(coros), chunk):
        out.extend(await asyncio.gather(*coros[i : i + chunk]))
    return out


# -- workloads ------------------------------------------------------------------------------


async def w1(ns: SimpleNamespace, p: dict[str, Any]) -> dict[str, Any]:
    n, steps = p["workflows"], p["steps"]
    async with ns.app:
        await warm_up(ns)
        calls = time_backend_calls(ns.app) if p.get("sql_breakdown") else None
        t0 = time.perf_counter()
        handles = await asyncio.gather(*(ns.app.start(ns.sequential, steps) for _ in range(n)))
        results = await asyncio.gather(*(h.result(timeout=600) for h in handles))
        wall = time.perf_counter() - t0
    assert results == [steps] * n
    figures = {"workflows_per_s": n / wall, "steps_per_s": n * steps / wall, "wall_s": wall}
    if calls is not None:
        figures["sqlite_thread"] = {
            name: {"calls": c, "ms": round(t * 1000, 1), "share_of_wall": round(t / wall, 3)}
            for name, (c, t) in sorted(calls.items(), key=lambda kv: -kv[1][1])
        }
    return figures


def time_backend_calls(app: perdure.App) -> dict[str, list[Any]]:
    """Diagnostics (``--profile``): time the work done on the SQLite backend's one
    thread, by the backend method that asked for it. Profilers see only the event loop's
    thread; this shows what queues behind what on the other one. It wraps
    ``SQLiteBackend._call``, a private method, so it is for diagnosis only."""
    backend: Any = app.backend
    original = backend._call
    stats: dict[str, list[Any]] = {}

    async def call(fn: Any, *args: Any) -> Any:
        name = sys._getframe(1).f_code.co_name  # the backend method: get_run, checkpoint...
        entry = stats.setdefault(name, [0, 0.0])

        def timed(*a: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a)
            finally:
                entry[0] += 1
                entry[1] += time.perf_counter() - t0

        return await original(timed, *args)

    backend._call = call
    return stats


async def w2(ns: SimpleNamespace, p: dict[str, Any]) -> dict[str, Any]:
    samples = []
    async with ns.app:
        await warm_up(ns)
        for _ in range(p["iterations"]):
            t0 = time.perf_counter()
            handle = await ns.app.start(ns.sequential, 1)
            assert await handle.result(timeout=60) == 1
            samples.append(time.perf_counter() - t0)
    return harness.latency_figures(samples)


async def w3(ns: SimpleNamespace, p: dict[str, Any]) -> dict[str, Any]:
    width = p["width"]
    async with ns.app:
        await warm_up(ns)
        t0 = time.perf_counter()
        handle = await ns.app.start(ns.fan_out, width)
        assert await handle.result(timeout=600) == width
        wall = time.perf_counter() - t0
    return {"wall_s": wall, "steps_per_s": width / wall}


class SleepProbe:
    """Counts runs still on their way to sleep: pending, or held by a worker. A
    sleeping run is running, with no owner (its lease released) and a timer due."""

    def __init__(self, app: perdure.App) -> None:
        self.app = app
        self.conn: sqlite3.Connection | None = None
        if app.url.startswith("sqlite"):
            path = app.backend.path  # type: ignore[attr-defined]
            self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    async def unsettled(self) -> int:
        if self.conn is not None:
            row = self.conn.execute(
                "SELECT COUNT(*) FROM perdure_runs WHERE status = 'pending' OR owner IS NOT NULL"
            ).fetchone()
            return int(row[0])
        # Any other backend: page through it (slower, but backend-neutral).
        count, cursor = 0, None
        for status in (RunStatus.PENDING, RunStatus.RUNNING):
            while True:
                page = await self.app.backend.list_runs(RunFilter(status=status), 1000, cursor)
                count += sum(1 for r in page.runs if r.status is RunStatus.PENDING or r.owner)
                cursor = page.cursor
                if cursor is None:
                    break
        return count


async def w4(ns: SimpleNamespace, p: dict[str, Any]) -> dict[str, Any]:
    n = p["workflows"]
    async with ns.app:
        await warm_up(ns)
        probe = SleepProbe(ns.app)
        rss_before = harness.rss_mib()
        t0 = time.perf_counter()
        await gather_in_chunks([ns.app.start(ns.sleeper, 3600.0) for _ in range(n)], p["chunk"])
        started = time.perf_counter() - t0
        while await probe.unsettled():
            await asyncio.sleep(0.02)
        asleep = time.perf_counter() - t0
        running = 0
        async for _ in ns.app.list_runs(status=RunStatus.RUNNING, page_size=1000):
            running += 1
        assert running == n, f"{running} of {n} runs are sleeping"
        rss = harness.rss_mib()
        size = harness.db_size_mib(ns.app.url)
    return {
        "start_s": asleep,
        "start_calls_s": started,
        "rss_mib": rss,
        "rss_before_mib": rss_before,
        "db_mib": size,
    }


def w5(url: str, p: dict[str, Any], workdir: Path) -> dict[str, Any]:
    n, steps = p["workflows"], p["steps"]
    effects = harness.EffectLog(workdir / "effects.log")
    reader = build(url)

    async def create() -> None:
        for k in range(n):
            await reader.app.start(reader.recoverable, k, steps, id=f"w5-{k}")

    asyncio.run(create())
    env = dict(os.environ, BENCH_URL=url, BENCH_EFFECTS=effects.path)
    perdure_cli = str(Path(sys.executable).with_name("perdure"))

    def spawn(first: bool) -> subprocess.Popen[bytes]:
        cmd = [perdure_cli, "worker", "perdure_bench:app", "--lease-ttl", str(W5_LEASE_TTL)]
        return subprocess.Popen(cmd, cwd=harness.BENCH_DIR, env=env)

    def completed() -> int:
        async def count() -> int:
            total = 0
            async for _ in reader.app.list_runs(status=RunStatus.COMPLETED):
                total += 1
            await reader.app.close()
            return total

        return asyncio.run(count())

    figures = harness.run_recovery(
        workflows=n,
        steps=steps,
        effects=effects,
        spawn_worker=spawn,
        count_completed=completed,
        kill_after=p.get("kill_after", 1.0),
        step_seconds=W5_STEP_SECONDS,
    )
    figures["lease_ttl_s"] = W5_LEASE_TTL
    return figures


# -- W6: scale-out over worker processes ----------------------------------------------------


def w6(url: str, p: dict[str, Any]) -> dict[str, Any]:
    """W1's shape run by ``processes`` worker processes on one database. This process
    is the client (no worker here). The worker processes start and warm up first (see
    ``w6_worker``); then this process creates every run, and tells all workers to go at
    once. The clock runs from that moment to the last run's ``finished_at`` as the
    database recorded it (the same machine's clock), so how often this process polls
    for completion does not enter the figure."""
    n, steps, processes = p["workflows"], p["steps"], p["processes"]
    client = build(url)
    cmd = [sys.executable, __file__, "w6-worker", "--url", url, "--params", json.dumps(p)]
    workers = harness.WorkerGroup(cmd, processes, cwd=harness.BENCH_DIR)
    try:
        workers.wait_ready()

        async def create() -> None:
            # Open first: concurrent first calls on an unopened app each open the database.
            await client.app.open()
            await gather_in_chunks(
                [client.app.start(client.sequential, steps, id=f"w6-{k}") for k in range(n)],
                200,
            )

        asyncio.run(create())
        ticks = harness.cpu_ticks()
        t0 = workers.go()

        async def last_finish() -> float:
            try:
                while True:
                    finished = [
                        r.finished_at
                        for r in await completed_runs(client.app)
                        if r.id.startswith("w6-")
                    ]
                    if len(finished) >= n:
                        return max(f for f in finished if f is not None)
                    workers.check_alive()
                    await asyncio.sleep(W6_POLL)
            finally:
                await client.app.close()

        end = asyncio.run(last_finish())
        busy = harness.cpu_busy_since(ticks)
        reports = workers.stop()
    finally:
        workers.kill()
    wall = end - t0
    return {
        "processes": processes,
        "steps_per_s": n * steps / wall,
        "workflows_per_s": n / wall,
        "wall_s": wall,
        "per_process": harness.w6_per_process(p),
        # How the runs spread over the processes: a scale-out that does not spread the
        # work shows here first.
        "finished_by_process": sorted((r["finished"] for r in reports), reverse=True),
        "claimed_by_process": sorted((r["claimed"] for r in reports), reverse=True),
        # CPU the worker processes used from the go until told to stop (they idle once
        # done): if it grows per step with more processes, they contend; if not, the
        # machine's cores are the limit.
        "worker_cpu_ms_per_step": sum(r["cpu_s"] for r in reports) * 1000 / (n * steps),
        "machine_cpu_busy": busy,
    }


W6_POLL = 0.05
# Warm-up runs per W6 process, run at once: they open a few of the pool's connections
# too, not only the first.
W6_WARM_UP = 10


async def completed_runs(app: perdure.App) -> list[Any]:
    runs: list[Any] = []
    cursor = None
    while True:
        page = await app.backend.list_runs(RunFilter(status=RunStatus.COMPLETED), 1000, cursor)
        runs.extend(page.runs)
        cursor = page.cursor
        if cursor is None:
            return runs


async def w6_worker(url: str, p: dict[str, Any]) -> None:
    """One W6 worker process. Before any W6 run exists: open the database and warm up
    (a worker runs a few 1-step workflows, then stops), so first-call costs are not
    measured, as in W1. Then say ready, wait for the word, and run a worker
    (``App.worker``, what ``perdure worker`` runs) until stdin closes; report what it
    ran."""
    ns = build(url)
    async with ns.app.worker():
        handles = [
            await ns.app.start(ns.sequential, 1, id=f"warm-{os.getpid()}-{i}")
            for i in range(W6_WARM_UP)
        ]
        await asyncio.gather(*(h.result(timeout=60) for h in handles))
    limit = harness.w6_per_process(p)
    worker = ns.app.worker(**({"concurrency": limit} if limit is not None else {}))
    harness.WorkerGroup.ready()
    await asyncio.to_thread(harness.WorkerGroup.wait_for_go)
    cpu0 = time.process_time()
    await worker.start()
    await asyncio.to_thread(harness.WorkerGroup.wait_for_stop)
    harness.WorkerGroup.report(
        {
            "claimed": worker.stats["claimed"],
            "finished": worker.stats["finished"],
            "cpu_s": time.process_time() - cpu0,
        }
    )


# -- entry point ----------------------------------------------------------------------------


def durability(url: str) -> str:
    """The durability settings this process observes on the database it used."""
    if url.startswith("sqlite"):
        backend = perdure.App(url).backend
        return f"SQLite WAL, synchronous={backend.synchronous.upper()}"  # type: ignore[attr-defined]
    return harness.server_durability(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workload", choices=["w1", "w2", "w3", "w4", "w5", "w6", "w6-worker"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--params", default="{}", help="workload sizes, as JSON")
    parser.add_argument("--workdir", default=".", help="where W5 keeps its effect log")
    parser.add_argument(
        "--profile", help="W1-W4: write a profile to this file (.prof: cProfile, else pyinstrument)"
    )
    args = parser.parse_args()
    params = json.loads(args.params)
    if args.workload == "w6-worker":
        asyncio.run(w6_worker(args.url, params))
        return
    extra = {
        "engine": "perdure",
        "version": perdure.__version__,
        "durability": durability(args.url),
    }
    if args.workload == "w5":
        harness.emit(w5(args.url, params, Path(args.workdir)), **extra)
    if args.workload == "w6":
        harness.emit(w6(args.url, params), **extra)
    ns = build(args.url)
    workload = {"w1": w1, "w2": w2, "w3": w3, "w4": w4}[args.workload]
    if args.profile:
        figures = profiled(args.profile, lambda: asyncio.run(workload(ns, params)))
    else:
        figures = asyncio.run(workload(ns, params))
    harness.emit(figures, **extra)


def profiled(path: str, fn: Any) -> Any:
    if path.endswith(".prof"):
        import cProfile

        prof = cProfile.Profile()
        result = prof.runcall(fn)
        prof.dump_stats(path)
        return result
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    result = fn()
    profiler.stop()
    Path(path).write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    return result


if __name__ == "__main__":
    main()
