"""Queues and flow control, in one process on every backend (scenarios C1-C6): global,
per-key and per-worker concurrency, rate limits, priorities, deduplication keys, and
steps routed to a queue. The same limits across worker processes are proven in
``test_queues_processes.py``."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

import perdure
from perdure.records import RunStatus


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


class Spans:
    """When each step body ran, to check how many overlapped."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []
        self.running = 0
        self.most = 0

    async def hold(self, label: str, seconds: float) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        began = time.monotonic()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.running -= 1
            self.spans.append((label, began, time.monotonic()))

    def order(self) -> list[str]:
        return [label for label, _, _ in sorted(self.spans, key=lambda s: s[1])]


async def test_c1_a_queue_with_concurrency_one_runs_one_at_a_time(app: perdure.App) -> None:
    spans = Spans()
    app.queue("serial", concurrency=1)

    @app.step()
    async def work(n: int) -> int:
        await spans.hold(str(n), 0.02)
        return n

    @app.workflow(queue="serial")
    async def job(n: int) -> int:
        first = await work(n)
        await perdure.sleep(0.01)  # waiting still holds the queue's place
        return first + await work(n)

    async with app:
        handles = [await app.start(job, i) for i in range(6)]
        assert [await h.result(timeout=30) for h in handles] == [2 * i for i in range(6)]
    assert spans.most == 1
    info = await handles[0].info()
    assert info.queue == "serial" and info.admitted_at is not None


async def test_a_queued_run_says_what_it_waits_for(app: perdure.App) -> None:
    release = asyncio.Event()
    app.queue("serial", concurrency=1)

    @app.step()
    async def block() -> None:
        await release.wait()

    @app.workflow(queue="serial")
    async def job() -> str:
        await block()
        return "done"

    async with app:
        first = await app.start(job)
        second = await app.start(job)

        async def first_running() -> bool:
            return (await first.info()).admitted_at is not None

        await eventually(first_running)
        info = await second.info()
        assert info.status is RunStatus.PENDING and info.admitted_at is None
        assert info.waiting_for is not None and "queue 'serial'" in info.waiting_for
        release.set()
        assert await second.result(timeout=30) == "done"


async def test_c2_a_rate_limit_admits_at_most_l_per_period(app: perdure.App) -> None:
    app.queue("limited", rate=perdure.Rate(3, per=timedelta(seconds=0.5)))

    @app.workflow(queue="limited")
    async def ping(n: int) -> int:
        return n

    async with app:
        handles = [await app.start(ping, i) for i in range(8)]
        assert [await h.result(timeout=30) for h in handles] == list(range(8))
    admitted = sorted([(await h.info()).admitted_at.timestamp() for h in handles])  # type: ignore[union-attr]
    for i, at in enumerate(admitted):
        in_window = [t for t in admitted[i:] if t < at + 0.5]
        assert len(in_window) <= 3, admitted


async def test_c3_priorities_first_then_start_order(app: perdure.App) -> None:
    spans = Spans()
    app.queue("serial", concurrency=1)

    @app.step()
    async def work(label: str) -> None:
        await spans.hold(label, 0.001)

    @app.workflow(queue="serial")
    async def job(label: str) -> None:
        await work(label)

    plan = [("low-a", 0), ("high-a", 10), ("low-b", 0), ("mid", 5), ("high-b", 10)]
    # All started before any worker runs, so that the queue sees them all waiting.
    handles = [await app.start(job, label, priority=p) for label, p in plan]
    async with app:
        for h in handles:
            await h.result(timeout=30)
    assert spans.order() == ["high-a", "high-b", "mid", "low-a", "low-b"]


async def test_c4_a_dedup_key_refuses_a_second_start_until_the_first_ends(
    app: perdure.App,
) -> None:
    release = asyncio.Event()

    @app.step()
    async def block() -> None:
        await release.wait()

    @app.workflow()
    async def welcome(user: str) -> str:
        await block()
        return user

    async with app:
        first = await app.start(welcome, "ann", dedup_key="welcome:ann")
        with pytest.raises(perdure.RunDeduplicated) as refused:
            await app.start(welcome, "ann", dedup_key="welcome:ann")
        assert refused.value.holder == first.id
        other = await app.start(welcome, "bob", dedup_key="welcome:bob")
        release.set()
        assert await first.result(timeout=30) == "ann"
        again = await app.start(welcome, "ann", dedup_key="welcome:ann")
        assert await again.result(timeout=30) == "ann"
        assert await other.result(timeout=30) == "bob"


async def test_c5_per_key_concurrency_does_not_starve_cold_keys(app: perdure.App) -> None:
    spans = Spans()
    app.queue("accounts", per_key=1)

    @app.step()
    async def work(label: str) -> None:
        await spans.hold(label, 0.05)

    @app.workflow(queue="accounts")
    async def job(label: str) -> None:
        await work(label)

    hot = [await app.start(job, f"hot{i}", key="hot") for i in range(6)]
    cold = [await app.start(job, f"cold{i}", key=f"cold{i}") for i in range(3)]
    async with app:
        for h in hot + cold:
            await h.result(timeout=30)
    began = {label: start for label, start, _ in spans.spans}
    ended = {label: end for label, _, end in spans.spans}
    # Hot runs one at a time, in order; every cold run started before the second hot.
    hot_spans = sorted((began[f"hot{i}"], ended[f"hot{i}"]) for i in range(6))
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(hot_spans))
    assert all(began[f"cold{i}"] < began["hot1"] for i in range(3))
    keyed = [r.id async for r in app.list_runs(key="hot")]
    assert sorted(keyed) == sorted(h.id for h in hot)


async def test_per_worker_concurrency_caps_each_worker(
    make_app: Callable[..., perdure.App],
) -> None:
    app = make_app()
    spans = Spans()
    app.queue("heavy", per_worker=2)

    @app.step()
    async def work(n: int) -> None:
        await spans.hold(str(n), 0.05)

    @app.workflow(queue="heavy")
    async def job(n: int) -> int:
        await work(n)
        return n

    try:
        async with app.worker():
            handles = [await app.start(job, i) for i in range(8)]
            for h in handles:
                await h.result(timeout=30)
        assert spans.most == 2
    finally:
        await app.close()


async def test_c6_a_step_routed_to_a_queue_runs_only_where_that_queue_is_served(
    make_app: Callable[..., perdure.App],
) -> None:
    app = make_app()
    ran_on: list[str] = []

    @app.step(queue="gpu", retry=perdure.Retry(max_attempts=2, initial_interval=0.01))
    async def render(scene: str) -> str:
        ran_on.append(perdure.info().run_id)
        return scene.upper()

    @app.workflow()
    async def film(scene: str) -> str:
        frame = await render(scene)
        return f"{frame}!"

    try:
        async with app.worker(queues=["default"]):
            handle = await app.start(film, "sea")

            async def step_waiting() -> bool:
                return any([r async for r in app.list_runs(queue="gpu")])

            await eventually(step_waiting)
            [step_run] = [r async for r in app.list_runs(queue="gpu")]
            assert step_run.parent_id == handle.id and step_run.status is RunStatus.PENDING
            assert ran_on == []  # no worker serves "gpu" yet
            async with app.worker(queues=["gpu"]):
                assert await handle.result(timeout=30) == "SEA!"
        assert ran_on == [step_run.id]
    finally:
        await app.close()


async def test_a_routed_step_that_fails_raises_step_error_in_the_workflow(
    app: perdure.App,
) -> None:
    @app.step(queue="gpu")
    async def render(scene: str) -> str:
        raise ValueError(f"no such scene: {scene}")

    @app.workflow()
    async def film(scene: str) -> str:
        try:
            return await render(scene)
        except perdure.StepError as exc:
            return f"{exc.type}: {exc.error.message}"

    async with app:
        handle = await app.start(film, "moon")
        assert await handle.result(timeout=30) == "ValueError: no such scene: moon"


async def test_bad_queue_options_are_clear_errors(app: perdure.App) -> None:
    @app.workflow()
    async def job() -> None:
        return None

    with pytest.raises(perdure.RegistrationError, match=r"app\.queue"):
        await app.start(job, queue="nowhere")
    with pytest.raises(ValueError, match="priority"):
        await app.start(job, priority=10**9)
    with pytest.raises(ValueError, match="concurrency"):
        app.queue("bad", concurrency=0)
    with pytest.raises(ValueError, match="Rate"):
        perdure.Rate(0, per=1)
    app.queue("fixed", concurrency=2)
    with pytest.raises(perdure.RegistrationError, match="already declared"):
        app.queue("fixed", concurrency=3)
    with pytest.raises(perdure.RegistrationError, match="not declared"):
        app.worker(queues=["nowhere"])
    assert [r async for r in app.list_runs()] == []  # nothing was started
