"""Guide: asyncio inside workflows (gather, wait, wait_for, timeout, TaskGroup)."""

import asyncio

import perdure

app = perdure.App()


@app.step()
async def quote(supplier: str, delay: float) -> tuple[str, int]:
    await asyncio.sleep(delay)  # stands in for a slow API call
    return supplier, len(supplier) * 10


async def with_shipping(supplier: str) -> tuple[str, int]:
    # Plain coroutines may await steps; they become tasks of the workflow.
    name, price = await quote(supplier, 0.01)
    return name, price + 5


@app.workflow()
async def best_price() -> dict[str, object]:
    # gather: run steps at once, results in argument order.
    quotes = await asyncio.gather(quote("acme", 0.05), quote("globex", 0.01))

    # TaskGroup: tasks of steps, or of coroutines that call steps.
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(quote("initech", 0.01))]
        tasks.append(group.create_task(with_shipping("umbrella")))
    quotes += [task.result() for task in tasks]

    # wait: take whichever finishes first (step calls, or tasks).
    fast = quote("fast", 0.01)
    slow = quote("slow", 0.5)
    done, _ = await asyncio.wait([fast, slow], return_when=asyncio.FIRST_COMPLETED)
    first = done.pop().result()[0]
    slow.cancel()  # stop waiting for the other (a step already running still finishes)

    # wait_for and asyncio.timeout: their deadlines are durable timers.
    try:
        await asyncio.wait_for(quote("sluggish", 5), timeout=0.1)
    except TimeoutError:
        timed_out = "sluggish"
    try:
        async with asyncio.timeout(0.1):
            await perdure.receive("offer")
    except TimeoutError:
        no_offer = True

    return {
        "cheapest": min(quotes, key=lambda q: q[1]),
        "first": first,
        "timed_out": timed_out,
        "no_offer": no_offer,
    }


async def main() -> None:
    async with app:
        handle = await app.start(best_price)
        print(await handle.result(timeout=30))


if __name__ == "__main__":
    asyncio.run(main())
