"""The first things a user does: define, start, await, start again by id."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime

import pytest

import perdure


@dataclasses.dataclass
class Order:
    id: str
    cents: int
    placed: datetime


async def test_steps_results_are_typed_and_recorded(app: perdure.App) -> None:
    calls: list[str] = []

    @app.step()
    async def price(order: Order) -> int:
        calls.append("price")
        return order.cents * 2

    @app.step()
    def label(cents: int) -> str:  # sync steps run on a thread
        calls.append("label")
        return f"{cents} cents"

    @app.workflow()
    async def checkout(order: Order) -> dict[str, object]:
        doubled = await price(order)
        text = await label(doubled)
        return {"doubled": doubled, "text": text, "order": order}

    order = Order("o-1", 150, datetime(2026, 1, 2, 3, 4, 5))
    async with app:
        handle = await app.start(checkout, order, id="o-1")
        result = await handle.result(timeout=10)
        assert result["doubled"] == 300
        assert result["text"] == "300 cents"
        assert calls == ["price", "label"]
        assert await handle.status() is perdure.RunStatus.COMPLETED
        again = await app.start(checkout, order, id="o-1")
        assert again.id == "o-1"
        assert await again.result(timeout=10) == result
        assert calls == ["price", "label"]  # the same id never runs twice


async def test_gather_of_steps(app: perdure.App) -> None:
    @app.step()
    async def square(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * x

    @app.workflow()
    async def squares(n: int) -> int:
        return sum(await asyncio.gather(*(square(i) for i in range(n))))

    async with app:
        handle = await app.start(squares, 20)
        assert await handle.result(timeout=10) == sum(i * i for i in range(20))


async def test_failure_carries_type_message_and_traceback(app: perdure.App) -> None:
    class OutOfStock(Exception):
        pass

    @app.step()
    async def reserve() -> None:
        raise OutOfStock("no widgets left")

    @app.workflow()
    async def order() -> None:
        await reserve()

    async with app:
        handle = await app.start(order)
        with pytest.raises(perdure.RunFailed) as caught:
            await handle.result(timeout=10)
    assert caught.value.error.type.endswith("OutOfStock")
    assert caught.value.error.message == "no widgets left"
    assert "raise OutOfStock" in caught.value.error.traceback
