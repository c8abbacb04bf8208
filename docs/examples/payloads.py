"""Guide: what can be passed in and out of runs, and a custom codec."""

import asyncio
import dataclasses
import enum
import uuid
import zlib
from datetime import datetime, timedelta
from typing import Any

import pydantic

import perdure


class Size(enum.Enum):
    SMALL = "s"
    LARGE = "l"


@dataclasses.dataclass
class Item:
    sku: str
    size: Size


class Order(pydantic.BaseModel):
    id: uuid.UUID
    placed: datetime
    items: list[Item]


@dataclasses.dataclass
class Label:
    png: bytes  # stored as base64


@dataclasses.dataclass
class Shipment:
    order: uuid.UUID
    deliver_by: datetime
    large: list[Item]
    label: Label
    note: Any


class Zlib:
    """A Codec: bytes in, bytes out. An encrypting codec has the same shape."""

    def encode(self, data: bytes) -> bytes:
        return zlib.compress(data)

    def decode(self, data: bytes) -> bytes:
        return zlib.decompress(data)


app = perdure.App(codec=Zlib())  # inputs, results, messages and events pass through it


@app.step()
async def render_label(order: Order) -> Label:
    return Label(png=b"\x89PNG\r\n" + order.id.bytes)


@app.workflow()
async def fulfil(order: Order, window: timedelta) -> Shipment:
    label = await render_label(order)  # a Label again, from the step's annotation
    note = await perdure.receive("note")  # messages arrive as plain JSON
    return Shipment(
        order=order.id,
        deliver_by=order.placed + window,
        large=[item for item in order.items if item.size is Size.LARGE],
        label=label,
        note=note,
    )


async def main() -> None:
    order = Order(
        id=uuid.UUID(int=1),
        placed=datetime(2026, 5, 1, 12, 0),
        items=[Item("mug", Size.SMALL), Item("rug", Size.LARGE)],
    )
    async with app:
        handle = await app.start(fulfil, order, timedelta(days=2))
        await handle.send("note", Item("gift-wrap", Size.SMALL))
        shipment = await handle.result(timeout=10)  # a Shipment, from the return annotation
        print(shipment.deliver_by, shipment.large, shipment.label.png[:4])
        print(shipment.note)
        try:
            await app.start(fulfil, object(), timedelta(days=2))
        except perdure.SerializationError as err:
            print("refused:", err)


if __name__ == "__main__":
    asyncio.run(main())
