"""Starting runs: idempotent ids, conflicts, arguments that cannot be stored, and the
errors a caller gets back."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import perdure


class InsufficientFunds(Exception):
    """A user's own exception type, raised from a step."""


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


async def all_runs(app: perdure.App, **filters: str) -> list[perdure.RunInfo]:
    return [run async for run in app.list_runs(**filters)]  # type: ignore[arg-type]


async def test_concurrent_starts_of_one_id_run_it_once(
    app: perdure.App, backend_name: str, make_app: Callable[..., perdure.App]
) -> None:
    calls: list[int] = []

    def register(target: perdure.App) -> perdure.WorkflowFunction[[int], int]:
        @target.step(name="charge")
        async def charge(cents: int) -> int:
            calls.append(cents)
            await asyncio.sleep(0.05)
            return cents + len(calls) * 1000

        @target.workflow(name="payment")
        async def payment(cents: int) -> int:
            return await charge(cents)

        return payment

    wf = register(app)
    # On a database the second start comes from another App on it, as a second
    # process would; memory is shared by one App only.
    other, other_wf = app, wf
    if backend_name != "memory":
        other = make_app()
        other_wf = register(other)
    try:
        async with app:
            first, second, third = await asyncio.gather(
                app.start(wf, 5, id="pay-1"),
                other.start(other_wf, 5, id="pay-1"),
                app.start(wf, 5, id="pay-1"),
            )
            results = [await h.result(timeout=10) for h in (first, second, third)]
            again = await other.start(other_wf, 5, id="pay-1")
            assert await again.result(timeout=10) == results[0]
    finally:
        await other.close()
    assert results == [1005, 1005, 1005]
    assert calls == [5]
    assert [run.id for run in await all_runs(app)] == ["pay-1"]


async def test_same_id_for_another_workflow_is_a_conflict(app: perdure.App) -> None:
    g_ran: list[str] = []

    @app.workflow()
    async def ship(order: str) -> str:
        note = await perdure.receive("label")
        return f"shipped {order} with {note}"

    @app.workflow()
    async def refund(order: str) -> str:
        g_ran.append(order)
        return f"refunded {order}"

    async with app:
        handle = await app.start(ship, "o-7", id="order-7")
        await eventually(lambda: _status_is(handle, perdure.RunStatus.RUNNING))
        before = await handle.info()
        with pytest.raises(perdure.RunConflict) as caught:
            await app.start(refund, "o-7", id="order-7")
        assert caught.value.run_id == "order-7"
        assert caught.value.existing_workflow == "ship"
        assert caught.value.requested_workflow == "refund"
        after = await handle.info()
        assert after == before
        await handle.send("label", "a red bow")
        assert await handle.result(timeout=10) == "shipped o-7 with a red bow"
    assert g_ran == []
    assert [(run.id, run.workflow) for run in await all_runs(app)] == [("order-7", "ship")]


async def _status_is(handle: perdure.Handle[Any], status: perdure.RunStatus) -> bool:
    return await handle.status() is status


async def test_custom_exception_from_a_step_reaches_the_caller(app: perdure.App) -> None:
    @app.step()
    def withdraw(cents: int) -> None:
        raise InsufficientFunds(f"balance too low for {cents} cents")

    @app.workflow()
    async def transfer(cents: int) -> None:
        await withdraw(cents)

    async with app:
        handle = await app.start(transfer, 250)
        with pytest.raises(perdure.RunFailed) as caught:
            await handle.result(timeout=10)
        info = await handle.info()
    error = caught.value.error
    assert error.type == f"{__name__}.InsufficientFunds"
    assert error.message == "balance too low for 250 cents"
    assert "raise InsufficientFunds" in error.traceback
    assert caught.value.run_id == handle.id
    assert info.status is perdure.RunStatus.FAILED
    assert info.error == error


async def test_custom_exception_from_workflow_code_reaches_the_caller(app: perdure.App) -> None:
    @app.workflow()
    async def audit(limit: int) -> None:
        await perdure.sleep(0.01)
        raise InsufficientFunds(f"over the {limit} limit")

    async with app:
        handle = await app.start(audit, 10)
        with pytest.raises(perdure.RunFailed) as caught:
            await handle.result(timeout=10)
    assert not isinstance(caught.value, perdure.RunCancelled)
    assert caught.value.error.type == f"{__name__}.InsufficientFunds"
    assert caught.value.error.message == "over the 10 limit"
    assert "raise InsufficientFunds" in caught.value.error.traceback


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((object(),), {}),
        ((), {"payload": threading.Lock()}),
        (([1, 2, lambda: 3],), {}),
    ],
    ids=["object", "lock-kwarg", "nested-lambda"],
)
async def test_unserializable_argument_fails_at_start_and_writes_nothing(
    app: perdure.App, args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    ran: list[object] = []

    @app.workflow()
    async def keep(payload: object) -> None:
        ran.append(payload)

    async with app:
        with pytest.raises(perdure.SerializationError):
            await app.start(keep, *args, id="keep-1", **kwargs)  # type: ignore[arg-type]
        assert await all_runs(app) == []
        with pytest.raises(perdure.RunNotFound):
            await app.handle("keep-1").status()
        # The id is still free: a valid start succeeds and runs.
        handle = await app.start(keep, "fine", id="keep-1")
        await handle.result(timeout=10)
    assert ran == ["fine"]
