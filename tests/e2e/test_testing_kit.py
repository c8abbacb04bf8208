"""The testing kit: virtual time, step mocks, stuck runs, the copyable example."""

from __future__ import annotations

import enum
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import perdure
from perdure.testing import Stuck, TestApp

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def build() -> tuple[perdure.App, perdure.WorkflowFunction[[int], list[float]]]:
    app = perdure.App("memory://")

    @app.workflow()
    async def naps(days: int) -> list[float]:
        start = perdure.now()
        seen = []
        for _ in range(days):
            await perdure.sleep(timedelta(days=1))
            seen.append((perdure.now() - start).total_seconds() / 86400)
        return seen

    return app, naps


async def test_a_week_of_sleeping_passes_at_once() -> None:
    app, naps = build()
    async with TestApp(app) as env:
        before = env.now()
        handle = await env.start(naps, 7)
        assert await env.result(handle) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
        assert env.now() - before == timedelta(days=7)


async def test_advance_fires_only_what_is_due() -> None:
    app, naps = build()
    async with TestApp(app) as env:
        handle = await env.start(naps, 3)
        await env.advance(timedelta(days=1, hours=12))
        timers = [e for e in await env.journal(handle) if e.kind.value == "timer"]
        assert len(timers) == 1
        assert await handle.status() is perdure.RunStatus.RUNNING
        await env.advance(timedelta(days=2))
        assert await handle.result() == [1.0, 2.0, 3.0]


async def test_a_run_waiting_for_a_message_nobody_sends_is_reported_stuck() -> None:
    app = perdure.App("memory://")

    @app.workflow()
    async def waits() -> object:
        return await perdure.receive("go")

    async with TestApp(app) as env:
        handle = await env.start(waits)
        with pytest.raises(Stuck, match="message"):
            await env.result(handle)
        await env.send(handle, "go", 5)
        assert await env.result(handle) == 5


async def test_timeouts_and_workflow_deadlines_fire_in_virtual_time() -> None:
    app = perdure.App("memory://")

    @app.workflow(timeout=timedelta(hours=1))
    async def slow() -> None:
        await perdure.sleep(timedelta(days=1))

    async with TestApp(app) as env:
        handle = await env.start(slow)
        await env.wait_for_status(handle, "cancelled")
        with pytest.raises(perdure.RunCancelled, match="timed out"):
            await handle.result()


async def test_mocks_are_undone_when_the_environment_closes() -> None:
    app = perdure.App("memory://")

    @app.step()
    def real() -> str:
        return "real"

    @app.workflow()
    async def wf() -> str:
        return await real()

    async with TestApp(app) as env:
        env.mock(real, lambda: "fake")
        assert await env.result(await env.start(wf)) == "fake"
    async with TestApp(app) as env:
        assert await env.result(await env.start(wf)) == "real"
    with pytest.raises(TypeError, match=r"app\.step"):
        TestApp(app).mock(wf, lambda: None)  # type: ignore[arg-type]


async def test_the_app_under_test_is_left_alone(tmp_path: Path) -> None:
    app = perdure.App(f"sqlite:///{tmp_path / 'real.db'}")

    @app.workflow()
    async def wf() -> int:
        return 1

    async with TestApp(app) as env:
        assert await env.result(await env.start(wf)) == 1
    assert not (tmp_path / "real.db").exists()


def test_the_documented_example_test_file_passes(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(EXAMPLES / "test_reminders.py"),
        ],
        cwd=tmp_path,
        env={**__import__("os").environ, "PYTHONPATH": str(EXAMPLES)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


class Order(enum.Enum):
    PLACED = "placed"
    PAID = "paid"
    EXPIRED = "expired"


async def test_state_machines_and_dags_run_on_the_test_store_in_virtual_time() -> None:
    """A week-long status timeout and a callback, tested in milliseconds; a DAG too.
    The app they were declared on is untouched, and they point back to it after."""
    app = perdure.App("memory://")
    orders = app.state_machine("orders", Order, record=dict)

    async def pay(r: perdure.Record[dict[str, int]], cents: int) -> Order:
        r.data["paid"] = cents
        return Order.PAID

    orders.callback(Order.PLACED, pay, to=[Order.PAID])
    orders.timeout(Order.PLACED, after=timedelta(days=7), to=Order.EXPIRED)
    shipping = app.dag("shipping")

    @shipping.task()
    async def weigh() -> int:
        return 3

    @shipping.task(after="weigh")
    async def label(weigh: int) -> str:
        return f"{weigh} kg"

    async with TestApp(app) as env:
        unpaid = await orders.trigger("o-1", {})
        paid = await orders.trigger("o-2", {})
        await env.advance(timedelta(days=6))
        await orders.callback_for("o-2", Order.PLACED, 500)
        await env.advance(timedelta(days=1))
        assert await env.result(paid) == {"paid": 500}
        assert await env.result(unpaid) == {}
        assert (await orders.get("o-1")).status is Order.EXPIRED
        label_run = await env.start(shipping)
        assert await env.result(label_run) == "3 kg"
    assert orders.app is app and shipping.app is app
    assert [run async for run in app.list_runs()] == []


async def test_runs_on_queues_with_limits_are_let_in_without_waiting_for_a_poll() -> None:
    """A queue with limits admits runs in turn; the test store does so at once."""
    app = perdure.App("memory://")
    app.queue("one-at-a-time", concurrency=1)

    @app.workflow(queue="one-at-a-time")
    async def nap(n: int) -> int:
        await perdure.sleep(timedelta(hours=n))
        return n

    async with TestApp(app) as env:
        before = env.now()
        handles = [await env.start(nap, n) for n in (1, 2, 3)]
        assert [await env.result(h) for h in handles] == [1, 2, 3]
        # One after the other: 1 + 2 + 3 hours of virtual time, not 3 side by side.
        assert env.now() - before == timedelta(hours=6)


async def test_schedules_declared_in_code_fire_on_the_test_store_in_virtual_time() -> None:
    """A schedule declared with app.schedule exists as soon as the environment opens, and
    each slot runs once as the clock moves; the app's own store is not touched."""
    app = perdure.App("memory://")

    @app.workflow()
    async def report(region: str, scheduled_at: datetime) -> str:
        return f"{region} {scheduled_at:%H:%M}"

    app.schedule(report, cron="@every 1h", args=["eu"], id="hourly")
    start = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    async with TestApp(app, start=start) as env:
        assert [s.id for s in await env.app.schedules.list()] == ["hourly"]
        await env.advance(timedelta(hours=3))
        runs = [r async for r in env.app.list_runs(workflow="report")]
        assert sorted([await env.app.handle(r.id).result() for r in runs]) == [
            "eu 09:00",
            "eu 10:00",
            "eu 11:00",
        ]
    assert [run async for run in app.list_runs()] == []
