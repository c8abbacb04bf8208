"""Replay and durable time: what a run recorded comes back unchanged on a fresh worker,
and a sleeping run holds no worker."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

import perdure


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


async def parked(app: perdure.App, run_id: str, journal_len: int = 0) -> bool:
    """The run has started, recorded at least ``journal_len`` entries, and is waiting
    with no worker holding it."""
    rec = await app.backend.get_run(run_id)
    return (
        rec is not None
        and rec.status is perdure.RunStatus.RUNNING
        and rec.owner is None
        and rec.journal_len >= journal_len
    )


@contextlib.asynccontextmanager
async def fresh_worker(
    app: perdure.App,
    backend_name: str,
    make_app: Callable[..., perdure.App],
    register: Callable[[perdure.App], Any],
) -> AsyncIterator[perdure.App]:
    """A worker that has never seen the run and keeps no live workflows, so it must
    rebuild the run from its journal. On SQLite it is a new App on the same file (as a
    restarted process would be); memory lives in one App, so that App gets a new worker."""
    if backend_name == "memory":
        async with app.worker(sticky_cache=False):
            yield app
    else:
        other = make_app(sticky_cache=False)
        register(other)
        async with other:
            yield other


async def test_recorded_step_value_comes_back_on_replay(
    app: perdure.App, backend_name: str, make_app: Callable[..., perdure.App]
) -> None:
    rolls: list[float] = []
    starts: list[str] = []

    def register(target: perdure.App) -> perdure.WorkflowFunction[[], list[Any]]:
        @target.step(name="roll")
        async def roll() -> float:
            value = random.random()
            rolls.append(value)
            return value

        @target.workflow(name="roll_then_wait")
        async def roll_then_wait() -> list[Any]:
            starts.append("start")
            value = await roll()
            message = await perdure.receive("go")
            return [value, message]

        return roll_then_wait

    wf = register(app)
    async with app:
        handle = await app.start(wf, id="roll-1")
        await eventually(lambda: parked(app, "roll-1", journal_len=1))
    assert len(rolls) == 1

    async with fresh_worker(app, backend_name, make_app, register) as second:
        again = second.handle("roll-1")
        assert await again.send("go", "now")
        assert await again.result(timeout=10) == [rolls[0], "now"]
    assert len(rolls) == 1  # the step body did not run again
    assert len(starts) == 2  # the workflow really was replayed
    assert await handle.status() is perdure.RunStatus.COMPLETED


async def test_side_effect_value_is_stable_across_replay(
    app: perdure.App, backend_name: str, make_app: Callable[..., perdure.App]
) -> None:
    produced: list[float] = []

    def draw() -> float:
        value = random.random()
        produced.append(value)
        return value

    def register(target: perdure.App) -> perdure.WorkflowFunction[[], list[float]]:
        @target.workflow(name="draw_then_wait")
        async def draw_then_wait() -> list[float]:
            value = perdure.side_effect(draw)
            await perdure.receive("go")
            return [value, perdure.side_effect(draw)]

        return draw_then_wait

    wf = register(app)
    async with app:
        await app.start(wf, id="draw-1")
        await eventually(lambda: parked(app, "draw-1"))
    assert len(produced) == 1

    async with fresh_worker(app, backend_name, make_app, register) as second:
        again = second.handle("draw-1")
        await again.send("go")
        result = await again.result(timeout=10)
    assert len(produced) == 2  # once before the restart, once for the second call after it
    assert result == produced


async def test_durable_sleep_completes_and_time_advances(app: perdure.App) -> None:
    @app.workflow()
    async def nap() -> list[datetime]:
        before = perdure.now()
        await perdure.sleep(0.3)
        return [before, perdure.now()]

    async with app:
        handle = await app.start(nap)
        before, after = await handle.result(timeout=10)
    assert after - before >= timedelta(seconds=0.3)


async def test_sleeping_run_releases_its_worker(app: perdure.App) -> None:
    @app.workflow()
    async def nap() -> str:
        await perdure.sleep(timedelta(seconds=0.6))
        return "rested"

    async with app:
        handle = await app.start(nap)
        # While it sleeps the run is running, yet no worker holds its lease.
        await eventually(lambda: parked(app, handle.id))
        info = await handle.info()
        assert info.status is perdure.RunStatus.RUNNING
        assert info.finished_at is None
        assert await handle.result(timeout=10) == "rested"


async def test_sleeping_run_leaves_room_for_other_runs(app: perdure.App) -> None:
    @app.workflow()
    async def hibernate() -> None:
        await perdure.sleep(30)

    @app.workflow()
    async def quick(x: int) -> int:
        return x + 1

    await app.open()
    # One run at a time: the second run can only go ahead if the sleeper let go.
    async with app.worker(concurrency=1):
        sleeper = await app.start(hibernate)
        await eventually(lambda: parked(app, sleeper.id))
        assert await (await app.start(quick, 1)).result(timeout=10) == 2
        assert await sleeper.status() is perdure.RunStatus.RUNNING
        assert await sleeper.cancel()
        with pytest.raises(perdure.RunCancelled):
            await sleeper.result(timeout=10)


async def test_sleep_survives_a_worker_restart(
    app: perdure.App, backend_name: str, make_app: Callable[..., perdure.App]
) -> None:
    woke: list[str] = []

    def register(target: perdure.App) -> perdure.WorkflowFunction[[], list[datetime]]:
        @target.step(name="wake_up")
        def wake_up() -> None:
            woke.append("woke")

        @target.workflow(name="long_nap")
        async def long_nap() -> list[datetime]:
            before = perdure.now()
            await perdure.sleep(0.5)
            await wake_up()
            return [before, perdure.now()]

        return long_nap

    wf = register(app)
    async with app:
        await app.start(wf, id="nap-1")
        await eventually(lambda: parked(app, "nap-1"))
    assert woke == []

    async with fresh_worker(app, backend_name, make_app, register) as second:
        before, after = await second.handle("nap-1").result(timeout=10)
    assert after - before >= timedelta(seconds=0.5)
    assert woke == ["woke"]
