"""The README example, started from a process that runs no worker."""

import asyncio

from shop import app, checkout


async def main() -> None:
    handle = await app.start(checkout, "o-2", 2500, id="order-o-2")
    await handle.send("approval", True)
    print(await handle.result(timeout=30))  # a worker process runs it
    await app.close()


if __name__ == "__main__":
    asyncio.run(main())
