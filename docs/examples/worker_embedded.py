"""Guide: a worker inside an asyncio application, with options."""

import asyncio

from welcome import app, onboard


async def main() -> None:
    # In a web server, enter this in the startup hook and leave it at shutdown.
    async with app.worker(concurrency=100, threads=8, sticky_cache=True):
        handle = await app.start(onboard, "barbara@example.com", id="onboard-barbara")
        print("result:", await handle.result(timeout=60))
    await app.close()


if __name__ == "__main__":
    asyncio.run(main())
