"""Queues: limits, priorities, keys, deduplication, and a step routed to a GPU queue."""

import asyncio
from datetime import timedelta

import perdure

app = perdure.App()

# At most 2 emails at once across every worker, one per customer at a time, and no
# more than 10 a second (the mail provider's limit).
emails = app.queue(
    "emails", concurrency=2, per_key=1, rate=perdure.Rate(10, per=timedelta(seconds=1))
)
# Rendering runs only on workers that serve "gpu", one at a time per worker.
gpu = app.queue("gpu", per_worker=1)

sent: list[str] = []


@app.step()
async def send(customer: str, subject: str) -> None:
    sent.append(f"{subject} -> {customer}")


@app.workflow(queue=emails)
async def email(customer: str, subject: str) -> str:
    await send(customer, subject)
    return subject


@app.step(queue=gpu)
async def render(scene: str) -> str:
    return f"frame of {scene}"


@app.workflow()
async def film(scene: str) -> str:
    # Runs on any worker; the step runs on a worker that serves "gpu".
    frame = await render(scene)
    return frame.upper()


async def main() -> None:
    # Started before any worker runs, so the queue sees them all waiting.
    await app.start(email, "ann", "monthly news", key="ann")
    await app.start(email, "bob", "monthly news", key="bob")
    await app.start(email, "ann", "password reset", key="ann", priority=10)
    await app.start(email, "cid", "welcome", key="cid", dedup_key="welcome:cid")
    try:
        await app.start(email, "cid", "welcome", key="cid", dedup_key="welcome:cid")
    except perdure.RunDeduplicated as exc:
        print(f"refused: {exc.dedup_key} is held by another run")

    handle = await app.start(film, "sunset")
    # One worker for the ordinary queues, one for the GPU queue (another machine,
    # in real life: perdure worker app:app --queues gpu).
    async with app.worker(queues=["default", "emails"]), app.worker(queues=["gpu"]):
        print(await handle.result(timeout=30))
        async for run in app.list_runs(workflow="email"):
            await app.handle(run.id).result(timeout=30)
    print("ann got:", [line for line in sent if line.endswith("ann")])
    print("runs for ann:", len([r async for r in app.list_runs(key="ann")]))
    await app.close()


if __name__ == "__main__":
    asyncio.run(main())
