"""Guide: child workflows."""

import asyncio

import perdure

app = perdure.App()


@app.step()
async def resize(image: str, width: int) -> str:
    if width > 4000:
        raise ValueError(f"{width} px is too wide")
    return f"{image}@{width}"


@app.workflow()
async def thumbnail(image: str, width: int) -> str:
    return await resize(image, width)


@app.workflow()
async def waits_forever() -> None:
    await perdure.receive("never-sent")


@app.workflow()
async def publish(image: str) -> dict[str, object]:
    # Each child is a run of its own, with its own journal and id.
    small = await perdure.start_child(thumbnail, image, 200, id=f"{image}-small")
    large = await perdure.start_child(thumbnail, image, 1200)  # id: "<parent id>-<position>"
    sizes = await asyncio.gather(small, large)  # a ChildHandle is awaitable
    try:
        await (await perdure.start_child(thumbnail, image, 9000))
    except perdure.ChildFailed as err:
        failure = f"{err.run_id}: {err.error}"
    idle = await perdure.start_child(waits_forever)
    idle.cancel()  # ask the child to cancel; awaiting it now raises ChildFailed
    try:
        await idle
    except perdure.ChildFailed as err:
        cancelled = err.cancelled
    return {"sizes": sizes, "failure": failure, "cancelled": cancelled}


async def main() -> None:
    async with app:
        handle = await app.start(publish, "cat.png", id="publish-cat")
        print(await handle.result(timeout=30))
        async for child in app.list_runs(parent="publish-cat"):
            print(child.id, child.workflow, child.status.value)


if __name__ == "__main__":
    asyncio.run(main())
