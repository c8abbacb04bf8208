"""Child workflows: started from a parent, awaited, failing, listed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import perdure


class PaymentDeclined(Exception):
    """A user's own exception type, raised in a child run."""


async def test_parent_awaits_children_and_lists_them(app: perdure.App) -> None:
    @app.step()
    async def add(a: int, b: int) -> int:
        return a + b

    @app.workflow()
    async def child(a: int, b: int) -> int:
        await perdure.sleep(0.02)
        return await add(a, b)

    @app.workflow()
    async def parent() -> dict[str, Any]:
        first = await perdure.start_child(child, 1, 2, id="kid-a")
        second = await perdure.start_child(child, 10, 20)
        third = await perdure.start_child(child, 100, 200)
        totals = [await first.result(), await second]
        totals.append(await third)
        return {"totals": totals, "ids": [first.id, second.id, third.id]}

    async with app:
        handle = await app.start(parent, id="family-1")
        result = await handle.result(timeout=10)
        assert result["totals"] == [3, 30, 300]
        ids = result["ids"]
        assert ids[0] == "kid-a"
        assert len(set(ids)) == 3

        children = [run async for run in app.list_runs(parent="family-1")]
        assert sorted(run.id for run in children) == sorted(ids)
        assert {run.parent_id for run in children} == {"family-1"}
        assert {run.workflow for run in children} == {"child"}
        assert {run.status for run in children} == {perdure.RunStatus.COMPLETED}
        for child_id, total in zip(ids, [3, 30, 300], strict=True):
            assert await app.handle(child_id).result(timeout=10) == total
        assert [run async for run in app.list_runs(parent="kid-a")] == []
        assert (await handle.info()).parent_id is None


async def test_children_run_in_parallel_under_gather(app: perdure.App) -> None:
    @app.workflow()
    async def square(x: int) -> int:
        await perdure.sleep(0.05)
        return x * x

    @app.workflow()
    async def fan_out(n: int) -> int:
        kids = [await perdure.start_child(square, i) for i in range(n)]
        return sum(await asyncio.gather(*(kid.result() for kid in kids)))

    async with app:
        handle = await app.start(fan_out, 8, id="fan-1")
        assert await handle.result(timeout=10) == sum(i * i for i in range(8))
        assert len([run async for run in app.list_runs(parent="fan-1")]) == 8


async def test_failing_child_raises_child_failed_which_the_parent_catches(
    app: perdure.App,
) -> None:
    @app.step()
    def charge(cents: int) -> None:
        raise PaymentDeclined(f"card refused {cents} cents")

    @app.workflow()
    async def pay(cents: int) -> None:
        await charge(cents)

    @app.workflow()
    async def checkout() -> dict[str, Any]:
        kid = await perdure.start_child(pay, 999, id="pay-kid")
        try:
            await kid
        except perdure.ChildFailed as exc:
            return {
                "run_id": exc.run_id,
                "type": exc.error.type,
                "message": exc.error.message,
                "cancelled": exc.cancelled,
            }
        return {"paid": True}

    async with app:
        handle = await app.start(checkout)
        outcome = await handle.result(timeout=10)
        assert outcome == {
            "run_id": "pay-kid",
            "type": f"{__name__}.PaymentDeclined",
            "message": "card refused 999 cents",
            "cancelled": False,
        }
        assert await handle.status() is perdure.RunStatus.COMPLETED
        kid = await app.handle("pay-kid").info()
        assert kid.status is perdure.RunStatus.FAILED
        assert kid.parent_id == handle.id
        assert kid.error is not None
        assert kid.error.type == f"{__name__}.PaymentDeclined"


async def test_uncaught_child_failure_fails_the_parent_with_the_root_cause(
    app: perdure.App,
) -> None:
    @app.workflow()
    async def pay() -> None:
        raise PaymentDeclined("insufficient funds")

    @app.workflow()
    async def checkout() -> None:
        await (await perdure.start_child(pay))

    async with app:
        handle = await app.start(checkout)
        with pytest.raises(perdure.RunFailed) as caught:
            await handle.result(timeout=10)
    assert caught.value.error.type == f"{__name__}.PaymentDeclined"
    assert caught.value.error.message == "insufficient funds"


async def test_cancelled_child_raises_child_failed_marked_cancelled(app: perdure.App) -> None:
    @app.workflow()
    async def wait_forever() -> None:
        await perdure.receive("never")

    @app.workflow()
    async def impatient() -> list[Any]:
        kid = await perdure.start_child(wait_forever, id="slow-kid")
        await perdure.sleep(0.05)
        kid.cancel()
        try:
            await kid
        except perdure.ChildFailed as exc:
            return [exc.run_id, exc.cancelled]
        return ["finished"]

    async with app:
        handle = await app.start(impatient)
        assert await handle.result(timeout=10) == ["slow-kid", True]
        assert await app.handle("slow-kid").status() is perdure.RunStatus.CANCELLED
