"""Operating runs: retry from the failed step, fork, pause and resume, terminate,
list, and delete old runs."""

import asyncio
from datetime import timedelta

import perdure

app = perdure.App()
warehouse = {"open": False}


@app.step()
async def charge(item: str) -> str:
    print(f"charging for {item}")
    return f"paid {item}"


@app.step(retry=perdure.Retry(max_attempts=2, initial_interval=0.1))
async def reserve(item: str) -> str:
    perdure.logger.info("asking the warehouse for %s", item)  # kept with the run
    if not warehouse["open"]:
        raise RuntimeError("the warehouse is closed")
    return f"reserved {item}"


@app.workflow()
async def order(item: str) -> str:
    paid = await charge(item)  # position 0
    reserved = await reserve(item)  # position 1
    return f"{paid}, {reserved}"


@app.workflow()
async def approval(request: str) -> str:
    decision = await perdure.receive("decision")
    return await charge(f"{request} ({decision})")


@app.step()
async def render(post: str) -> str:
    return post.upper()


@app.workflow()
async def publish(post: str) -> str:
    page = await render(post)
    await perdure.pause_run(reason="an editor reviews every page")  # recorded once
    return f"published {page}"  # after an operator resumes the run


async def retry_and_fork() -> None:
    handle = await app.start(order, "lamp", id="order-1")
    try:
        await handle.result(timeout=10)
    except perdure.RunFailed as err:
        print("failed:", err.error.message)

    warehouse["open"] = True  # fix what stood in the way, then:
    await app.retry("order-1", "the warehouse reopened", by="ops")
    print(await handle.result(timeout=10))  # charge() did not run again

    for step in await handle.steps():
        tries = ", ".join(str(a.error or "ok") for a in step.attempts)
        print(f"{step.position} {step.name} {step.status}: {tries}")
    print(len(await handle.logs()), "lines logged")

    copy = await app.fork("order-1", from_step=1, id="order-1-again")
    print(await copy.result(timeout=10))  # reuses the charge, reserves again


async def pause_and_resume() -> None:
    handle = await app.start(approval, "laptop", id="approval-1")
    await handle.pause("budget freeze", by="finance")
    await handle.send("decision", "approved")
    await asyncio.sleep(0.5)
    print(await handle.status())  # still paused: the step has not started
    await handle.resume("budget approved", by="finance")
    print(await handle.result(timeout=10))


async def review() -> None:
    handle = await app.start(publish, "hello", id="post-1")
    while await handle.status() is not perdure.RunStatus.PAUSED:
        await asyncio.sleep(0.05)
    print(await handle.status())
    await handle.resume("approved", by="editor")
    print(await handle.result(timeout=10))


async def terminate() -> None:
    stuck = await app.start(approval, "chair", id="approval-2")
    await stuck.terminate("duplicate request", by="support")
    try:
        await stuck.result(timeout=10)
    except perdure.RunTerminated as err:
        print("terminated:", err.error.message)


async def list_and_clean_up() -> None:
    async for run in app.list_runs(status="completed"):
        print("completed:", run.id)
    deleted = await app.purge(older_than=timedelta(0))  # every run that has ended
    print("deleted", deleted, "runs")


async def main() -> None:
    async with app:
        await retry_and_fork()
        await pause_and_resume()
        await review()
        await terminate()
        await list_and_clean_up()


if __name__ == "__main__":
    asyncio.run(main())
