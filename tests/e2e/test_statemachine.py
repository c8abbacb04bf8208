"""State machines (scenarios E1-E11) on every backend: statuses and transitions over a
typed record, compiled onto ordinary workflows and steps."""

from __future__ import annotations

import asyncio
import contextlib
import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagapp
import pydantic
import pytest
from crashkit import eventually

import perdure
from perdure.records import RunStatus


class Status(enum.IntEnum):
    CREATED = 1
    VERIFIED = 2
    CHARGED = 3
    DONE = 4
    REJECTED = 5


class Account(pydantic.BaseModel):
    email: str
    verified: bool = False
    paid_cents: int = 0
    notes: list[str] = []


@dataclass
class Payment:
    cents: int


def signup_machine(app: perdure.App) -> perdure.StateMachine:
    """The signup machine of the guide: CREATED -> VERIFIED -(callback)-> CHARGED -> DONE."""
    signup = app.state_machine("signup", Status, record=Account)

    @signup.step(Status.CREATED, to=[Status.VERIFIED, Status.REJECTED])
    async def verify(r: perdure.Record[Account]) -> Status:
        if r.data.email.endswith("@spam.example"):
            return Status.REJECTED
        r.data.verified = True
        return Status.VERIFIED

    async def on_payment(r: perdure.Record[Account], payment: Payment) -> Status:
        r.data.paid_cents += payment.cents
        return Status.CHARGED

    signup.callback(Status.VERIFIED, on_payment, to=[Status.CHARGED])

    @signup.step(Status.CHARGED, to=[Status.DONE])
    def welcome(r: perdure.Record[Account]) -> Status:
        r.data.notes.append("welcomed")
        return Status.DONE

    return signup


async def test_e1_signup_walks_to_done_and_await_status_returns_the_record(
    app: perdure.App,
) -> None:
    signup = signup_machine(app)
    completed: list[Account] = []
    signup.on_complete(lambda r: completed.append(r.data))
    async with app:
        run = await signup.trigger("user-42", Account(email="ann@example.com"))
        verified = await signup.await_status("user-42", run.id, Status.VERIFIED, timeout=30)
        assert verified == Account(email="ann@example.com", verified=True)
        await signup.callback_for("user-42", Status.VERIFIED, Payment(1999))
        done = await signup.await_status("user-42", run.id, Status.DONE, timeout=30)
        assert done == Account(
            email="ann@example.com", verified=True, paid_cents=1999, notes=["welcomed"]
        )
        assert await run.result(timeout=30) == done
        state = await signup.get("user-42")
        assert state.status is Status.DONE and state.run_status is RunStatus.COMPLETED
        assert state.run_id == run.id and state.record == done
    assert completed == [done]
    keyed = [r async for r in app.list_runs(key="user-42")]
    assert [r.id for r in keyed] == [run.id]
    steps = [s.name for s in await run.steps()]
    assert steps[:3] == ["signup.CREATED", "signup.VERIFIED.callback", "signup.CHARGED"]


async def test_e1_the_machine_starts_like_any_workflow(app: perdure.App) -> None:
    signup = signup_machine(app)
    async with app:
        run = await app.start(signup, "spam", Account(email="x@spam.example"), "CREATED")
        assert await run.result(timeout=30) == Account(email="x@spam.example")
        assert (await signup.get("spam", run.id)).status is Status.REJECTED


async def test_a_machine_run_forks_from_a_status_step_like_any_run(app: perdure.App) -> None:
    signup = signup_machine(app)
    async with app:
        run = await signup.trigger("user-7", Account(email="bo@example.com"))
        await signup.await_status("user-7", run.id, Status.VERIFIED, timeout=30)
        await signup.callback_for("user-7", Status.VERIFIED, Payment(500))
        done = await run.result(timeout=30)
        # From the welcome step on: verify and the payment are reused, welcome runs again.
        [welcome] = [s for s in await run.steps() if s.name == "signup.CHARGED"]
        forked = await app.fork(run.id, from_step=welcome.position)
        assert await forked.result(timeout=30) == done
        names = [s.name for s in await forked.steps()]
        assert names.count("signup.CREATED") == 1 and names.count("signup.CHARGED") == 1
        assert (await forked.info()).key == "user-7"


async def test_e2_a_status_outside_to_fails_the_run_and_keeps_the_record(
    app: perdure.App,
) -> None:
    signup = app.state_machine("signup", Status, record=Account)
    fixed = False

    @signup.step(Status.CREATED, to=[Status.VERIFIED])
    async def verify(r: perdure.Record[Account]) -> Status:
        r.data.verified = True
        return Status.VERIFIED if fixed else Status.DONE

    async with app:
        run = await signup.trigger("k", Account(email="a@example.com"))
        with pytest.raises(perdure.RunFailed) as failed:
            await run.result(timeout=30)
        assert failed.value.error.type == "perdure.errors.InvalidTransition"
        message = str(failed.value)
        assert "verify answered DONE in CREATED, which may only go to VERIFIED" in message
        state = await signup.get("k")
        assert state.status is Status.CREATED
        assert state.record == Account(email="a@example.com")  # unchanged
        # Fix the code and retry the run: the failed step runs again.
        fixed = True
        await app.retry(run.id)
        assert await run.result(timeout=30) == Account(email="a@example.com", verified=True)


class Loop(enum.Enum):
    COLLECT = "collect"
    REVIEW = "review"
    DONE = "done"
    DROPPED = "dropped"


@dataclass
class Basket:
    items: list[int] = field(default_factory=list)


async def test_e8_save_and_repeat_accumulates_until_the_next_status(app: perdure.App) -> None:
    machine = app.state_machine("basket", Loop, record=Basket)
    calls: list[int] = []

    @machine.step(Loop.COLLECT, to=[Loop.DONE])
    async def collect(r: perdure.Record[Basket]) -> Loop | perdure.Outcome:
        calls.append(len(r.data.items))
        r.data.items.append(len(r.data.items))
        return r.repeat() if len(r.data.items) < 10 else Loop.DONE

    async with app:
        run = await machine.trigger("b1", Basket())
        assert await run.result(timeout=30) == Basket(list(range(10)))
    assert calls == list(range(10))  # each round saw the previous rounds' items


async def test_a_long_repeat_loop_continues_as_new_and_keeps_its_place(
    app: perdure.App,
) -> None:
    """A record that loops for a long time does not grow one journal for ever: after
    ``continue_after`` moves the run continues as new with its status, record and
    transition count, and the loop goes on where it was."""
    machine = app.state_machine("basket", Loop, record=Basket, continue_after=4)
    calls: list[int] = []

    @machine.step(Loop.COLLECT, to=[Loop.DONE])
    async def collect(r: perdure.Record[Basket]) -> Loop | perdure.Outcome:
        calls.append(len(r.data.items))
        r.data.items.append(len(r.data.items))
        return r.repeat() if len(r.data.items) < 10 else Loop.DONE

    async with app:
        run = await machine.trigger("b1", Basket())
        assert await run.result(timeout=30) == Basket(list(range(10)))
        info = await run.info()
        # Nine repeats: the run continued after the 4th and the 8th.
        assert info.generation == 2
        assert await run.get_event("status") == {"status": "DONE", "transition": 2}
        steps = [s.name for s in await run.steps()]
        assert steps.count("basket.COLLECT") == 2  # the last generation's rounds only
    assert calls == list(range(10))  # each round once, seeing the previous rounds' items


async def test_a_run_continued_while_waiting_keeps_its_status_timeout(app: perdure.App) -> None:
    """Input that changes nothing still counts toward ``continue_after``; a run that
    continues as new while it waits keeps the deadline of the status it waits in (a
    new generation does not restart the timer) and its transition count (callbacks
    for this transition are still taken)."""
    machine = app.state_machine("basket", Loop, record=Basket, continue_after=1)
    seen: list[str] = []

    @machine.step(Loop.COLLECT, to=[Loop.REVIEW])
    def collect(r: perdure.Record[Basket]) -> Loop:
        return Loop.REVIEW

    async def review(r: perdure.Record[Basket], verdict: str) -> Loop | perdure.Outcome:
        seen.append(verdict)
        return r.skip() if verdict == "later" else Loop.DONE

    machine.callback(Loop.REVIEW, review, to=[Loop.DONE])
    machine.timeout(Loop.REVIEW, after=timedelta(seconds=1), to=Loop.DROPPED)

    async with app:
        run = await machine.trigger("b1", Basket())
        await machine.await_status("b1", run.id, Loop.REVIEW, timeout=30)
        # Keep the run continuing as new; were its timer restarted by each generation,
        # it would never fire while these keep coming.
        for _ in range(300):
            if (await run.info()).status.is_terminal:
                break
            with contextlib.suppress(perdure.CallbackRejected):
                await machine.callback_for("b1", Loop.REVIEW, "later")
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the REVIEW timeout never fired while the run kept continuing")
        assert await run.result(timeout=30) == Basket()
        assert (await machine.get("b1")).status is Loop.DROPPED
        assert (await run.info()).generation >= 1
    assert seen and set(seen) == {"later"}


async def test_e8_skip_pause_and_cancel_answers(app: perdure.App) -> None:
    machine = app.state_machine("basket", Loop, record=Basket)
    hooks: list[str] = []
    machine.on_pause(lambda r: hooks.append(f"pause {r.status.name} {r.data.items}"))
    machine.on_cancel(lambda r: hooks.append(f"cancel {r.status.name} {r.data.items}"))
    paused_once: set[str] = set()

    @machine.step(Loop.COLLECT, to=[Loop.REVIEW])
    async def collect(r: perdure.Record[Basket]) -> Loop | perdure.Outcome:
        r.data.items.append(1)  # dropped by every answer but a status
        if r.key == "skip":
            return r.skip()
        if r.key == "cancel":
            return r.cancel("not wanted")
        if r.key not in paused_once:
            paused_once.add(r.key)
            return r.pause("have a look")
        return Loop.REVIEW

    async def review(r: perdure.Record[Basket], verdict: str) -> Loop:
        return Loop.DONE if verdict == "ok" else Loop.DROPPED

    machine.callback(Loop.REVIEW, review, to=[Loop.DONE, Loop.DROPPED])
    # The skipped record waits in COLLECT; this callback takes it on.
    machine.callback(Loop.COLLECT, review, to=[Loop.DONE, Loop.DROPPED])

    async with app:
        skipped = await machine.trigger("skip", Basket())
        await eventually(
            lambda: _is(app, skipped.id, "status", {"status": "COLLECT", "transition": 1})
        )
        await eventually(lambda: _has_step(skipped, "basket.COLLECT"))
        await machine.callback_for("skip", Loop.COLLECT, "no")
        assert await skipped.result(timeout=30) == Basket()
        assert (await machine.get("skip")).status is Loop.DROPPED

        cancelled = await machine.trigger("cancel", Basket([7]))
        with pytest.raises(perdure.RunCancelled):
            await cancelled.result(timeout=30)
        assert (await machine.get("cancel")).record == Basket([7])

        paused = await machine.trigger("pause", Basket())
        await eventually(lambda: _status_is(paused, RunStatus.PAUSED))
        assert (await machine.get("pause")).record == Basket()
        await app.resume(paused.id)
        reviewed = await machine.await_status("pause", paused.id, Loop.REVIEW, timeout=30)
        assert reviewed == Basket([1])
        await machine.callback_for("pause", Loop.REVIEW, "ok")
        assert await paused.result(timeout=30) == Basket([1])
    assert sorted(hooks) == ["cancel COLLECT [7]", "pause COLLECT []"]


async def test_an_operator_pause_runs_the_on_pause_hook_once_per_pause(app: perdure.App) -> None:
    """Hooks run once per transition whoever pauses: an operator's pause (from outside
    the run) calls on_pause too, after the pause, with the status and record the run
    last entered; pausing a paused run calls nothing."""
    machine = app.state_machine("basket", Loop, record=Basket)
    hooks: list[str] = []
    machine.on_pause(lambda r: hooks.append(f"{r.key} {r.status.name} {r.data.items}"))

    @machine.step(Loop.COLLECT, to=[Loop.REVIEW])
    def collect(r: perdure.Record[Basket]) -> Loop:
        r.data.items.append(1)
        return Loop.REVIEW

    async def review(r: perdure.Record[Basket], verdict: str) -> Loop:
        return Loop.DONE if verdict == "ok" else Loop.DROPPED

    machine.callback(Loop.REVIEW, review, to=[Loop.DONE, Loop.DROPPED])

    # Paused before any worker took it: no status entered, nothing for the hook.
    early = await machine.trigger("early", Basket())
    assert await app.pause(early.id, "not yet", by="ops")
    async with app:
        [hook_run] = [r async for r in app.list_runs(workflow="basket.paused")]
        assert await app.handle(hook_run.id).result(timeout=30) is False
        assert await app.resume(early.id)

        run = await machine.trigger("b1", Basket())
        await machine.await_status("b1", run.id, Loop.REVIEW, timeout=30)
        for pause in range(2):
            assert await app.pause(run.id, "have a look", by="ops")
            assert not await app.pause(run.id, "again", by="ops")  # already paused
            await eventually(lambda n=pause: len(hooks) == n + 1)
            with pytest.raises(perdure.CallbackRejected):
                await machine.callback_for("b1", Loop.REVIEW, "ok")
            assert await app.resume(run.id)
        await machine.callback_for("b1", Loop.REVIEW, "ok")
        assert await run.result(timeout=30) == Basket([1])
        hook_runs = [r async for r in app.list_runs(workflow="basket.paused")]
        assert len(hook_runs) == 3
        for hook_run in hook_runs:
            assert await app.handle(hook_run.id).result(timeout=30) is (hook_run.key == "b1")
    assert hooks == ["b1 REVIEW [1]", "b1 REVIEW [1]"]


async def _is(app: perdure.App, run_id: str, event: str, value: object) -> bool:
    return bool(await app.handle(run_id).get_event(event) == value)


async def _has_step(handle: perdure.Handle[object], name: str) -> bool:
    return any(s.name == name and s.status == "completed" for s in await handle.steps())


async def _status_is(handle: perdure.Handle[object], status: RunStatus) -> bool:
    return bool(await handle.status() is status)


GOLDEN_MERMAID = """\
stateDiagram-v2
    [*] --> CREATED
    CREATED --> VERIFIED: verify
    CREATED --> REJECTED: verify
    VERIFIED --> CHARGED: callback on_payment
    VERIFIED --> REJECTED: timeout after 600s
    CHARGED --> DONE: welcome
    DONE --> [*]
    REJECTED --> [*]
"""


async def test_e10_mermaid_and_describe(app: perdure.App) -> None:
    signup = signup_machine(app)
    signup.timeout(Status.VERIFIED, after=timedelta(minutes=10), to=Status.REJECTED)
    assert signup.mermaid() == GOLDEN_MERMAID
    described = signup.describe()
    import json

    assert json.loads(json.dumps(described)) == described
    assert described["start"] == "CREATED"
    assert [s["name"] for s in described["statuses"] if s["terminal"]] == ["DONE", "REJECTED"]
    assert {"from": "VERIFIED", "to": "CHARGED", "by": "callback", "label": "on_payment"} in (
        described["transitions"]
    )
    assert described["steps"][0]["function"] == "verify"
    assert described["timeouts"] == [
        {
            "status": "VERIFIED",
            "after_seconds": 600.0,
            "at": None,
            "to": ["REJECTED"],
            "function": None,
        }
    ]
    assert described["callbacks"] == [
        {"status": "VERIFIED", "function": "on_payment", "to": ["CHARGED"]}
    ]


async def test_e11_one_active_run_per_business_key(app: perdure.App) -> None:
    signup = signup_machine(app)
    async with app:
        first = await signup.trigger("user-1", Account(email="a@example.com"))
        await signup.await_status("user-1", first.id, Status.VERIFIED, timeout=30)
        with pytest.raises(perdure.MachineRunActive) as active:
            await signup.trigger("user-1", Account(email="b@example.com"))
        assert active.value.holder == first.id and first.id in str(active.value)
        assert isinstance(active.value, perdure.RunDeduplicated)
        other = await signup.trigger("user-2", Account(email="c@example.com"))  # other key
        await signup.callback_for("user-1", Status.VERIFIED, Payment(1))
        await first.result(timeout=30)
        again = await signup.trigger("user-1", Account(email="b@example.com"))
        assert again.id != first.id
        assert {r.id async for r in app.list_runs(key="user-1")} == {first.id, again.id}
        await other.cancel()


async def test_e3_a_status_timeout_fires_only_while_the_record_is_still_there(
    app: perdure.App,
) -> None:
    signup = signup_machine(app)
    signup.timeout(Status.VERIFIED, after=timedelta(seconds=0.3), to=Status.REJECTED)
    # Another machine whose CHARGED waits (far longer than VERIFIED's timeout) for a
    # timeout of its own: the VERIFIED timer, due meanwhile, must not move it.
    slow = app.state_machine("slow", Status, record=Account)

    @slow.step(Status.CREATED, to=[Status.VERIFIED])
    async def verify(r: perdure.Record[Account]) -> Status:
        return Status.VERIFIED

    async def pay(r: perdure.Record[Account], cents: int) -> Status:
        r.data.paid_cents = cents
        return Status.CHARGED

    slow.callback(Status.VERIFIED, pay, to=[Status.CHARGED])
    slow.timeout(Status.VERIFIED, after=timedelta(seconds=0.3), to=Status.REJECTED)
    slow.timeout(Status.CHARGED, after=timedelta(seconds=1.5), to=Status.DONE)

    async with app:
        idle = await signup.trigger("idle", Account(email="a@example.com"))
        assert await idle.result(timeout=30) == Account(email="a@example.com", verified=True)
        assert (await signup.get("idle")).status is Status.REJECTED

        paid = await slow.trigger("paid", Account(email="b@example.com"))
        await slow.await_status("paid", paid.id, Status.VERIFIED, timeout=30)
        await slow.callback_for("paid", Status.VERIFIED, 500)
        assert await paid.result(timeout=30) == Account(email="b@example.com", paid_cents=500)
        assert (await slow.get("paid")).status is Status.DONE
        assert await app.handle(paid.id).get_event("status:REJECTED") is None


async def test_e3_a_timeout_at_an_absolute_time_with_a_function(app: perdure.App) -> None:
    machine = app.state_machine("launch", Status, record=Account)

    def decide(r: perdure.Record[Account]) -> Status:
        return Status.DONE if r.data.verified else Status.REJECTED

    machine.timeout(
        Status.CREATED,
        at=datetime.now(UTC) + timedelta(seconds=0.3),
        to=[Status.DONE, Status.REJECTED],
        fn=decide,
    )
    async with app:
        run = await machine.trigger("l1", Account(email="a@example.com", verified=True))
        await run.result(timeout=30)
        assert (await machine.get("l1")).status is Status.DONE


async def test_e4_callbacks_are_rejected_unless_the_run_waits_in_that_status(
    app: perdure.App,
) -> None:
    signup = app.state_machine("signup", Status, record=Account)
    gate = asyncio.Event()

    @signup.step(Status.CREATED, to=[Status.VERIFIED])
    async def verify(r: perdure.Record[Account]) -> Status:
        await gate.wait()
        return Status.VERIFIED

    async def pay(r: perdure.Record[Account], cents: int) -> Status:
        r.data.paid_cents = cents
        return Status.CHARGED

    signup.callback(Status.VERIFIED, pay, to=[Status.CHARGED])
    start = Account(email="a@example.com")
    async with app:
        with pytest.raises(perdure.CallbackRejected, match="no run"):
            await signup.callback_for("nobody", Status.VERIFIED, 1)
        with pytest.raises(perdure.RegistrationError, match="no callback for CREATED"):
            await signup.callback_for("nobody", Status.CREATED, 1)

        run = await signup.trigger("k", start)
        await eventually(lambda: _is(app, run.id, "status", {"status": "CREATED", "transition": 1}))
        with pytest.raises(perdure.CallbackRejected, match="in CREATED, not VERIFIED"):
            await signup.callback_for("k", Status.VERIFIED, 1)
        gate.set()
        await signup.await_status("k", run.id, Status.VERIFIED, timeout=30)
        await app.pause(run.id, "hold on")
        with pytest.raises(perdure.CallbackRejected, match="paused"):
            await signup.callback_for("k", Status.VERIFIED, 1)
        await run.cancel()
        await eventually(lambda: _status_is(run, RunStatus.CANCELLED))
        with pytest.raises(perdure.CallbackRejected, match="cancelled"):
            await signup.callback_for("k", Status.VERIFIED, 1)
        state = await signup.get("k")
        assert state.status is Status.VERIFIED and state.record == start
        assert not any(s.name == "signup.VERIFIED.callback" for s in await run.steps())


async def test_e6_a_failing_step_pauses_the_run_once_and_resume_runs_it_again(
    app: perdure.App,
) -> None:
    machine = app.state_machine(
        "flaky",
        Status,
        record=Account,
        retry=perdure.Retry(max_attempts=2, initial_interval=0),
        on_failure="pause",
    )
    attempts: list[str] = []
    paused: list[str] = []
    machine.on_pause(lambda r: paused.append(r.status.name))
    broken = True

    @machine.step(Status.CREATED, to=[Status.DONE])
    async def charge(r: perdure.Record[Account]) -> Status:
        attempts.append("try")
        if broken:
            raise ConnectionError("payment provider down")
        return Status.DONE

    async with app:
        run = await machine.trigger("k", Account(email="a@example.com"))
        await eventually(lambda: _status_is(run, RunStatus.PAUSED))
        assert attempts == ["try", "try"] and paused == ["CREATED"]
        broken = False
        await app.resume(run.id)
        await run.result(timeout=30)
    assert attempts == ["try", "try", "try"] and paused == ["CREATED"]


async def test_e6_a_paused_run_resumes_by_itself_after_resume_after(app: perdure.App) -> None:
    machine = app.state_machine(
        "flaky",
        Status,
        record=Account,
        retry=perdure.Retry(max_attempts=2, initial_interval=0),
        on_failure="pause",
        resume_after=timedelta(seconds=0.2),
    )
    attempts: list[int] = []
    paused: list[str] = []
    machine.on_pause(lambda r: paused.append(r.status.name))

    @machine.step(Status.CREATED, to=[Status.DONE])
    async def charge(r: perdure.Record[Account]) -> Status:
        attempts.append(1)
        if len(attempts) <= 2:
            raise ConnectionError("payment provider down")
        return Status.DONE

    async with app:
        run = await machine.trigger("k", Account(email="a@example.com"))
        await run.result(timeout=30)
        journal = await run.journal()
    assert len(attempts) == 3 and paused == ["CREATED"]
    assert [e.name for e in journal if e.kind.value == "control"] == ["pause", "resume"]


async def test_e5_parallel_consumers_cap_how_many_records_a_status_processes(
    app: perdure.App,
) -> None:
    machine = app.state_machine("batch", Status, record=Account)
    running = 0
    most = 0
    gate = asyncio.Event()

    @machine.step(Status.CREATED, to=[Status.DONE], parallel=2)
    async def process(r: perdure.Record[Account]) -> Status:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await gate.wait()
        finally:
            running -= 1
        return Status.DONE

    async with app:
        runs = [await machine.trigger(f"r{i}", Account(email=f"{i}@x")) for i in range(5)]
        await eventually(lambda: _true(running == 2))
        gate.set()
        for run in runs:
            await run.result(timeout=30)
    assert most == 2


async def _true(value: bool) -> bool:
    return value


class Order(enum.Enum):
    NEW = 1
    PAID = 2


class Ship(enum.Enum):
    WAITING = 1
    SHIPPED = 2
    HELD = 3


async def test_e7_a_connected_machine_waits_for_the_other_to_reach_a_status(
    app: perdure.App,
) -> None:
    orders = app.state_machine("orders", Order)
    shipping = app.state_machine("shipping", Ship)
    gate = asyncio.Event()

    @orders.step(Order.NEW, to=[Order.PAID])
    async def pay(r: perdure.Record[dict[str, int]]) -> Order:
        if r.key == "late":
            await gate.wait()
        r.data["paid"] = 1
        return Order.PAID

    def release(r: perdure.Record[dict[str, int]], order: dict[str, int]) -> Ship:
        return Ship.SHIPPED if order.get("paid") else Ship.HELD

    shipping.connect(
        orders, Order.PAID, waiting_in=Ship.WAITING, to=[Ship.SHIPPED, Ship.HELD], fn=release
    )

    async with app:
        # Order first: shipping finds it paid on arrival.
        order = await orders.trigger("early", {})
        await order.result(timeout=30)
        ship = await shipping.trigger("early", {})
        await ship.result(timeout=30)
        assert (await shipping.get("early")).status is Ship.SHIPPED

        # Shipping first: it waits until the order gets paid.
        ship = await shipping.trigger("late", {})
        order = await orders.trigger("late", {})
        await eventually(
            lambda: _is(app, ship.id, "status", {"status": "WAITING", "transition": 1})
        )
        assert (await ship.status()) is RunStatus.RUNNING
        gate.set()
        await order.result(timeout=30)
        await ship.result(timeout=30)
        assert (await shipping.get("late")).status is Ship.SHIPPED


async def test_e9_deleting_data_scrubs_the_record_and_its_journal(app: perdure.App) -> None:
    signup = app.state_machine(
        "signup", Status, record=Account, scrub=lambda a: Account(email="redacted")
    )

    @signup.step(Status.CREATED, to=[Status.DONE])
    async def finish(r: perdure.Record[Account]) -> Status:
        r.data.notes.append("secret")
        return Status.DONE

    plain = app.state_machine("plain", Loop)

    @plain.step(Loop.COLLECT, to=[Loop.DONE])
    async def collect(r: perdure.Record[dict[str, str]]) -> Loop:
        return Loop.DONE

    waits = app.state_machine("waits", Status)
    waits.callback(Status.CREATED, finish, to=[Status.DONE])

    async with app:
        other = await plain.trigger("p", {"name": "Ann"})
        run = await signup.trigger("u", Account(email="ann@example.com"))
        await run.result(timeout=30)
        state = await signup.delete_data("u")
        assert state.data_deleted and state.record == Account(email="redacted")
        assert state.run_id == run.id and state.status is Status.DONE
        assert await run.steps() == []  # the journal that held the data is gone
        assert await run.get_event("status:CREATED") is None

        await other.result(timeout=30)
        state = await plain.delete_data("p")
        assert state.data_deleted and state.record == {"deleted": True}

        active = await waits.trigger("a", {"name": "Bob"})
        await waits.await_status("a", active.id, Status.CREATED, timeout=30)
        with pytest.raises(perdure.CallbackRejected, match="only for ended runs"):
            await waits.delete_data("a", active.id)
        assert (await waits.get("a")).record == {"name": "Bob"}
        await active.cancel()


def test_bad_definitions_are_refused_with_what_to_do(app: perdure.App) -> None:
    bad = perdure.RegistrationError
    with pytest.raises(bad, match="must be an enum class"):
        app.state_machine("m0", dict)  # type: ignore[arg-type]
    m = app.state_machine("m", Status, record=Account)

    async def fn(r: perdure.Record[Account]) -> Status:
        return Status.DONE

    with pytest.raises(bad, match="'nope' is not a Status"):
        m.step(Status.CREATED, to=["nope"])(fn)  # type: ignore[list-item]
    with pytest.raises(bad, match=r"step target <Loop\.DONE"):
        m.step(Status.CREATED, to=[Loop.DONE])(fn)  # type: ignore[list-item]
    with pytest.raises(bad, match="lists its own status"):
        m.step(Status.CREATED, to=[Status.CREATED])(fn)
    with pytest.raises(bad, match="needs to="):
        m.step(Status.CREATED, to=[])(fn)
    with pytest.raises(bad, match="parallel=0"):
        m.step(Status.CREATED, to=[Status.DONE], parallel=0)
    with pytest.raises(bad, match="on_failure='retry'"):
        m.step(Status.CREATED, to=[Status.DONE], on_failure="retry")
    m.step(Status.CREATED, to=[Status.DONE])(fn)
    with pytest.raises(bad, match="already has a step"):
        m.step(Status.CREATED, to=[Status.REJECTED])(fn)
    with pytest.raises(bad, match="either after="):
        m.timeout(Status.CREATED, to=Status.REJECTED)
    with pytest.raises(bad, match="timezone-aware"):
        m.timeout(Status.CREATED, at=datetime(2030, 1, 1), to=Status.REJECTED)
    with pytest.raises(bad, match="several statuses"):
        m.timeout(Status.CREATED, after=1, to=[Status.REJECTED, Status.DONE])
    with pytest.raises(bad, match="a workflow named 'm' is already registered"):
        app.state_machine("m", Status)
    m.step(Status.VERIFIED, to=[Status.CHARGED])(fn)  # nothing leads to VERIFIED
    with pytest.raises(bad, match="no run can reach VERIFIED, CHARGED from the start"):
        m.mermaid()

    t = app.state_machine("t", Status, terminal=[Status.DONE])
    with pytest.raises(bad, match="DONE is declared terminal"):
        t.step(Status.DONE, to=[Status.REJECTED])(fn)
    with pytest.raises(bad, match="start status CREATED is declared terminal"):
        app.state_machine("t2", Status, terminal=[Status.CREATED]).describe()


# -- a worker process killed in the middle of a machine ---------------------------------------


@pytest.mark.slow
async def test_a_worker_killed_mid_machine_goes_on_in_the_status_it_was_in(
    client: perdure.App, shared_url: str, tmp_path: Path
) -> None:
    """verify is recorded and activate is running when the worker is killed (SIGKILL):
    the next worker runs activate again, and verify not at all."""
    machine = client.workflows["signup"].definition
    handle = await machine.trigger("ann", {"name": "ann"})
    first = dagapp.spawn_worker(shared_url, tmp_path)
    workers = [first]
    try:
        await eventually(lambda: ("activate", first.pid) in dagapp.ran(tmp_path), what="activate")
        first.kill()
        first.wait(timeout=10)
        second = dagapp.spawn_worker(shared_url, tmp_path)
        workers.append(second)
        (tmp_path / dagapp.ACTIVATE_GATE).touch()
        final = await handle.result(timeout=60)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=10)
    assert final == {"name": "ann", "verified": "yes", "active": "yes"}
    ran = dagapp.ran(tmp_path)
    assert [pid for task, pid in ran if task == "verify"] == [first.pid]
    assert [pid for task, pid in ran if task == "activate"] == [first.pid, second.pid]
