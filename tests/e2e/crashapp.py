"""Workflows that the crash tests run in worker subprocesses.

A worker loads ``tests.e2e.crashapp:app`` (with ``--database``); the test process builds
its own App on the same database with :func:`build`, so both sides know the same
workflows. Every step body appends ``start`` (and ``end``) lines to a side-effect log
in ``$CRASHAPP_DIR``, flushed and fsynced, so executions can be counted after kills.
A step blocked on a gate waits until the file ``$CRASHAPP_DIR/<gate>`` exists.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import perdure

LOG_NAME = "steps.log"


def _dir() -> Path:
    return Path(os.environ["CRASHAPP_DIR"])


def log_line(event: str, extra: str = "") -> None:
    """Append one line for the running step; one write() with O_APPEND is atomic
    across processes, and fsync makes it survive the kill that follows."""
    info = perdure.info()
    assert isinstance(info, perdure.StepInfo)
    line = (
        f"{event} {info.run_id} {info.position} {info.attempt} {os.getpid()} "
        f"{time.time():.6f} {info.step} {extra}".rstrip()
        + "\n"
    )
    fd = os.open(_dir() / LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


async def _gate(name: str) -> None:
    path = _dir() / name
    while not path.exists():
        await asyncio.sleep(0.02)


def _pause(seed: int) -> float:
    """A step duration of 40..360 ms, different per call, so kills land mid-step."""
    return 0.04 + ((seed * 7919) % 9) * 0.04


def build(url: str) -> perdure.App:
    recoveries = int(os.environ.get("CRASHAPP_MAX_RECOVERIES", "10"))
    app = perdure.App(url, lease_ttl=1.0, poll_interval=0.05, max_recoveries=recoveries)

    # -- crash safety: 8 steps in 5 stages, with gathers and durable sleeps -----------

    @app.step()
    async def add(a: int, b: int) -> int:
        log_line("start")
        await asyncio.sleep(_pause(a + b))
        log_line("end")
        return a + b

    @app.step()
    def mul(a: int, b: int) -> int:  # a thread step: a kill must not care
        log_line("start")
        time.sleep(_pause(a * b))
        log_line("end")
        return a * b

    @app.workflow()
    async def crash_flow(seed: int) -> int:
        a = await add(seed, 1)
        await perdure.sleep(0.05)
        b, c = await asyncio.gather(mul(a, 2), mul(a, 3))
        d = await add(b, c)
        await perdure.sleep(0.05)
        e, f, g = await asyncio.gather(mul(d, 5), add(d, 7), mul(d, 11))
        return await add(e + f, g)

    # -- A1: A, B, C where C blocks on a gate ----------------------------------------

    @app.step()
    async def step_a(x: int) -> int:
        log_line("start")
        log_line("end")
        return x + 1

    @app.step()
    async def step_b(x: int) -> int:
        log_line("start")
        log_line("end")
        return x * 10

    @app.step()
    async def step_c(x: int, gate: str) -> int:
        log_line("start")
        await _gate(gate)
        log_line("end")
        return x + 5

    @app.workflow()
    async def abc(x: int, gate: str) -> int:
        return await step_c(await step_b(await step_a(x)), gate)

    # -- A6 / A10: durable waits ---------------------------------------------------------

    @app.step()
    def wall_clock() -> float:
        log_line("start")
        return time.time()

    @app.workflow()
    async def sleeper(seconds: float) -> dict[str, float]:
        before = perdure.now().timestamp()
        await perdure.sleep(seconds)
        return {"before": before, "after": perdure.now().timestamp(), "woke": await wall_clock()}

    @app.workflow()
    async def waiter(seconds: float) -> dict[str, object]:
        before = perdure.now().timestamp()
        message = await perdure.receive("never", timeout=seconds)
        return {
            "message": message,
            "before": before,
            "after": perdure.now().timestamp(),
            "woke": await wall_clock(),
        }

    # -- A19: a wide gather ------------------------------------------------------------

    @app.step()
    async def part(i: int) -> int:
        log_line("start")
        await asyncio.sleep(0.05 + (i % 20) * 0.05)
        log_line("end")
        return i * i

    @app.workflow()
    async def fan_out(n: int) -> int:
        return sum(await asyncio.gather(*(part(i) for i in range(n))))

    # -- A24: runs that hop between workers ----------------------------------------------

    @app.step()
    async def link(x: int, i: int) -> int:
        log_line("start")
        await asyncio.sleep(_pause(x + i))
        log_line("end")
        return x * 3 + i

    @app.workflow()
    async def chain(x: int, n: int) -> int:
        for i in range(n):
            x = await link(x, i)
            if i % 3 == 2:
                await perdure.sleep(0.02)
        return x

    @app.workflow()
    async def napper(naps: int) -> int:
        for _ in range(naps):
            await perdure.sleep(0.01)
        return naps

    # -- A25: a step that outlives its worker's lease -------------------------------------

    @app.step()
    def slow_pid(seconds: float) -> int:
        log_line("start")
        time.sleep(seconds)
        log_line("end")
        return os.getpid()

    @app.step()
    def pid() -> int:
        log_line("start")
        return os.getpid()

    @app.workflow()
    async def paused(seconds: float) -> list[int]:
        first = await slow_pid(seconds)
        return [first, await pid(), await pid()]

    # -- A4: one body, many starters ------------------------------------------------------

    @app.step()
    async def once(x: int) -> int:
        log_line("start")
        await asyncio.sleep(0.05)
        return x * 2

    @app.workflow()
    async def single(x: int) -> int:
        return await once(x)

    # -- A26 and shutdown ----------------------------------------------------------------

    @app.workflow()
    async def hour_sleeper() -> str:
        await perdure.sleep(3600)
        return "rested"

    @app.step()
    async def gated(gate: str) -> str:
        log_line("start")
        await _gate(gate)
        log_line("end")
        return "done"

    @app.workflow()
    async def two_gated(gate: str) -> list[str]:
        first = await gated(gate)
        return [first, await gated(gate)]

    @app.workflow()
    async def nap_then_gate(gate: str) -> str:
        await once(0)
        await perdure.sleep(1.0)
        return await gated(gate)

    # -- B5: a step that kills its worker until it is cured ------------------------------

    @app.step()
    def fatal(x: int) -> int:
        log_line("start")
        if not (_dir() / "cured").exists():
            os.kill(os.getpid(), signal.SIGKILL)
        return x + 1

    @app.workflow()
    async def poison(x: int) -> int:
        return await fatal(x)

    # -- queues (C1, C6, C8): a serial queue, a keyed queue, a step routed to "gpu" ---------

    app.queue("serial", concurrency=1)
    app.queue("keyed", concurrency=3, per_key=1)
    app.queue("gpu")

    @app.step()
    async def hold(seconds: float) -> int:
        log_line("start")
        await asyncio.sleep(seconds)
        log_line("end")
        return os.getpid()

    @app.workflow(queue="serial")
    async def one_at_a_time(seconds: float) -> int:
        return await hold(seconds)

    @app.workflow(queue="keyed")
    async def keyed(seconds: float) -> int:
        await hold(seconds)
        return await hold(seconds)

    @app.step(queue="gpu")
    async def render(scene: str) -> str:
        log_line("start")
        log_line("end")
        return f"{scene}@{os.getpid()}"

    @app.workflow()
    async def film(scene: str) -> str:
        frame = await render(scene)
        return f"{frame}/{await hold(0.0)}"

    return app


app = build("memory://")
