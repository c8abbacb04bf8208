"""Changed code meets recorded history: held on a mismatch, patched() for safe changes,
continue_as_new for long loops, and deterministic time and randomness."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import pytest

import perdure


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


async def parked(app: perdure.App, run_id: str, journal_len: int = 0) -> bool:
    """Started, at least ``journal_len`` entries recorded, and no worker holds it."""
    rec = await app.backend.get_run(run_id)
    return (
        rec is not None
        and rec.status is perdure.RunStatus.RUNNING
        and rec.owner is None
        and rec.journal_len >= journal_len
    )


def needs_a_database_that_outlives_the_app(backend_name: str) -> None:
    if backend_name == "memory":
        pytest.skip("memory:// lives in one App; a new deploy needs a database that outlives it")


@asynccontextmanager
async def deployed(
    make_app: Callable[..., perdure.App], register: Callable[[perdure.App], Any]
) -> AsyncIterator[perdure.App]:
    """A new process with new code on the same database, replaying everything it resumes."""
    new = make_app(sticky_cache=False)
    register(new)
    async with new:
        yield new


async def wait_for_status(
    handle: perdure.Handle[Any], status: perdure.RunStatus, timeout: float = 10.0
) -> None:
    async with asyncio.timeout(timeout):
        while (current := await handle.status()) is not status:
            assert not current.is_terminal, f"run ended {current.value}, expected {status.value}"
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("change", ["renamed", "reordered", "renamed-and-caught"])
async def test_changed_code_holds_the_run_with_a_non_determinism_error(
    app: perdure.App, backend_name: str, make_app: Callable[..., perdure.App], change: str
) -> None:
    needs_a_database_that_outlives_the_app(backend_name)
    ran: list[str] = []

    def register_v1(target: perdure.App) -> perdure.WorkflowFunction[[], str]:
        @target.step(name="reserve")
        async def reserve() -> str:
            ran.append("v1:reserve")
            return "reserved"

        @target.step(name="charge")
        async def charge() -> str:
            ran.append("v1:charge")
            return "charged"

        @target.workflow(name="order")
        async def order() -> str:
            first = await reserve()
            second = await charge()
            await perdure.receive("ship")
            return f"{first}+{second}"

        return order

    def register_v2(target: perdure.App) -> None:
        @target.step(name="reserve")
        async def reserve() -> str:
            ran.append("v2:reserve")
            return "reserved"

        @target.step(name="charge")
        async def charge() -> str:
            ran.append("v2:charge")
            return "charged"

        @target.step(name="hold_stock")
        async def hold_stock() -> str:
            ran.append("v2:hold_stock")
            return "held stock"

        @target.workflow(name="order")
        async def order() -> str:
            if change == "renamed":
                first = await hold_stock()
                second = await charge()
            elif change == "renamed-and-caught":
                # A broad handler around the changed call must not turn the mismatch
                # into an ordinary failure the code recovers from.
                try:
                    first = await hold_stock()
                except Exception:
                    first = "fallback"
                second = await charge()
            else:
                second = await charge()
                first = await reserve()
            await perdure.receive("ship")
            return f"v2 {first}+{second}"

    wf = register_v1(app)
    async with app:
        await app.start(wf, id="a17")
        await eventually(lambda: parked(app, "a17", journal_len=2))
    assert ran == ["v1:reserve", "v1:charge"]

    async with deployed(make_app, register_v2) as new:
        handle = new.handle("a17")
        await handle.send("ship")
        await wait_for_status(handle, perdure.RunStatus.HELD)
        info = await handle.info()
        assert info.error is not None
        message = info.error.message
        assert "NonDeterminismError" in info.error.type
        assert "position 0" in message
        if change.startswith("renamed"):
            assert "'reserve'" in message and "'hold_stock'" in message
        else:
            assert "'reserve'" in message and "'charge'" in message

        # Held means held: more deliveries do not feed it a result.
        await handle.send("ship")
        await asyncio.sleep(0.3)
        assert await handle.status() is perdure.RunStatus.HELD
        rec = await new.backend.get_run("a17")
        assert rec is not None and rec.result is None
        with pytest.raises(TimeoutError):
            await handle.result(timeout=0.2)

    assert ran == ["v1:reserve", "v1:charge"]  # no v2 step ran against v1 history


async def test_patched_keeps_old_runs_on_the_old_branch_and_new_runs_on_the_new(
    app: perdure.App, backend_name: str, make_app: Callable[..., perdure.App]
) -> None:
    needs_a_database_that_outlives_the_app(backend_name)
    ran: list[str] = []

    def register_v1(target: perdure.App) -> perdure.WorkflowFunction[[], str]:
        @target.step(name="email_receipt")
        async def email_receipt() -> str:
            ran.append("email")
            return "emailed"

        @target.workflow(name="receipt")
        async def receipt() -> str:
            await perdure.receive("paid")
            sent = await email_receipt()
            await perdure.receive("close")
            return f"old:{sent}"

        return receipt

    def register_v2(target: perdure.App) -> None:
        @target.step(name="email_receipt")
        async def email_receipt() -> str:
            ran.append("email")
            return "emailed"

        @target.step(name="text_receipt")
        async def text_receipt() -> str:
            ran.append("sms")
            return "texted"

        @target.workflow(name="receipt")
        async def receipt() -> str:
            await perdure.receive("paid")
            if perdure.patched("sms-receipts"):
                sent = await text_receipt()
                branch = "new"
            else:
                sent = await email_receipt()
                branch = "old"
            await perdure.receive("close")
            return f"{branch}:{sent}"

    wf = register_v1(app)
    async with app:
        before = await app.start(wf, id="a18-before")
        await before.send("paid")
        await eventually(lambda: parked(app, "a18-before", journal_len=2))
    assert ran == ["email"]

    async with deployed(make_app, register_v2) as new:
        old_run = new.handle("a18-before")
        await old_run.send("close")
        assert await old_run.result(timeout=10) == "old:emailed"
        assert ran == ["email"]  # replayed, not re-run

        new_run: perdure.Handle[str] = await new.start("receipt", id="a18-after")
        await new_run.send("paid")
        await eventually(lambda: parked(new, "a18-after", journal_len=2))
        await new_run.send("close")  # resumed by replay: the patch is remembered
        assert await new_run.result(timeout=10) == "new:texted"
    assert ran == ["email", "sms"]


async def test_continue_as_new_runs_a_long_loop_with_bounded_history(app: perdure.App) -> None:
    iterations = 2_000
    batch = 100
    positions: list[int] = []

    @app.step()
    async def add(total: int, i: int) -> int:
        info = perdure.info()
        assert isinstance(info, perdure.StepInfo)
        positions.append(info.position)
        return total + i

    @app.workflow()
    async def summing(start: int, total: int) -> dict[str, int]:
        i = start
        while i < iterations:
            total = await add(total, i)
            i += 1
            if i % batch == 0 and i < iterations:
                perdure.continue_as_new(i, total)
        workflow_info = perdure.info()
        assert isinstance(workflow_info, perdure.WorkflowInfo)
        return {"total": total, "generation": workflow_info.generation}

    async with app:
        handle = await app.start(summing, 0, 0, id="a20")
        result = await app.handle("a20").result(timeout=60)
        info = await handle.info()

    assert result == {"total": sum(range(iterations)), "generation": iterations // batch - 1}
    assert info.status is perdure.RunStatus.COMPLETED
    assert info.generation == iterations // batch - 1
    assert info.journal_len <= batch  # only the last generation's history is kept
    assert len(await app.backend.read_journal("a20")) <= batch
    assert len(positions) == iterations  # every step ran once
    assert max(positions) < batch  # positions restart with each generation
    runs = [r async for r in app.list_runs(workflow="summing")]
    assert [r.id for r in runs] == ["a20"]


async def test_each_generation_sleeps_its_full_time_and_its_clock_moves_forward(
    app: perdure.App,
) -> None:
    # The classic polling loop: wait, do something, continue as new.
    @app.workflow()
    async def poller(stamps: list[str]) -> list[str]:
        began = perdure.now()
        await perdure.sleep(0.3)
        stamps = [*stamps, began.isoformat(), perdure.now().isoformat()]
        if len(stamps) < 6:
            perdure.continue_as_new(stamps)
        return stamps

    async with app:
        handle = await app.start(poller, [])
        stamps = [datetime.fromisoformat(s) for s in await handle.result(timeout=10)]
        info = await handle.info()

    assert info.generation == 2
    assert info.finished_at is not None
    # Three sleeps of 0.3 s, one after the other.
    assert (info.finished_at - info.created_at).total_seconds() >= 0.9 - 0.01
    for earlier, later in itertools.pairwise(stamps):
        assert later >= earlier  # workflow time never goes back, across generations too
    for k in range(0, 6, 2):
        assert (stamps[k + 1] - stamps[k]).total_seconds() >= 0.3 - 0.01


async def test_unconsumed_messages_carry_over_to_the_next_generation(app: perdure.App) -> None:
    @app.workflow()
    async def drain(seen: list[str]) -> list[str]:
        message = await perdure.receive("item")
        seen = [*seen, message]
        if len(seen) < 5:
            perdure.continue_as_new(seen)
        return seen

    async with app:
        handle = await app.start(drain, [])
        for n in range(5):
            await handle.send("item", f"m{n}")
        assert await handle.result(timeout=10) == ["m0", "m1", "m2", "m3", "m4"]
        assert (await handle.info()).generation == 4


async def test_now_random_and_uuid4_are_identical_across_a_forced_replay(
    app: perdure.App, backend_name: str, make_app: Callable[..., perdure.App]
) -> None:
    seen: list[list[str]] = []

    def register(target: perdure.App) -> perdure.WorkflowFunction[[], list[list[str]]]:
        @target.step(name="remember")
        async def remember(values: list[str]) -> None:
            seen.append(values)

        @target.workflow(name="draw")
        async def draw() -> list[list[str]]:
            before = [str(perdure.now()), str(perdure.random()), str(perdure.uuid4())]
            await remember(before)
            await perdure.receive("go")
            after = [str(perdure.now()), str(perdure.random()), str(perdure.uuid4())]
            return [before, after]

        return draw

    wf = register(app)
    async with app:
        await app.start(wf, id="draws")
        await eventually(lambda: parked(app, "draws", journal_len=1))
    assert len(seen) == 1

    # A worker that never saw the run rebuilds it from the journal.
    if backend_name == "memory":
        async with app.worker(sticky_cache=False):
            await app.handle("draws").send("go")
            before, after = await app.handle("draws").result(timeout=10)
    else:
        async with deployed(make_app, register) as new:
            await new.handle("draws").send("go")
            before, after = await new.handle("draws").result(timeout=10)

    assert before == seen[0]
    assert after[1] != before[1] and after[2] != before[2]  # the sequence moved on
    assert datetime.fromisoformat(after[0]) >= datetime.fromisoformat(before[0])
