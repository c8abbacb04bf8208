"""Cancelling runs, by request and by their timeout: the whole tree stops, cleanup runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

import perdure


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a plain condition until it holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_cancelling_a_parent_cancels_its_children_and_runs_its_cleanup(
    app: perdure.App,
) -> None:
    ran: list[str] = []

    @app.step()
    async def after(who: str) -> None:
        ran.append(f"after:{who}")

    @app.step()
    async def cleanup(who: str) -> None:
        ran.append(f"cleanup:{who}")

    @app.workflow()
    async def grandchild() -> str:
        perdure.set_event("waiting", True)
        await perdure.receive("go")
        await after("grandchild")
        return "grandchild done"

    @app.workflow()
    async def child() -> str:
        await perdure.start_child(grandchild, id="a12-grandchild")
        perdure.set_event("waiting", True)
        await perdure.receive("go")
        await after("child")
        return "child done"

    @app.workflow()
    async def parent() -> str:
        await perdure.start_child(child, id="a12-child")
        try:
            perdure.set_event("waiting", True)
            await perdure.receive("go")
        except asyncio.CancelledError:
            await cleanup("parent")
            raise
        await after("parent")
        return "parent done"

    async with app:
        handle = await app.start(parent, id="a12-parent")
        tree = [handle, app.handle("a12-child"), app.handle("a12-grandchild")]
        for run in tree:
            assert await run.get_event("waiting", timeout=10) is True

        assert await handle.cancel("customer changed their mind")

        with pytest.raises(perdure.RunCancelled) as caught:
            await handle.result(timeout=10)
        assert "customer changed their mind" in caught.value.error.message
        for run in tree[1:]:
            with pytest.raises(perdure.RunCancelled):
                await run.result(timeout=10)
        for run in tree:
            assert await run.status() is perdure.RunStatus.CANCELLED

        # A message after the fact wakes nothing: the runs are over.
        for run in tree:
            await run.send("go", "too late")
        await asyncio.sleep(0.2)
        for run in tree:
            assert await run.status() is perdure.RunStatus.CANCELLED

    assert ran == ["cleanup:parent"]


async def test_cancel_lets_the_step_in_flight_finish_and_starts_nothing_new(
    app: perdure.App,
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    ran: list[str] = []

    @app.step()
    async def slow() -> str:
        ran.append("slow:start")
        started.set()
        try:
            await asyncio.wait_for(release.wait(), 10)
        except asyncio.CancelledError:
            ran.append("slow:interrupted")
            raise
        ran.append("slow:end")
        return "slow result"

    @app.step()
    async def next_one() -> None:
        ran.append("next")

    @app.workflow()
    async def pipeline() -> str:
        await slow()
        await next_one()
        return "done"

    async with app:
        handle = await app.start(pipeline)
        await asyncio.wait_for(started.wait(), 10)
        assert await handle.cancel("stop it")
        release.set()
        with pytest.raises(perdure.RunCancelled) as caught:
            await handle.result(timeout=10)
        assert "stop it" in caught.value.error.message
        await until(lambda: "slow:end" in ran)
        await asyncio.sleep(0.2)  # room for anything wrongly scheduled to start
        assert await handle.status() is perdure.RunStatus.CANCELLED

    assert ran == ["slow:start", "slow:end"]


async def test_cancel_stops_a_step_waiting_to_be_retried(app: perdure.App) -> None:
    attempts: list[int] = []

    @app.step(retry=perdure.Retry(max_attempts=5, initial_interval=0.3))
    async def flaky() -> None:
        attempts.append(1)
        raise ConnectionError("down")

    @app.workflow()
    async def keeps_trying() -> None:
        await flaky()

    async with app:
        handle = await app.start(keeps_trying)
        await until(lambda: len(attempts) >= 1)
        assert await handle.cancel()
        with pytest.raises(perdure.RunCancelled):
            await handle.result(timeout=10)
        await asyncio.sleep(0.5)  # past the retry's due time
    assert len(attempts) == 1


async def test_cleanup_may_wait_durably_before_the_run_ends_cancelled(app: perdure.App) -> None:
    ran: list[str] = []

    @app.step()
    async def undo() -> None:
        ran.append("undo")

    @app.workflow()
    async def reversible() -> str:
        try:
            perdure.set_event("waiting", True)
            await perdure.receive("go")
        except asyncio.CancelledError:
            # A durable wait inside the handler: without the cache the run is replayed
            # through its cancellation before the cleanup step.
            await perdure.sleep(0.1)
            await undo()
            raise
        return "finished"

    async with app:
        handle = await app.start(reversible)
        assert await handle.get_event("waiting", timeout=10) is True
        assert await handle.cancel("roll back")
        with pytest.raises(perdure.RunCancelled) as caught:
            await handle.result(timeout=10)
    assert "roll back" in caught.value.error.message
    assert ran == ["undo"]


async def test_cancelling_a_run_that_has_not_started_ends_it(app: perdure.App) -> None:
    ran: list[str] = []

    @app.workflow()
    async def later() -> None:
        ran.append("later")

    async with app:
        handle = await app.start(later, delay=60)
        assert await handle.cancel("not needed")
        with pytest.raises(perdure.RunCancelled) as caught:
            await handle.result(timeout=10)
        assert "not needed" in caught.value.error.message
    assert ran == []


async def test_cancel_returns_false_for_a_finished_run(app: perdure.App) -> None:
    @app.workflow()
    async def quick() -> int:
        return 1

    async with app:
        handle = await app.start(quick)
        assert await handle.result(timeout=10) == 1
        assert await handle.cancel() is False
        assert await handle.status() is perdure.RunStatus.COMPLETED
        assert await handle.result(timeout=10) == 1


async def test_workflow_timeout_cancels_the_run_and_its_blocking_child(app: perdure.App) -> None:
    ran: list[str] = []

    @app.step()
    async def after(who: str) -> None:
        ran.append(who)

    @app.workflow()
    async def blocker() -> str:
        perdure.set_event("waiting", True)
        await perdure.receive("never")
        await after("child")
        return "unblocked"

    @app.workflow(timeout=1)
    async def impatient() -> str:
        child = await perdure.start_child(blocker, id="a13-child")
        perdure.set_event("started", child.id)
        result: str = await child
        await after("parent")
        return result

    async with app:
        handle = await app.start(impatient, id="a13-parent")
        child_handle = app.handle(await handle.get_event("started", timeout=10))
        assert await child_handle.get_event("waiting", timeout=10) is True

        with pytest.raises(perdure.RunCancelled) as caught:
            await handle.result(timeout=10)
        assert "timed out" in caught.value.error.message
        with pytest.raises(perdure.RunCancelled):
            await child_handle.result(timeout=10)

        parent_info = await handle.info()
        assert parent_info.status is perdure.RunStatus.CANCELLED
        assert parent_info.started_at is not None and parent_info.finished_at is not None
        # Cancelled at the deadline, not before it.
        assert (parent_info.finished_at - parent_info.created_at).total_seconds() >= 1.0 - 0.01
        assert await child_handle.status() is perdure.RunStatus.CANCELLED
    assert ran == []


async def test_timeout_given_at_start_cancels_the_run(app: perdure.App) -> None:
    @app.workflow()
    async def waits() -> None:
        await perdure.receive("never")

    async with app:
        handle = await app.start(waits, timeout=0.5)
        with pytest.raises(perdure.RunCancelled) as caught:
            await handle.result(timeout=10)
        assert "timed out" in caught.value.error.message
        info = await handle.info()
        assert info.finished_at is not None
        assert (info.finished_at - info.created_at).total_seconds() >= 0.5 - 0.01


async def test_timeout_message_names_the_timeout_the_run_was_started_with(
    app: perdure.App,
) -> None:
    # The declared timeout is a default; a run started with its own timeout must say
    # which one expired, or the operator chases the wrong setting.
    @app.workflow(timeout=3600)
    async def waits() -> None:
        await perdure.receive("never")

    async with app:
        handle = await app.start(waits, timeout=0.5)
        with pytest.raises(perdure.RunCancelled) as caught:
            await handle.result(timeout=10)
    message = caught.value.error.message
    assert "timed out" in message
    assert "3600" not in message
    assert "0.5" in message


async def test_workflow_deadline_survives_a_worker_restart(
    app: perdure.App, backend_name: str, make_app: Callable[..., perdure.App]
) -> None:
    if backend_name == "memory":
        pytest.skip("memory:// does not outlive its App, so there is nothing to restart on")

    def register(target: perdure.App) -> perdure.WorkflowFunction[[], None]:
        @target.workflow(name="deadline_wait", timeout=0.5)
        async def deadline_wait() -> None:
            perdure.set_event("waiting", True)
            await perdure.receive("never")

        return deadline_wait

    wf = register(app)
    async with app:
        handle = await app.start(wf, id="a13-restart")
        assert await handle.get_event("waiting", timeout=10) is True

    # The worker is gone when the deadline passes; a new one must still enforce it.
    await asyncio.sleep(0.6)
    second = make_app(sticky_cache=False)
    register(second)
    async with second:
        again = second.handle("a13-restart")
        with pytest.raises(perdure.RunCancelled) as caught:
            await again.result(timeout=10)
        assert "timed out" in caught.value.error.message


async def test_cancel_reaches_a_run_that_keeps_continuing_as_new(app: perdure.App) -> None:
    generations = 150

    @app.step()
    async def tick(i: int) -> int:
        await asyncio.sleep(0.01)
        return i + 1

    @app.workflow()
    async def ticker(i: int) -> int:
        i = await tick(i)
        if i < generations:
            perdure.continue_as_new(i)
        return i

    async with app:
        handle = await app.start(ticker, 0)
        await eventually(lambda: _generation_at_least(handle, 3))
        assert await handle.cancel("enough")
        # Without the cancel the loop would complete after all its generations.
        with pytest.raises(perdure.RunCancelled) as caught:
            await handle.result(timeout=10)
        assert "enough" in caught.value.error.message
        assert (await handle.info()).generation < generations - 1


async def _generation_at_least(handle: perdure.Handle[int], generation: int) -> bool:
    return (await handle.info()).generation >= generation


async def test_workflow_timeout_still_applies_after_continue_as_new(app: perdure.App) -> None:
    # Generation 0 is short; generation 1 outlasts the timeout whether it is counted from
    # the first start or from the continuation, so either way the run must be cancelled.
    @app.workflow(timeout=0.5)
    async def stages(stage: int) -> str:
        if stage == 0:
            await perdure.sleep(0.1)
            perdure.continue_as_new(1)
        await perdure.sleep(2)
        return "outlived its timeout"

    async with app:
        handle = await app.start(stages, 0)
        with pytest.raises(perdure.RunCancelled) as caught:
            await handle.result(timeout=10)
    assert "timed out" in caught.value.error.message
