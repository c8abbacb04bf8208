"""Operating runs (scenarios B1-B6): retry from the failed step, fork, pause, resume,
cancel then resume, terminate, dead letter, retention and id policies."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

import perdure
from perdure.records import EntryKind, JournalEntry, RunStatus

FAST = perdure.Retry(max_attempts=2, initial_interval=0.01)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


async def status_is(handle: perdure.Handle[object], status: RunStatus) -> None:
    async def reached() -> bool:
        return await handle.status() is status

    await eventually(reached)


def controls(journal: list[JournalEntry]) -> list[tuple[str, str, str]]:
    out = []
    for entry in journal:
        if entry.kind is EntryKind.CONTROL:
            note = json.loads(entry.payload or b"{}")
            out.append((entry.name, note["by"], note["reason"]))
    return out


def five_steps(app: perdure.App, calls: Counter[str], obstacle: dict[str, bool]) -> object:
    @app.step(retry=FAST)
    async def work(n: int) -> int:
        calls[f"step{n}"] += 1
        if n == 3 and obstacle["present"]:
            raise RuntimeError("the warehouse is closed")
        return n * 10

    @app.workflow()
    async def five() -> int:
        total = 0
        for n in range(1, 6):
            total += await work(n)
        return total

    return five


async def test_b1_retry_runs_from_the_failed_step_with_fresh_attempts(app: perdure.App) -> None:
    calls: Counter[str] = Counter()
    obstacle = {"present": True}
    five = five_steps(app, calls, obstacle)
    async with app:
        handle = await app.start(five, id="b1")  # type: ignore[arg-type]
        with pytest.raises(perdure.RunFailed, match="warehouse is closed"):
            await handle.result(timeout=10)
        assert calls == {"step1": 1, "step2": 1, "step3": 2}

        obstacle["present"] = False
        await app.retry("b1", "warehouse reopened", by="ops@example")
        assert await handle.result(timeout=10) == 150
        # Steps 1-2 were not run again; step 3 got a new attempt, then 4 and 5 ran once.
        assert calls == {"step1": 1, "step2": 1, "step3": 3, "step4": 1, "step5": 1}
        journal = await app.backend.read_journal("b1")
        assert controls(journal) == [("retry", "ops@example", "warehouse reopened")]
        assert [e.seq for e in journal] == list(range(len(journal)))
        assert (await handle.info()).error is None


async def test_b1_a_retried_step_gets_its_whole_attempt_budget_again(app: perdure.App) -> None:
    failures = {"left": 3}
    tries: list[int] = []

    @app.step(retry=FAST)
    async def flaky() -> str:
        tries.append(perdure.info().attempt)
        if failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("not yet")
        return "ok"

    @app.workflow()
    async def once() -> str:
        return await flaky()

    async with app:
        handle = await app.start(once, id="b1-budget")
        with pytest.raises(perdure.RunFailed):
            await handle.result(timeout=10)
        await handle.retry()
        # Two more attempts are allowed: the third failure, then success.
        assert await handle.result(timeout=10) == "ok"
        assert tries == [1, 2, 3, 4]  # attempt numbers keep counting


async def test_a_retry_keeps_a_step_that_finished_after_its_sibling_failed(
    app: perdure.App,
) -> None:
    calls: Counter[str] = Counter()
    broken = True

    @app.step()
    async def fragile() -> str:
        calls["fragile"] += 1
        if broken:
            raise perdure.NonRetryableError("down")
        return "up"

    @app.step()
    async def slow() -> str:
        calls["slow"] += 1
        handle = app.handle(perdure.info().run_id)
        async with asyncio.timeout(30):  # finishes only once its sibling's failure is recorded
            while not any(s.status == "failed" for s in await handle.steps()):
                await asyncio.sleep(0.01)
        return "done"

    @app.workflow()
    async def side_by_side() -> list[str]:
        tasks = [asyncio.ensure_future(fragile()), asyncio.ensure_future(slow())]
        await asyncio.wait(tasks)  # both, whatever happens to either
        return [t.result() for t in tasks]

    async with app:
        handle = await app.start(side_by_side)
        with pytest.raises(perdure.RunFailed, match="down"):
            await handle.result(timeout=30)
        assert [s.name for s in await handle.steps()] == ["fragile", "slow"]
        broken = False
        assert await (await app.retry(handle.id)).result(timeout=30) == ["up", "done"]
    assert calls == {"fragile": 2, "slow": 1}


async def test_retry_refuses_runs_that_have_not_ended_or_completed(app: perdure.App) -> None:
    @app.workflow()
    async def waits() -> str:
        return str(await perdure.receive("go"))

    async with app:
        waiting = await app.start(waits, id="retry-active")
        await status_is(waiting, RunStatus.RUNNING)
        with pytest.raises(perdure.RunStateError, match="it is running"):
            await app.retry("retry-active")
        await waiting.send("go", "done")
        assert await waiting.result(timeout=10) == "done"
        with pytest.raises(perdure.RunStateError, match="fork it"):
            await app.retry("retry-active")
        with pytest.raises(perdure.RunNotFound):
            await app.retry("no-such-run")


async def test_b2_fork_reuses_steps_before_the_fork_point(app: perdure.App) -> None:
    calls: Counter[str] = Counter()
    five = five_steps(app, calls, {"present": False})
    async with app:
        original = await app.start(five, id="b2")  # type: ignore[arg-type]
        assert await original.result(timeout=10) == 150
        before = await app.backend.read_journal("b2")

        fork = await app.fork("b2", from_step=2, id="b2-fork", by="analyst")
        assert fork.id == "b2-fork"
        assert await fork.result(timeout=10) == 150
        # Positions 0 and 1 (steps 1 and 2) were reused; 3-5 ran again.
        assert calls == {"step1": 1, "step2": 1, "step3": 2, "step4": 2, "step5": 2}
        assert await app.backend.read_journal("b2") == before  # the original is untouched
        assert (await original.status()) is RunStatus.COMPLETED
        note = controls(await app.backend.read_journal("b2-fork"))
        assert note == [("fork", "analyst", "forked from 'b2' at position 2")]

        with pytest.raises(perdure.RunStateError, match="choose another id"):
            await app.fork("b2", from_step=0, id="b2-fork")
        with pytest.raises(ValueError, match="from_step"):
            await app.fork("b2", from_step=-1)


async def test_b3_cancel_then_resume_continues_from_the_last_recorded_step(
    app: perdure.App,
) -> None:
    calls: Counter[str] = Counter()

    @app.step()
    async def record(n: int) -> int:
        calls[f"step{n}"] += 1
        return n

    @app.workflow()
    async def long() -> int:
        first = await record(1)
        perdure.set_event("waiting", True)
        await perdure.receive("go")
        return first + await record(2)

    async with app:
        handle = await app.start(long, id="b3")
        assert await handle.get_event("waiting", timeout=10) is True
        await handle.cancel("wrong customer")
        with pytest.raises(perdure.RunCancelled):
            await handle.result(timeout=10)

        assert await handle.resume("right customer after all", by="support")
        await status_is(handle, RunStatus.RUNNING)
        await handle.send("go")
        assert await handle.result(timeout=10) == 3
        assert calls == {"step1": 1, "step2": 1}
        journal = await app.backend.read_journal("b3")
        assert controls(journal) == [("resume", "support", "right customer after all")]
        assert not any(e.kind is EntryKind.CANCEL for e in journal)
        # Cancelling again works: the first cancellation is history.
        assert await handle.cancel("twice") is False  # it has completed


async def test_b4_a_paused_run_starts_no_step_until_resumed(app: perdure.App) -> None:
    started: list[int] = []
    gate = asyncio.Event()

    @app.step()
    async def slow(n: int) -> int:
        started.append(n)
        if n == 1:
            await gate.wait()
        return n

    @app.workflow()
    async def steps() -> int:
        return await slow(1) + await slow(2)

    async with app:
        handle = await app.start(steps, id="b4")
        await eventually(lambda: asyncio.sleep(0, result=started == [1]))
        assert await handle.pause("inventory check", by="ops")
        assert await handle.pause("again") is False
        assert await handle.status() is RunStatus.PAUSED
        gate.set()  # step 1 finishes while paused: recorded, but step 2 does not start

        async def recorded() -> bool:
            journal = await app.backend.read_journal("b4")
            return any(e.kind is EntryKind.STEP for e in journal)

        await eventually(recorded)
        await asyncio.sleep(0.3)
        assert started == [1]
        assert await handle.status() is RunStatus.PAUSED

        assert await handle.resume("checked", by="ops")
        assert await handle.result(timeout=10) == 3
        assert started == [1, 2]
        journal = await app.backend.read_journal("b4")
        assert controls(journal) == [
            ("pause", "ops", "inventory check"),
            ("resume", "ops", "checked"),
        ]


async def test_cancelling_a_paused_run_runs_its_cleanup(app: perdure.App) -> None:
    cleaned: list[str] = []

    @app.step()
    async def cleanup() -> None:
        cleaned.append("done")

    @app.workflow()
    async def waits() -> None:
        try:
            perdure.set_event("waiting", True)
            await perdure.receive("never")
        except asyncio.CancelledError:
            await cleanup()
            raise

    async with app:
        handle = await app.start(waits, id="pause-cancel")
        assert await handle.get_event("waiting", timeout=10) is True
        await handle.pause()
        await handle.cancel("not needed")
        with pytest.raises(perdure.RunCancelled):
            await handle.result(timeout=10)
        assert cleaned == ["done"]


async def test_terminate_ends_a_run_and_its_children_without_cleanup(app: perdure.App) -> None:
    cleaned: list[str] = []

    @app.step()
    async def cleanup(who: str) -> None:
        cleaned.append(who)

    @app.workflow()
    async def child() -> None:
        try:
            perdure.set_event("waiting", True)
            await perdure.receive("never")
        except asyncio.CancelledError:
            await cleanup("child")
            raise

    @app.workflow()
    async def parent() -> None:
        try:
            kid = await perdure.start_child(child, id="term-child")
            perdure.set_event("waiting", True)
            await kid.result()
        except asyncio.CancelledError:
            await cleanup("parent")
            raise

    async with app:
        handle = await app.start(parent, id="term")
        assert await handle.get_event("waiting", timeout=10) is True
        assert await app.handle("term-child").get_event("waiting", timeout=10) is True
        assert await handle.terminate("stuck on a bad deploy", by="oncall")
        with pytest.raises(perdure.RunTerminated, match="terminated by oncall"):
            await handle.result(timeout=10)
        with pytest.raises(perdure.RunTerminated):
            await app.handle("term-child").result(timeout=10)
        await asyncio.sleep(0.2)
        assert cleaned == []
        assert await handle.terminate() is False
        journal = await app.backend.read_journal("term")
        assert controls(journal)[-1] == ("terminate", "oncall", "stuck on a bad deploy")

        # A terminated run can be brought back: it goes on from where it stopped.
        await app.retry("term-child")
        await app.handle("term-child").send("never")
        await app.handle("term-child").result(timeout=10)


async def test_b6_retention_deletes_only_ended_runs_older_than_the_cutoff(
    make_app: Callable[..., perdure.App],
) -> None:
    clock = perdure.VirtualClock()
    app = make_app(clock=clock)

    @app.workflow()
    async def quick(n: int) -> int:
        return n

    @app.workflow()
    async def sleeper() -> None:
        await perdure.sleep(3600 * 24 * 30)

    async with app:
        done = [await app.start(quick, n, id=f"old-{n}") for n in range(3)]
        for handle in done:
            await handle.result(timeout=10)
        asleep = await app.start(sleeper, id="sleeper")
        await status_is(asleep, RunStatus.RUNNING)
        pending = await app.start(quick, 9, id="later", delay=3600 * 24 * 60)
        clock.advance(3600 * 24 * 8)
        fresh = await app.start(quick, 7, id="fresh")
        await fresh.result(timeout=10)

        assert await app.purge(older_than=3600 * 24 * 7) == 3
        for handle in done:
            with pytest.raises(perdure.RunNotFound):
                await handle.status()
            assert await app.backend.read_journal(handle.id) == []
        assert await asleep.status() is RunStatus.RUNNING
        assert await pending.status() is RunStatus.PENDING
        assert await fresh.status() is RunStatus.COMPLETED
        assert await app.purge(older_than=3600 * 24 * 7) == 0
    await app.close()


async def test_id_policies(app: perdure.App) -> None:
    @app.workflow()
    async def echo(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x

    async with app:
        first = await app.start(echo, 1, id="ids")
        assert await first.result(timeout=10) == 1
        # use_existing (the default): the same run, its result.
        again = await app.start(echo, 2, id="ids")
        assert await again.result(timeout=10) == 1
        with pytest.raises(perdure.RunExists, match="'ids' already exists"):
            await app.start(echo, 2, id="ids", id_policy="reject")
        # replace_failed keeps a completed run...
        kept = await app.start(echo, 3, id="ids", id_policy=perdure.IdPolicy.REPLACE_FAILED)
        assert await kept.result(timeout=10) == 1
        # ...replace_ended starts anew.
        new = await app.start(echo, -1, id="ids", id_policy="replace_ended")
        with pytest.raises(perdure.RunFailed, match="negative"):
            await new.result(timeout=10)
        # A failed run is replaced by replace_failed.
        fixed = await app.start(echo, 4, id="ids", id_policy="replace_failed")
        assert await fixed.result(timeout=10) == 4
        with pytest.raises(ValueError):
            await app.start(echo, 5, id="ids", id_policy="sometimes")


async def test_b7_listing_filters_and_pages_stably_over_a_thousand_runs(url: str) -> None:
    clock = perdure.VirtualClock()
    app = perdure.App(url, clock=clock)

    @app.workflow()
    async def billing(n: int) -> int:
        return n

    @app.workflow()
    async def shipping(n: int) -> int:
        return n

    created = []
    for n in range(1000):
        clock.advance(1)
        workflow = billing if n % 4 else shipping
        customer = f"customer-{n % 7}"  # a business key
        created.append((await app.start(workflow, n, id=f"run-{n:04}", key=customer)).id)
    window_start = clock.now() - 499.5  # the 500 newest: n >= 500
    clock.advance(1)
    await app.start(billing, -1, id="parked", delay=3600)

    seen = []
    async for run in app.list_runs(workflow="billing", page_size=37):
        seen.append(run.id)
        if len(seen) == 100:  # runs started while paging do not disturb the cursor
            clock.advance(1)
            await app.start(billing, 1000, id="late")
    expected = [i for n, i in enumerate(created) if n % 4][::-1]
    assert seen == ["parked", *expected]
    recent = [
        run.id
        async for run in app.list_runs(
            workflow="shipping",
            created_after=datetime.fromtimestamp(window_start, tz=UTC),
            page_size=10,
        )
    ]
    assert recent == [i for n, i in enumerate(created) if n % 4 == 0 and n >= 500][::-1]
    keyed = [run.id async for run in app.list_runs(key="customer-3", page_size=9)]
    assert keyed == [i for n, i in enumerate(created) if n % 7 == 3][::-1]
    keyed_billing = [r.key async for r in app.list_runs(key="customer-3", workflow="billing")]
    assert keyed_billing == ["customer-3"] * len([n for n in range(1000) if n % 7 == 3 and n % 4])
    pending = [run.id async for run in app.list_runs(status="pending", page_size=1000)]
    assert len(pending) == 1002
    assert [r.id async for r in app.list_runs(status=perdure.RunStatus.COMPLETED)] == []
    await app.close()


async def test_a_run_resumed_as_soon_as_it_paused_itself_goes_on(app: perdure.App) -> None:
    # The resume races the worker's checkpoint of the pause: whichever lands first,
    # the run must go on (once, a lost update left it running and unowned for good).
    @app.step()
    async def work(i: int) -> int:
        return i

    @app.workflow()
    async def pausing(i: int) -> int:
        await work(i)
        await perdure.pause_run(reason="check")
        return await work(i + 1)

    async with app:
        for i in range(5):
            handle = await app.start(pausing, i)
            async with asyncio.timeout(30):
                while await handle.status() is not RunStatus.PAUSED:
                    await asyncio.sleep(0.005)
            assert await app.resume(handle.id)
            assert await handle.result(timeout=30) == i + 1


async def test_a_workflow_pauses_itself_and_controls_other_runs(app: perdure.App) -> None:
    done: list[str] = []

    @app.step()
    async def work(what: str) -> None:
        done.append(what)

    @app.workflow()
    async def reviewed() -> str:
        await work("draft")
        assert await perdure.pause_run(reason="needs a human review")
        await work("publish")  # only after an operator resumes the run
        return "published"

    @app.workflow()
    async def victim() -> None:
        await perdure.receive("never")

    @app.workflow()
    async def controller(target: str) -> list[bool]:
        return [
            await perdure.pause_run(target, "controller says"),
            await perdure.pause_run(target, "again"),  # already paused
            await perdure.terminate_run(target, "controller is done"),
        ]

    async with app:
        handle = await app.start(reviewed, id="reviewed")
        await status_is(handle, RunStatus.PAUSED)
        await asyncio.sleep(0.3)
        assert done == ["draft"]
        note = controls(await app.backend.read_journal("reviewed"))
        assert note == [("pause", "run reviewed", "needs a human review")]
        await handle.resume("looks good")
        assert await handle.result(timeout=10) == "published"
        assert done == ["draft", "publish"]

        target = await app.start(victim, id="victim")
        await status_is(target, RunStatus.RUNNING)
        boss = await app.start(controller, "victim", id="controller")
        assert await boss.result(timeout=10) == [True, False, True]
        with pytest.raises(perdure.RunTerminated, match="run controller"):
            await target.result(timeout=10)


async def test_a_workflow_that_terminates_itself_stops_there(app: perdure.App) -> None:
    done: list[str] = []

    @app.step()
    async def work(what: str) -> None:
        done.append(what)

    @app.workflow()
    async def quitter() -> None:
        await work("before")
        await perdure.terminate_run(reason="nothing left to do")
        await work("after")

    async with app:
        handle = await app.start(quitter, id="quitter")
        with pytest.raises(perdure.RunTerminated, match="nothing left to do"):
            await handle.result(timeout=10)
        await asyncio.sleep(0.3)
        assert done == ["before"]
    with pytest.raises(perdure.NotInWorkflow):
        await perdure.pause_run("quitter")


async def test_a_paused_run_whose_code_ended_completes_only_when_resumed(
    app: perdure.App,
) -> None:
    @app.workflow()
    async def last_word() -> str:
        await perdure.pause_run(reason="hold the result")
        return "released"

    async with app:
        handle = await app.start(last_word, id="last-word")
        await status_is(handle, RunStatus.PAUSED)
        await asyncio.sleep(0.3)
        assert await handle.status() is RunStatus.PAUSED
        await handle.resume()
        assert await handle.result(timeout=10) == "released"


async def test_a_retention_policy_deletes_ended_runs_by_itself(
    make_app: Callable[..., perdure.App],
) -> None:
    app = make_app(retention=0.5)  # seconds, for the test; in production days

    @app.workflow()
    async def short() -> str:
        return "done"

    @app.workflow()
    async def waits() -> None:
        await perdure.receive("never")

    async with app:
        done = await app.start(short, id="short-lived")
        assert await done.result(timeout=10) == "done"
        alive = await app.start(waits, id="long-lived")

        async def gone() -> bool:
            try:
                await done.status()
            except perdure.RunNotFound:
                return True
            return False

        await eventually(gone)
        assert await alive.status() is RunStatus.RUNNING
    with pytest.raises(ValueError, match="retention"):
        make_app(retention=0)
