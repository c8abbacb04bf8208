"""Plain asyncio inside workflows: the same answer live and on replay, timers durable,
and anything non-deterministic refused with a pointer to steps.

Each workflow ends with a short durable sleep: without the cache the run is then
resumed by replaying everything before it, which must reproduce the live run exactly
(a mismatch would hold the run instead of completing it).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import pytest

import perdure


async def settle() -> None:
    """A durable pause that makes a cache-less worker replay what came before."""
    await perdure.sleep(0.01)


async def test_wait_first_completed_a_sleep_beats_a_slow_step(app: perdure.App) -> None:
    release = asyncio.Event()
    ran: list[str] = []

    @app.step()
    async def slow() -> str:
        ran.append("slow")
        await asyncio.wait_for(release.wait(), 10)
        return "slow"

    @app.workflow()
    async def race() -> list[str]:
        step = asyncio.ensure_future(slow())
        nap = asyncio.ensure_future(perdure.sleep(0.1))
        done, pending = await asyncio.wait({step, nap}, return_when=asyncio.FIRST_COMPLETED)
        winner = "sleep" if nap in done else "step"
        for task in pending:
            task.cancel()
        await settle()
        return [winner, str(len(done)), str(len(pending))]

    try:
        async with app:
            handle = await app.start(race)
            assert await handle.result(timeout=10) == ["sleep", "1", "1"]
    finally:
        release.set()
    assert ran == ["slow"]


async def test_wait_first_completed_a_step_beats_a_long_sleep(app: perdure.App) -> None:
    @app.step()
    async def quick() -> str:
        return "quick"

    @app.workflow()
    async def race() -> list[str]:
        step = asyncio.ensure_future(quick())
        nap = asyncio.ensure_future(perdure.sleep(30))
        done, pending = await asyncio.wait({step, nap}, return_when=asyncio.FIRST_COMPLETED)
        assert step in done and nap in pending
        nap.cancel()
        await settle()
        return [step.result(), str(nap.cancelled())]

    async with app:
        handle = await app.start(race)
        assert await handle.result(timeout=10) == ["quick", "True"]


async def test_wait_with_a_timeout_leaves_a_slow_step_pending(app: perdure.App) -> None:
    release = asyncio.Event()

    @app.step()
    async def slow() -> str:
        await asyncio.wait_for(release.wait(), 10)
        return "slow"

    @app.workflow()
    async def poll() -> list[int]:
        done, pending = await asyncio.wait({asyncio.ensure_future(slow())}, timeout=0.1)
        await settle()
        return [len(done), len(pending)]

    try:
        async with app:
            handle = await app.start(poll)
            assert await handle.result(timeout=10) == [0, 1]
    finally:
        release.set()


async def test_wait_for_around_a_slow_step_times_out_inside_the_workflow(
    app: perdure.App,
) -> None:
    release = asyncio.Event()

    @app.step()
    async def slow() -> str:
        await asyncio.wait_for(release.wait(), 10)
        return "slow"

    @app.step()
    async def fallback() -> str:
        return "fallback"

    @app.workflow()
    async def bounded() -> str:
        result: str
        try:
            result = await asyncio.wait_for(slow(), 0.1)
        except TimeoutError:
            result = await fallback()
        await settle()
        return result

    try:
        async with app:
            handle = await app.start(bounded)
            assert await handle.result(timeout=10) == "fallback"
    finally:
        release.set()


async def test_wait_for_returns_a_step_that_finishes_in_time(app: perdure.App) -> None:
    @app.step()
    async def quick(x: int) -> int:
        return x * 3

    @app.workflow()
    async def bounded() -> int:
        result: int = await asyncio.wait_for(quick(14), 30)
        await settle()
        return result

    async with app:
        handle = await app.start(bounded)
        assert await handle.result(timeout=10) == 42


async def test_asyncio_timeout_block_around_a_slow_step(app: perdure.App) -> None:
    release = asyncio.Event()

    @app.step()
    async def slow() -> str:
        await asyncio.wait_for(release.wait(), 10)
        return "slow"

    @app.workflow()
    async def bounded() -> list[str]:
        events = []
        try:
            async with asyncio.timeout(0.1):
                events.append(await slow())
        except TimeoutError:
            events.append("timed out")
        async with asyncio.timeout(30):
            events.append(str(await perdure.receive("x", timeout=0.05)))
        await settle()
        return events

    try:
        async with app:
            handle = await app.start(bounded)
            assert await handle.result(timeout=10) == ["timed out", "None"]
    finally:
        release.set()


async def test_task_group_of_steps(app: perdure.App) -> None:
    @app.step()
    async def square(x: int) -> int:
        await asyncio.sleep(0.01 * (5 - x))  # finish in reverse order
        return x * x

    @app.workflow()
    async def squares() -> list[int]:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(square(i)) for i in range(5)]
        await settle()
        return [t.result() for t in tasks]

    async with app:
        handle = await app.start(squares)
        assert await handle.result(timeout=10) == [0, 1, 4, 9, 16]


async def test_create_task_of_a_step(app: perdure.App) -> None:
    @app.step()
    async def square(x: int) -> int:
        return x * x

    @app.workflow()
    async def squares() -> int:
        task = asyncio.create_task(square(7))
        await settle()
        result: int = await task
        return result

    async with app:
        handle = await app.start(squares)
        assert await handle.result(timeout=10) == 49


async def test_task_group_of_coroutines_that_call_steps(app: perdure.App) -> None:
    @app.step()
    async def square(x: int) -> int:
        await asyncio.sleep(0.01 * (5 - x))
        return x * x

    @app.workflow()
    async def squares() -> list[int]:
        async def one(x: int) -> int:
            await perdure.sleep(0.01 * x)
            result: int = await square(x)
            return result

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(i)) for i in range(5)]
        await settle()
        return [t.result() for t in tasks]

    async with app:
        handle = await app.start(squares)
        assert await handle.result(timeout=10) == [0, 1, 4, 9, 16]


async def test_task_group_failure_is_an_exception_group_the_workflow_can_handle(
    app: perdure.App,
) -> None:
    @app.step()
    async def check(x: int) -> int:
        if x == 2:
            raise ValueError("two is not allowed")
        return x

    @app.workflow()
    async def checks() -> list[str]:
        async def one(x: int) -> int:
            result: int = await check(x)
            return result

        try:
            async with asyncio.TaskGroup() as tg:
                for i in range(4):
                    tg.create_task(one(i))
        except* perdure.StepError as group:
            failures = [str(e.error) for e in group.exceptions if isinstance(e, perdure.StepError)]
        await settle()
        return failures

    async with app:
        handle = await app.start(checks)
        assert await handle.result(timeout=10) == ["ValueError: two is not allowed"]


async def test_gather_with_return_exceptions_keeps_the_failure_in_place(app: perdure.App) -> None:
    @app.step()
    async def parse(text: str) -> int:
        return int(text)

    @app.workflow()
    async def parse_all(texts: list[str]) -> list[Any]:
        results = await asyncio.gather(*(parse(t) for t in texts), return_exceptions=True)
        await settle()
        return [
            r if not isinstance(r, BaseException) else f"{type(r).__name__}: {r.error.type}"  # type: ignore[attr-defined]
            for r in results
        ]

    async with app:
        handle = await app.start(parse_all, ["1", "x", "3"])
        assert await handle.result(timeout=10) == [1, "StepError: ValueError", 3]


async def test_as_completed_yields_steps_in_the_order_they_finished(app: perdure.App) -> None:
    @app.step()
    async def delayed(x: int) -> int:
        await asyncio.sleep(0.03 * (3 - x))
        return x

    @app.workflow()
    async def arrivals() -> list[int]:
        order = [
            await next_done for next_done in asyncio.as_completed([delayed(i) for i in range(4)])
        ]
        await settle()
        return order

    async with app:
        handle = await app.start(arrivals)
        assert await handle.result(timeout=10) == [3, 2, 1, 0]


async def test_a_step_abandoned_by_a_timeout_may_finish_later_without_harm(
    app: perdure.App,
) -> None:
    finished = asyncio.Event()
    ran: list[str] = []

    @app.step()
    async def slow() -> str:
        await asyncio.sleep(0.3)
        ran.append("slow")
        finished.set()
        return "slow"

    @app.workflow()
    async def impatient() -> list[str]:
        try:
            result = await asyncio.wait_for(slow(), 0.05)
        except TimeoutError:
            result = "gave up"
        message = await perdure.receive("go")
        return [result, message]

    async with app:
        handle = await app.start(impatient)
        await asyncio.wait_for(finished.wait(), 10)
        await asyncio.sleep(0.1)  # let its late result be recorded
        await handle.send("go", "go")  # without the cache, resumed by replay
        assert await handle.result(timeout=10) == ["gave up", "go"]
    assert ran == ["slow"]


async def test_durable_timers_interleave_deterministically(app: perdure.App) -> None:
    @app.workflow()
    async def interleave() -> list[str]:
        order: list[str] = []

        async def worker(name: str, delays: list[float]) -> None:
            for d in delays:
                await asyncio.sleep(d)
                order.append(f"{name}{d}")

        # Each sleep's due time is taken when the sleep is recorded, so the
        # margins are wide enough for a slow resume not to reorder them.
        await asyncio.gather(worker("a", [0.2, 0.2]), worker("b", [0.1, 0.6]))
        await settle()
        return order

    async with app:
        handle = await app.start(interleave)
        assert await handle.result(timeout=10) == ["b0.1", "a0.2", "a0.2", "b0.6"]


async def _open_connection() -> None:
    await asyncio.open_connection("127.0.0.1", 9)


async def _to_thread() -> None:
    await asyncio.to_thread(sum, [1, 2])


async def _subprocess() -> None:
    await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")


async def _getaddrinfo() -> None:
    await asyncio.get_running_loop().getaddrinfo("localhost", 80)


@pytest.mark.parametrize(
    ("attempt", "call"),
    [
        (_open_connection, "create_connection"),
        (_to_thread, "run_in_executor"),
        (_subprocess, "subprocess_exec"),
        (_getaddrinfo, "getaddrinfo"),
    ],
    ids=["open_connection", "to_thread", "subprocess", "getaddrinfo"],
)
async def test_io_in_workflow_code_fails_the_run_pointing_to_steps(
    app: perdure.App, attempt: Any, call: str
) -> None:
    @app.workflow()
    async def sneaky() -> None:
        await attempt()

    async with app:
        handle = await app.start(sneaky)
        with pytest.raises(perdure.RunFailed) as caught:
            await handle.result(timeout=10)
    error = caught.value.error
    assert error.type.endswith("WorkflowSandboxError")
    assert call in error.message
    assert "step" in error.message


async def test_timers_that_came_due_while_no_worker_ran_fire_in_deadline_order(
    app: perdure.App, backend_name: str, make_app: Callable[..., perdure.App]
) -> None:
    def register(target: perdure.App) -> perdure.WorkflowFunction[[], list[str]]:
        @target.workflow(name="deadlines")
        async def deadlines() -> list[str]:
            order: list[str] = []

            async def after(name: str, delay: float) -> None:
                await asyncio.sleep(delay)
                order.append(name)

            # The longer timer is created first; the shorter one must still fire first.
            try:
                async with asyncio.timeout(0.6):
                    await asyncio.gather(after("late", 0.4), after("early", 0.2))
                order.append("in time")
            except TimeoutError:
                order.append("timed out")
            return order

        return deadlines

    wf = register(app)
    async with app:
        handle = await app.start(wf, id="deadlines")
        await eventually_parked(app, "deadlines")
    await asyncio.sleep(0.8)  # every timer comes due while no worker runs
    if backend_name == "memory":
        async with app.worker(sticky_cache=False):
            result = await handle.result(timeout=10)
    else:
        second = make_app(sticky_cache=False)
        register(second)
        async with second:
            result = await second.handle("deadlines").result(timeout=10)
    assert result == ["early", "late", "in time"]


async def test_a_message_sent_before_the_receive_deadline_wins_after_downtime(
    app: perdure.App, backend_name: str, make_app: Callable[..., perdure.App]
) -> None:
    def register(target: perdure.App) -> perdure.WorkflowFunction[[], Any]:
        @target.workflow(name="await_reply")
        async def await_reply() -> Any:
            return await perdure.receive("reply", timeout=0.5)

        return await_reply

    wf = register(app)
    async with app:
        handle = await app.start(wf, id="reply")
        await eventually_parked(app, "reply")
    # The reply arrives in time, but no worker runs until after the deadline.
    await handle.send("reply", "yes")
    await asyncio.sleep(0.7)
    if backend_name == "memory":
        async with app.worker(sticky_cache=False):
            result = await handle.result(timeout=10)
    else:
        second = make_app(sticky_cache=False)
        register(second)
        async with second:
            result = await second.handle("reply").result(timeout=10)
    assert result == "yes"


async def eventually_parked(app: perdure.App, run_id: str, timeout: float = 10.0) -> None:
    """Wait until the run has started and is waiting with no worker holding it."""
    async with asyncio.timeout(timeout):
        while True:
            rec = await app.backend.get_run(run_id)
            if rec is not None and rec.status is perdure.RunStatus.RUNNING and rec.owner is None:
                return
            await asyncio.sleep(0.01)
