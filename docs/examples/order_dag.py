"""DAGs: tasks with dependencies, retries, a failure handler, drawing and loading."""

import asyncio
import json
from datetime import timedelta

import perdure

app = perdure.App()

orders = app.dag("order-processing")
refunds: list[str] = []


@orders.task()
async def validate(order: dict) -> dict:
    if not order.get("items"):
        raise perdure.NonRetryableError("an order needs items")
    return order


# check_inventory and charge both run after validate only: they run at the same time.
@orders.task(after=[validate], retry=perdure.Retry(max_attempts=3))
async def check_inventory(validate: dict) -> int:
    return len(validate["items"])


@orders.task(after=[validate], on_failure=["refund"], timeout=timedelta(seconds=30))
async def charge(validate: dict) -> str:
    if validate["card"] == "declined":
        raise perdure.NonRetryableError("card declined")
    return f"charged {validate['total']}"


# Runs only if charge fails for good: it gets charge's error, and validate's result.
@orders.task()
async def refund(charge: perdure.ErrorInfo, validate: dict) -> None:
    refunds.append(f"order {validate['id']}: {charge.message}")


@orders.task(after=[check_inventory, charge])
async def ship(check_inventory: int, charge: str) -> str:
    return f"{check_inventory} items shipped, {charge}"


@app.step()
async def fetch(url: str) -> str:
    return f"<html>{url}</html>"


@app.step()
def count_bytes(fetch: str) -> int:
    return len(fetch)


# A definition stored as data names registered steps (or "module:function" paths).
crawl = perdure.Dag.load(
    app,
    {
        "name": "crawl",
        "tasks": [
            {"name": "fetch"},
            {"name": "size", "function": "count_bytes", "after": ["fetch"]},
        ],
    },
)


async def main() -> None:
    async with app:
        good = await app.start(orders, {"id": 1, "items": ["tea"], "card": "ok", "total": 5})
        print(await good.result(timeout=30))

        bad = await app.start(orders, {"id": 2, "items": ["tea"], "card": "declined", "total": 5})
        try:
            await bad.result(timeout=30)
        except perdure.RunFailed as exc:
            print(exc.error.message)
        print(refunds)
        print([(step.name, step.status) for step in await bad.steps()])

        try:
            await app.start(orders)
        except TypeError as exc:
            print(exc)

        print(await (await app.start(crawl, "example.org")).result(timeout=30))
    print(json.dumps(crawl.describe()["edges"]))
    print(orders.mermaid(), end="")


if __name__ == "__main__":
    asyncio.run(main())
