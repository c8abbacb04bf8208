"""Guide: logging from workflows and steps with perdure.logger."""

import asyncio
import logging

import perdure

app = perdure.App()


@app.step()
async def fetch(url: str) -> int:
    perdure.logger.info("fetching %s", url)  # records carry run_id, step and attempt
    return 200


@app.workflow()
async def crawl(urls: list[str]) -> list[int]:
    perdure.logger.info("crawling %d pages", len(urls))  # silent while the run replays
    return [await fetch(url) for url in urls]


class RunIds(logging.Filter):
    """Give every record a run_id field, so one format fits all loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = getattr(record, "run_id", "-")
        return True


async def main() -> None:
    async with app:
        handle = await app.start(crawl, ["https://example.com/a", "https://example.com/b"])
        print(await handle.result(timeout=10))


if __name__ == "__main__":
    handler = logging.StreamHandler()
    handler.addFilter(RunIds())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s [%(run_id)s] %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    asyncio.run(main())
