"""Schedules: a workflow on a cron, declared in code and operated at run time."""

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import perdure
from perdure.schedules import InvalidSchedule

app = perdure.App()
PARIS = ZoneInfo("Europe/Paris")


@app.workflow()
async def report(region: str, scheduled_at: datetime) -> str:
    # scheduled_at is the slot's time (UTC), not the time the run happened to start.
    return f"{region} report for {scheduled_at.astimezone(PARIS):%a %d %b %H:%M}"


# Created, or updated to this spec, when a worker of the app starts.
app.schedule(
    report,
    cron="0 9 * * mon-fri",
    tz="Europe/Paris",
    id="eu-report",
    args=["eu"],
    catch_up=2,
)


async def main() -> None:
    async with app:  # a worker: it keeps every schedule firing
        info = await app.schedules.get("eu-report")
        print(info.id, info.workflow, info.cron, info.tz)

        # Run the slots of a past week that never ran; a second backfill starts nothing new.
        week = (datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 9, 23, tzinfo=UTC))
        started = await app.schedules.backfill("eu-report", *week)
        print(started[0], f"and {len(started) - 1} more")
        print(await app.handle(started[0]).result(timeout=30))
        print("again:", await app.schedules.backfill("eu-report", *week) == started)

        # At run time: create, trigger, pause, list, delete.
        await app.schedules.create(
            report, cron="@every 10m", id="us-often", args=["us"], overlap="skip"
        )
        # Now, outside the cron (or, with at=, for a given slot time).
        handle = await app.schedules.trigger(
            "us-often", at=datetime(2026, 1, 5, 18, 30, tzinfo=UTC)
        )
        print(handle.id, "->", await handle.result(timeout=30))
        await app.schedules.pause("us-often")
        print([(s.id, s.paused) for s in await app.schedules.list()])
        await app.schedules.delete("us-often")

        try:
            await app.schedules.create(report, cron="0 9 * * mon-fry", args=["x"])
        except InvalidSchedule as exc:
            print(str(exc).split(":")[0])


if __name__ == "__main__":
    asyncio.run(main())
