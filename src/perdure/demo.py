"""``perdure demo``: an order workflow on the embedded SQLite default.

It charges a card, waits durably, fans out to three warehouses at once, and ships;
every step is checkpointed, so the same order id never charges twice, even across
runs of the demo.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import perdure

app = perdure.App("sqlite:///perdure-demo.db")
_t0 = time.monotonic()


def _say(text: str) -> None:
    print(f"  [{time.monotonic() - _t0:5.2f}s] {text}", flush=True)


@app.step(retry=perdure.Retry(max_attempts=3, initial_interval=0.2))
async def charge(order_id: str, cents: int) -> str:
    info = perdure.info()
    _say(f"charging {cents / 100:.2f} for {order_id} (attempt {info.attempt})")  # type: ignore[union-attr]
    if info.attempt == 1:  # type: ignore[union-attr]
        raise ConnectionError("payment gateway timed out")  # retried on a durable timer
    await asyncio.sleep(0.05)
    return f"rcpt-{order_id}"


@app.step()
async def reserve(warehouse: str, order_id: str) -> str:
    _say(f"reserving stock in {warehouse}")
    await asyncio.sleep(0.1)
    return f"{warehouse}:ok"


@app.step()
def ship(order_id: str, reservations: list[str]) -> str:  # sync steps run on a thread
    _say(f"shipping {order_id} from {len(reservations)} warehouses")
    return f"track-{order_id[:6]}"


@app.workflow()
async def checkout(order_id: str, cents: int) -> dict[str, object]:
    receipt = await charge(order_id, cents)
    perdure.set_event("stage", "charged")
    await perdure.sleep(timedelta(seconds=0.5))  # a durable timer
    reservations = await asyncio.gather(*(reserve(w, order_id) for w in ("north", "south", "east")))
    tracking = await ship(order_id, list(reservations))
    return {"receipt": receipt, "reservations": reservations, "tracking": tracking}


async def _run() -> int:
    order_id = f"order-{uuid.uuid4().hex[:8]}"
    print(f"perdure demo: running workflow 'checkout' for {order_id} on {app.backend.url}")
    async with app:
        handle = await app.start(checkout, order_id, 1999, id=order_id)
        result = await handle.result(timeout=30)
        info = await handle.info()
        print(f"result: {result}")
        print(
            f"status: {info.status.value}; {info.journal_len} journal entries recorded; "
            f"same id again returns the recorded result without re-running:"
        )
        again = await app.start(checkout, order_id, 1999, id=order_id)
        print(f"again:  {await again.result()}")
    return 0


def main(database: str | None = None) -> int:
    if database:
        app.use_database(database)
    return asyncio.run(_run())
