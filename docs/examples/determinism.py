"""Guide: time, randomness and side effects in workflow code; versioning with patched()."""

import asyncio
import secrets
from datetime import datetime

import perdure

app = perdure.App()


def new_token() -> str:
    return secrets.token_hex(8)  # not deterministic: record it with side_effect


def started_at() -> datetime:  # annotated, so the recorded value comes back as a datetime
    return datetime.now()


@app.step()
async def send_invoice(customer: str, number: str) -> str:
    return f"invoice {number} sent to {customer}"


@app.step()
async def send_receipt(customer: str) -> str:
    return f"receipt sent to {customer}"


@app.workflow()
async def billing(customer: str) -> dict[str, object]:
    now = perdure.now()  # the run's time, the same on every replay
    number = f"INV-{perdure.uuid4().hex[:8]}"  # the same on every replay
    discount = perdure.random() < 0.1  # the same on every replay
    token = perdure.side_effect(new_token)  # run once, recorded, then replayed
    local = perdure.side_effect(started_at)
    lines = [await send_invoice(customer, number)]
    if perdure.patched("send-receipt"):
        # Added after runs were already in flight: those runs skip this branch
        # when they replay; runs that reach it with the new code take it.
        lines.append(await send_receipt(customer))
    return {
        "year": now.year,
        "discount": discount,
        "token_length": len(token),
        "local_is_datetime": isinstance(local, datetime),
        "lines": lines,
    }


async def main() -> None:
    async with app:
        handle = await app.start(billing, "ada")
        print(await handle.result(timeout=30))


if __name__ == "__main__":
    asyncio.run(main())
