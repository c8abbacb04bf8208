"""Guarantees: give external APIs the step's idempotency key."""

import asyncio

import perdure

app = perdure.App()


class PaymentProvider:
    """Stands in for an API that deduplicates requests by an idempotency key."""

    def __init__(self) -> None:
        self.charges: dict[str, str] = {}
        self.calls = 0

    def charge(self, cents: int, idempotency_key: str) -> str:
        self.calls += 1
        if idempotency_key not in self.charges:
            self.charges[idempotency_key] = f"ch_{len(self.charges) + 1}"
        return self.charges[idempotency_key]


provider = PaymentProvider()


@app.step(retry=perdure.Retry(max_attempts=3, initial_interval=0.05))
async def charge(cents: int) -> str:
    step = perdure.info()
    # The key is the same for every attempt of this step in this run, and for a
    # re-run after a crash: run id, generation and the step's position.
    charge_id = provider.charge(cents, idempotency_key=step.idempotency_key)
    if step.attempt == 1:
        raise ConnectionError("the response was lost on the way back")
    return charge_id


@app.workflow()
async def pay(cents: int) -> str:
    return await charge(cents)


async def main() -> None:
    async with app:
        handle = await app.start(pay, 1999, id="invoice-7")
        print(await handle.result(timeout=10))
    print(f"{provider.calls} calls, {len(provider.charges)} charge")


if __name__ == "__main__":
    asyncio.run(main())
