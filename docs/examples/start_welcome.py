"""Quickstart: start a run from a process that runs no worker."""

import asyncio

from welcome import app, onboard


async def main() -> None:
    handle = await app.start(onboard, "grace@example.com", id="onboard-grace")
    print("started", handle.id)
    print("result:", await handle.result(timeout=60))  # a worker process runs it
    await app.close()


if __name__ == "__main__":
    asyncio.run(main())
