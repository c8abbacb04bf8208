"""Guide: durable sleep, messages in (with topics and idempotency keys), events out."""

import asyncio
from datetime import timedelta

import perdure

app = perdure.App()


@app.workflow()
async def expense(amount: int) -> dict[str, object]:
    perdure.set_event("status", "waiting for approval")
    decision = await perdure.receive("decision", timeout=timedelta(hours=48))
    if decision is None:  # the timeout passed first
        perdure.set_event("status", "expired")
        return {"approved": False, "comments": []}
    perdure.set_event("status", f"decided: {decision}")
    comments = []
    # Take the comments that arrived; stop when none comes for half a second.
    while (comment := await perdure.receive("comment", timeout=0.5)) is not None:
        comments.append(comment)
    await perdure.sleep(timedelta(seconds=0.2))  # durable: no thread or memory held
    return {"approved": decision == "approve", "comments": comments}


async def main() -> None:
    async with app:
        handle = await app.start(expense, 120)
        print(await handle.get_event("status", timeout=10))
        # Messages are buffered until the run receives them, in the order sent.
        await handle.send("comment", "receipt attached", key="comment-1")
        await handle.send("comment", "receipt attached", key="comment-1")  # ignored
        await handle.send("comment", "within budget", key="comment-2")
        print("sent:", await handle.send("decision", "approve", key="d-1"))  # True
        print("sent again:", await handle.send("decision", "approve", key="d-1"))  # False
        print(await handle.result(timeout=30))
        print(await handle.get_event("status"))
        print(await handle.get_event("no-such-key", timeout=0.1))  # None


if __name__ == "__main__":
    asyncio.run(main())
