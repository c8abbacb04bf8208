"""Guide: keep a long-lived run's history short with continue_as_new."""

import asyncio

import perdure

app = perdure.App()

ROWS = list(range(1, 48))  # stands in for a table to process in pages


@app.step()
async def fetch_page(after: int, size: int) -> list[int]:
    return [row for row in ROWS if row > after][:size]


@app.step()
async def process(rows: list[int]) -> int:
    return sum(rows)


@app.workflow()
async def backfill(after: int = 0, total: int = 0) -> dict[str, int]:
    for _ in range(3):  # three pages per generation keeps the journal small
        rows = await fetch_page(after, 5)
        if not rows:
            return {"total": total, "generation": perdure.info().generation}
        total += await process(rows)
        after = rows[-1]
    # Same run id, fresh journal, new arguments; messages not yet received carry over.
    perdure.continue_as_new(after, total)


async def main() -> None:
    async with app:
        handle = await app.start(backfill, id="backfill-orders")
        print(await handle.result(timeout=30))
        info = await handle.info()
        print(f"generation {info.generation}, {info.journal_len} journal entries")


if __name__ == "__main__":
    asyncio.run(main())
