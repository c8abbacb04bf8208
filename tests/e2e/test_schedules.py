"""Cron schedules (scenarios G1, G2): one run per slot whatever the workers do,
backfill, overlap, pause/resume/delete/trigger, DST, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import perdure
from perdure.schedules import InvalidSchedule, ScheduleExists, ScheduleNotFound
from perdure.testing import TestApp

T0 = datetime(2026, 1, 5, 9, 0, 30, tzinfo=UTC)  # 30 s past a minute


class Cluster:
    """Several workers of one app on a virtual clock, moved a step at a time."""

    def __init__(self, app: perdure.App, clock: perdure.VirtualClock) -> None:
        self.app = app
        self.clock = clock
        self.workers: list[perdure.Worker] = []

    async def add(self) -> perdure.Worker:
        worker = self.app.worker(poll_interval=0.02, lease_ttl=3600.0 * 24)
        await worker.start()
        self.workers.append(worker)
        return worker

    async def remove(self, worker: perdure.Worker) -> None:
        self.workers.remove(worker)
        await worker.stop(timeout=5.0)

    async def close(self) -> None:
        for worker in list(self.workers):
            await self.remove(worker)

    async def settle(self) -> None:
        """Until no worker holds anything and nothing is due at the current time."""
        quiet = 0
        while quiet < 5:
            await asyncio.sleep(0.005)
            due = await self.app.backend.next_wake_at()
            runnable = due is not None and due <= self.clock.now()
            if all(w.is_idle() for w in self.workers) and not runnable:
                quiet += 1
            else:
                quiet = 0
                for worker in self.workers:
                    worker.poke()

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        for worker in self.workers:
            worker.time_moved()
        await self.settle()


async def runs_of(app: perdure.App, workflow: str) -> list[str]:
    return sorted([run.id async for run in app.list_runs(workflow=workflow)])


def minute_ids(schedule_id: str, first: datetime, count: int) -> list[str]:
    return [
        f"{schedule_id}@{(first + timedelta(minutes=n)).strftime('%Y-%m-%dT%H:%M:%SZ')}"
        for n in range(count)
    ]


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(2000):
        if await check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never became true")


def build(app: perdure.App) -> None:
    @app.workflow()
    async def tick(scheduled_at: datetime) -> str:
        return scheduled_at.isoformat()

    @app.workflow()
    async def slow(label: str) -> str:
        await perdure.sleep(150)  # spans two and a half slots of a minute
        return label


async def test_g1_one_run_per_slot_with_three_workers_and_one_down(url: str, sticky: bool) -> None:
    clock = perdure.VirtualClock(T0.timestamp())
    # Without the sticky cache, every wake-up of the scheduler replays its journal.
    app = perdure.App(url, clock=clock, poll_interval=0.02, sticky_cache=sticky)
    build(app)
    cluster = Cluster(app, clock)
    try:
        workers = [await cluster.add() for _ in range(3)]
        made = await app.schedules.create("tick", cron="* * * * *", id="every-minute")
        assert (made.id, made.cron, made.tz, made.overlap) == (
            "every-minute",
            "* * * * *",
            "UTC",
            "allow",
        )
        await cluster.settle()
        info = await app.schedules.get("every-minute")
        assert info.next_at == datetime(2026, 1, 5, 9, 1, tzinfo=UTC)
        for minute in range(12):
            if minute == 3:
                await cluster.remove(workers[0])  # down for 5 minutes
            if minute == 8:
                await cluster.add()
            await cluster.advance(60)
        ids = minute_ids("every-minute", datetime(2026, 1, 5, 9, 1, tzinfo=UTC), 12)
        assert await runs_of(app, "tick") == ids
        for run_id in ids:
            result = await app.handle(run_id).result(timeout=10)
            assert run_id.endswith(datetime.fromisoformat(result).strftime("@%Y-%m-%dT%H:%M:%SZ"))
        info = await app.schedules.get("every-minute")
        assert info.last_run == ids[-1]
        assert info.status == "running"
    finally:
        await cluster.close()
        await app.close()


async def test_g1_missed_slots_fire_once_then_backfill_starts_only_what_is_missing(
    url: str,
) -> None:
    clock = perdure.VirtualClock(T0.timestamp())
    app = perdure.App(url, clock=clock, poll_interval=0.02)
    build(app)
    cluster = Cluster(app, clock)
    try:
        worker = await cluster.add()
        await app.schedules.create("tick", cron="* * * * *", id="m", catch_up=1)
        await cluster.settle()
        await cluster.remove(worker)  # every worker down for ten minutes
        clock.advance(600)
        await cluster.add()
        await cluster.settle()
        # The latest missed slot and one more (catch_up=1); the rest wait for backfill.
        first = datetime(2026, 1, 5, 9, 1, tzinfo=UTC)
        assert await runs_of(app, "tick") == minute_ids("m", first, 10)[-2:]
        started = await app.schedules.backfill("m", first, first + timedelta(minutes=9))
        assert started == minute_ids("m", first, 10)
        assert await runs_of(app, "tick") == minute_ids("m", first, 10)
        before = {i: (await app.get_run(i)).created_at for i in started}
        again = await app.schedules.backfill("m", first, first + timedelta(minutes=9))
        assert again == started  # the same runs: nothing new started
        assert {i: (await app.get_run(i)).created_at for i in again} == before
        await cluster.advance(60)
        assert len(await runs_of(app, "tick")) == 11
    finally:
        await cluster.close()
        await app.close()


async def test_overlap_skip_skips_a_slot_while_the_previous_run_is_active(url: str) -> None:
    clock = perdure.VirtualClock(T0.timestamp())
    app = perdure.App(url, clock=clock, poll_interval=0.02)
    build(app)
    cluster = Cluster(app, clock)
    try:
        await cluster.add()
        await app.schedules.create("slow", cron="@every 1m", id="s", args=["x"], overlap="skip")
        await app.schedules.create("slow", cron="@every 1m", id="a", args=["y"])
        await cluster.settle()
        for _ in range(4):
            await cluster.advance(60)
        first = datetime(2026, 1, 5, 9, 1, tzinfo=UTC)
        every = minute_ids("s", first, 4)
        # 9:01 runs till 9:03:30, so 9:02 and 9:03 are skipped; 9:04 runs.
        assert await runs_of(app, "slow") == sorted(
            [every[0], every[3], *minute_ids("a", first, 4)]
        )
        assert (await app.schedules.get("s")).skipped == 2
        assert (await app.schedules.get("a")).skipped == 0
    finally:
        await cluster.close()
        await app.close()


async def test_pause_resume_trigger_delete(url: str) -> None:
    clock = perdure.VirtualClock(T0.timestamp())
    app = perdure.App(url, clock=clock, poll_interval=0.02)
    build(app)
    cluster = Cluster(app, clock)
    try:
        await cluster.add()
        await app.schedules.create("tick", cron="*/2 * * * *", id="p")
        await cluster.settle()
        assert await app.schedules.pause("p") is True
        assert await app.schedules.pause("p") is False
        assert (await app.schedules.get("p")).paused
        await cluster.advance(600)
        assert await runs_of(app, "tick") == []
        handle = await app.schedules.trigger("p")  # a paused schedule can still be run
        assert handle.id == "p@2026-01-05T09:10:30Z"
        assert (await handle.result(timeout=10)).startswith("2026-01-05T09:10:30")
        assert (await app.schedules.trigger("p")).id == handle.id  # same time: same run
        assert await app.schedules.resume("p") is True
        await cluster.settle()
        # On resume, only the latest missed slot runs (catch_up=0).
        assert await runs_of(app, "tick") == ["p@2026-01-05T09:10:00Z", handle.id]
        assert [s.id for s in await app.schedules.list()] == ["p"]
        await app.schedules.delete("p")
        assert await app.schedules.list() == []
        with pytest.raises(ScheduleNotFound):
            await app.schedules.get("p")
        with pytest.raises(ScheduleNotFound):
            await app.schedules.pause("p")
        await cluster.advance(600)
        assert len(await runs_of(app, "tick")) == 2  # runs are kept; nothing new
    finally:
        await cluster.close()
        await app.close()


async def test_dst_slots_follow_the_time_zone() -> None:
    app = perdure.App("memory://")
    build(app)
    # New York springs forward on 2026-03-08 at 02:00 (EST -5 to EDT -4).
    start = datetime(2026, 3, 6, 20, 0, tzinfo=UTC)
    async with TestApp(app, start=start) as env:
        await env.app.schedules.create("tick", cron="0 9 * * *", id="ny", tz="America/New_York")
        await env.app.schedules.create("tick", cron="30 2 * * *", id="gap", tz="America/New_York")
        await env.idle()
        await env.advance(timedelta(days=4))
        ids = await runs_of(env.app, "tick")
    assert [i for i in ids if i.startswith("ny@")] == [
        "ny@2026-03-07T14:00:00Z",  # 9:00 EST
        "ny@2026-03-08T13:00:00Z",  # 9:00 EDT
        "ny@2026-03-09T13:00:00Z",
        "ny@2026-03-10T13:00:00Z",
    ]
    assert [i for i in ids if i.startswith("gap@")] == [
        "gap@2026-03-07T07:30:00Z",  # 2:30 EST
        "gap@2026-03-08T07:00:00Z",  # 2:30 does not exist that day: 3:00 EDT
        "gap@2026-03-09T06:30:00Z",  # 2:30 EDT
        "gap@2026-03-10T06:30:00Z",
    ]


async def test_fall_back_fires_fixed_hours_once_and_wildcard_hours_in_both_copies() -> None:
    app = perdure.App("memory://")
    build(app)
    # New York falls back on 2026-11-01 at 02:00 EDT to 01:00 EST: 1:xx happens twice.
    start = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)
    async with TestApp(app, start=start) as env:
        ny = "America/New_York"
        await env.app.schedules.create("tick", cron="30 1 * * *", id="daily", tz=ny)
        await env.app.schedules.create("tick", cron="@hourly", id="hourly", tz=ny)
        await env.idle()
        await env.advance(timedelta(days=2))
        daily = [i for i in await runs_of(env.app, "tick") if i.startswith("daily@")]
        hourly = [i for i in await runs_of(env.app, "tick") if i.startswith("hourly@")]
    assert daily == ["daily@2026-11-01T05:30:00Z", "daily@2026-11-02T06:30:00Z"]
    assert len(hourly) == 48  # every real hour, the repeated one twice
    assert "hourly@2026-11-01T05:00:00Z" in hourly and "hourly@2026-11-01T06:00:00Z" in hourly


async def test_two_apps_on_one_database_declaring_one_schedule_run_each_slot_once(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    clock = perdure.VirtualClock(T0.timestamp())
    apps, clusters = [], []
    for _ in range(2):  # two deployments of the same code, each with two workers
        app = perdure.App(url, clock=clock, poll_interval=0.02)
        build(app)
        app.schedule("tick", cron="* * * * *", id="shared", catch_up=3)
        cluster = Cluster(app, clock)
        for _ in range(2):
            await cluster.add()
        await app.schedules.ensure_declared()
        apps.append(app)
        clusters.append(cluster)
    try:
        for _ in range(5):
            clock.advance(60)
            for cluster in clusters:
                for worker in cluster.workers:
                    worker.time_moved()
            for cluster in clusters:
                await cluster.settle()
        assert [s.id for s in await apps[1].schedules.list()] == ["shared"]
        expected = minute_ids("shared", datetime(2026, 1, 5, 9, 1, tzinfo=UTC), 5)
        await eventually(lambda: _ids_are(apps[0], expected))
    finally:
        for cluster in clusters:
            await cluster.close()
        for app in apps:
            await app.close()


async def _ids_are(app: perdure.App, expected: list[str]) -> bool:
    return await runs_of(app, "tick") == expected


async def test_g2_restart_on_the_same_sqlite_file_fires_no_slot_twice(
    tmp_path: Path, sticky: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'sched.db'}"
    clock = perdure.VirtualClock(T0.timestamp())
    for round_ in range(3):
        app = perdure.App(url, clock=clock, poll_interval=0.02, sticky_cache=sticky)
        build(app)
        app.schedule("tick", cron="@every 1m", id="r", catch_up=5)
        cluster = Cluster(app, clock)
        await cluster.add()
        await app.schedules.ensure_declared()
        await cluster.settle()
        for _ in range(3):
            await cluster.advance(60)
        assert len(await runs_of(app, "tick")) == 3 * (round_ + 1)
        await cluster.close()
        await app.close()
    app = perdure.App(url, clock=clock)
    build(app)
    ids = await runs_of(app, "tick")
    assert ids == minute_ids("r", datetime(2026, 1, 5, 9, 1, tzinfo=UTC), 9)
    await app.close()


async def test_a_changed_spec_in_code_updates_the_running_schedule(url: str) -> None:
    clock = perdure.VirtualClock(T0.timestamp())
    app = perdure.App(url, clock=clock, poll_interval=0.02)
    build(app)
    app.schedule("tick", cron="@every 1h", id="c")
    cluster = Cluster(app, clock)
    try:
        await cluster.add()
        await app.schedules.ensure_declared()
        await cluster.settle()
        assert (await app.schedules.get("c")).cron == "@every 1h"
        app.schedules.declared["c"] = app.schedules.spec("tick", cron="@every 1m", id="c")
        await app.schedules.ensure_declared()
        await cluster.settle()
        info = await app.schedules.get("c")
        assert info.cron == "@every 1m"
        assert info.next_at == datetime(2026, 1, 5, 9, 1, tzinfo=UTC)
        await cluster.advance(60)
        assert await runs_of(app, "tick") == ["c@2026-01-05T09:01:00Z"]
    finally:
        await cluster.close()
        await app.close()


async def test_bad_input_is_refused_and_nothing_is_stored() -> None:
    app = perdure.App("memory://")
    build(app)

    @app.workflow()
    async def greet(name: str) -> str:
        return name

    bad: list[tuple[dict[str, object], type[Exception], str]] = [
        ({"cron": "61 * * * *"}, InvalidSchedule, "bad cron"),
        ({"cron": "* * * *"}, InvalidSchedule, "5 fields"),
        ({"cron": "* * * * * *"}, InvalidSchedule, "5 fields"),
        ({"cron": "@every 10"}, InvalidSchedule, "@every <positive integer><unit>"),
        ({"cron": "@every 0m"}, InvalidSchedule, "@every"),
        ({"cron": "@every 1.5h"}, InvalidSchedule, "@every"),
        ({"cron": "@reboot"}, InvalidSchedule, "unknown descriptor"),
        ({"cron": "0 0 30 2 *"}, InvalidSchedule, "never fires"),
        ({"cron": "0 9 * * mon-fry"}, InvalidSchedule, "names \\(jan, mon\\)"),
        ({"cron": "@daily", "tz": "Mars/Olympus"}, InvalidSchedule, "unknown time zone"),
        ({"cron": "@daily", "overlap": "queue"}, InvalidSchedule, "overlap"),
        ({"cron": "@daily", "catch_up": -1}, InvalidSchedule, "catch_up"),
        ({"cron": "@daily", "id": "a@b"}, InvalidSchedule, "'@'"),
        ({"cron": "@daily", "args": []}, perdure.InvalidArguments, "name"),
        ({"cron": "@daily", "args": [3]}, perdure.InvalidArguments, "name"),
    ]
    async with app:
        for options, error, words in bad:
            with pytest.raises(error, match=words):
                await app.schedules.create("greet", **options)  # type: ignore[arg-type]
        with pytest.raises(perdure.RegistrationError, match="no workflow named"):
            await app.schedules.create("nope", cron="@daily")
        assert await app.schedules.list() == []
        made = await app.schedules.create("greet", cron="0 9 * * mon-fri", args=["ada"])
        assert made.id == "greet"
        with pytest.raises(perdure.RunExists):
            await app.schedules.create("greet", cron="@hourly", args=["ada"])
        with pytest.raises(InvalidSchedule, match="swap"):
            await app.schedules.backfill("greet", T0, T0 - timedelta(days=1))
        assert len(await app.schedules.list()) == 1
        assert await runs_of(app, "greet") == []


async def test_the_scheduler_continues_as_new_and_keeps_every_slot() -> None:
    app = perdure.App("memory://")
    build(app)
    async with TestApp(app, start=T0) as env:
        await env.app.schedules.create("tick", cron="@every 1m", id="long")
        await env.idle()
        await env.advance(timedelta(minutes=250))
        ids = await runs_of(env.app, "tick")
        scheduler = await env.app.get_run("schedule:long")
        info = await env.app.schedules.get("long")
    assert ids == minute_ids("long", datetime(2026, 1, 5, 9, 1, tzinfo=UTC), 250)
    assert scheduler.generation == 2  # every 100 wake-ups, a fresh journal
    assert scheduler.journal_len < 400
    assert info.last_run == ids[-1]
    assert info.next_at == datetime(2026, 1, 5, 13, 11, tzinfo=UTC)


async def test_a_worker_without_the_workflow_skips_the_slot_and_says_why(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mixed.db'}"
    clock = perdure.VirtualClock(T0.timestamp())
    owner = perdure.App(url, clock=clock)
    build(owner)
    await owner.schedules.create("tick", cron="@every 1m", id="orphan")
    other = perdure.App(url, clock=clock, poll_interval=0.02)  # another app's code: no tick
    cluster = Cluster(other, clock)
    try:
        await cluster.add()
        await cluster.settle()
        await cluster.advance(60)
        info = await owner.schedules.get("orphan")
        assert info.status == "running" and info.skipped == 1
        assert info.last_error is not None
        assert "2026-01-05T09:01:00Z: no workflow named 'tick'" in info.last_error
        assert await runs_of(owner, "tick") == []
    finally:
        await cluster.close()
        await other.close()
        await owner.close()


async def test_a_declared_schedule_whose_scheduler_ended_is_started_again(url: str) -> None:
    clock = perdure.VirtualClock(T0.timestamp())
    app = perdure.App(url, clock=clock, poll_interval=0.02)
    build(app)
    app.schedule("tick", cron="@every 1m", id="back")
    cluster = Cluster(app, clock)
    try:
        await cluster.add()
        await app.schedules.ensure_declared()
        await cluster.settle()
        await app.terminate("schedule:back", "by mistake")
        assert (await app.schedules.get("back")).status == "terminated"
        await app.schedules.create("tick", cron="@every 1h", id="other")
        with pytest.raises(ScheduleExists, match="pass replace=True to update it"):
            await app.schedules.create("tick", cron="@every 1m", id="other")
        # A schedule whose scheduler ended can be created again under its id.
        await app.terminate("schedule:other")
        await app.schedules.create("tick", cron="@every 1d", id="other")
        assert (await app.schedules.get("other")).cron == "@every 1d"
        await app.schedules.ensure_declared()  # a worker start does this
        await cluster.settle()
        assert (await app.schedules.get("back")).status == "running"
        await cluster.advance(60)
        assert await runs_of(app, "tick") == ["back@2026-01-05T09:01:00Z"]
    finally:
        await cluster.close()
        await app.close()
