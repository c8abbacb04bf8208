"""Guide: steps, retries, timeouts, and what a workflow sees when a step fails."""

import asyncio
from datetime import timedelta

import perdure

app = perdure.App()


class CardDeclined(Exception):
    pass


class OutOfStock(perdure.NonRetryableError):  # never retried, whatever the policy
    pass


@app.step(
    retry=perdure.Retry(
        max_attempts=5,  # the first attempt and up to four retries
        initial_interval=0.1,  # seconds (or a timedelta) before the first retry
        backoff=2.0,  # each wait doubles: 0.1, 0.2, 0.4, ...
        max_interval=timedelta(minutes=1),  # ... but never exceeds this
        non_retryable=(CardDeclined,),  # these fail the step at once
    ),
    timeout=timedelta(seconds=10),  # bounds each attempt
)
async def exchange_rate(currency: str) -> float:
    attempt = perdure.info().attempt  # 1, 2, 3, ...
    if attempt < 3:
        raise ConnectionError(f"rate service unavailable (attempt {attempt})")
    return 1.25


@app.step(retry=perdure.Retry(max_attempts=5, non_retryable=(CardDeclined,)))
async def charge(cents: int) -> str:
    raise CardDeclined(f"card declined for {cents} cents")


@app.step(retry=perdure.Retry(max_attempts=3, initial_interval=0.05))
async def reserve(sku: str) -> str:
    raise OutOfStock(f"no {sku} left")


@app.step(timeout=0.2)
async def slow_report() -> str:
    await asyncio.sleep(10)
    return "never"


@app.step()
def parse_total(text: str) -> int:  # sync: runs on the worker's thread pool
    return int(text.removeprefix("total="))


@app.workflow()
async def order(cents: int) -> list[str]:
    lines = [f"rate {await exchange_rate('EUR')}"]
    try:
        await charge(cents)
    except perdure.StepError as err:
        lines.append(f"{err.step} failed after {err.attempts} attempt(s): {err.error}")
    try:
        await reserve("widget")
    except perdure.StepError as err:
        lines.append(f"{err.step} failed after {err.attempts} attempt(s): {err.error}")
    try:
        await slow_report()
    except perdure.StepError as err:
        lines.append(f"{err.step} failed: {err.error.message}")
    lines.append(f"total {await parse_total('total=1999')}")
    return lines


async def main() -> None:
    async with app:
        handle = await app.start(order, 1999)
        for line in await handle.result(timeout=30):
            print(line)


if __name__ == "__main__":
    asyncio.run(main())
