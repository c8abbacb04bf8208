"""The README example: steps, a durable sleep, a message and a fan-out."""

import asyncio
from datetime import timedelta

import perdure

app = perdure.App()  # the SQLite file ./perdure.db, or $PERDURE_DATABASE_URL


@app.step(retry=perdure.Retry(max_attempts=5, initial_interval=0.5))
async def charge(order_id: str, cents: int) -> str:
    # Do real I/O in steps. Each result is recorded once; failures are retried.
    return f"receipt-{order_id}-{cents}"


@app.step()
def reserve(warehouse: str, order_id: str) -> str:  # a plain `def` step runs on a thread
    return f"{warehouse}:{order_id}"


@app.workflow()
async def checkout(order_id: str, cents: int) -> dict[str, object]:
    receipt = await charge(order_id, cents)
    perdure.set_event("stage", "charged")  # readable from outside the run
    await perdure.sleep(timedelta(seconds=0.5))  # a durable timer: it survives restarts
    approved = await perdure.receive("approval", timeout=timedelta(days=1))
    if not approved:
        return {"order": order_id, "status": "not approved"}
    stock = await asyncio.gather(*(reserve(w, order_id) for w in ("north", "south")))
    return {"order": order_id, "receipt": receipt, "stock": stock}


async def main() -> None:
    async with app:  # runs a worker inside this process, on this event loop
        handle = await app.start(checkout, "o-1", 1999, id="order-o-1")
        print(await handle.get_event("stage", timeout=10))
        await handle.send("approval", True)
        print(await handle.result(timeout=30))


if __name__ == "__main__":
    asyncio.run(main())
