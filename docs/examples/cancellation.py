"""Guide: cancelling a run, cleaning up, and workflow timeouts."""

import asyncio

import perdure

app = perdure.App()


@app.step()
async def book_room(guest: str) -> str:
    return f"room for {guest}"


@app.step()
async def release_room(booking: str) -> None:
    print(f"released {booking}")


@app.workflow()
async def stay(guest: str) -> str:
    booking = await book_room(guest)
    perdure.set_event("booking", booking)
    try:
        await perdure.receive("check-in")  # waits until a message or a cancel
    except asyncio.CancelledError:
        await release_room(booking)  # cleanup steps still run and are recorded
        raise  # end the run as cancelled
    return f"{guest} checked in"


@app.workflow(timeout=0.5)  # cancel runs still going after half a second
async def hold_seat(seat: str) -> str:
    await perdure.receive("payment")
    return f"{seat} paid"


async def main() -> None:
    async with app:
        handle = await app.start(stay, "ada")
        print(await handle.get_event("booking", timeout=10))
        print("cancel accepted:", await handle.cancel("guest called off the trip"))
        try:
            await handle.result(timeout=10)
        except perdure.RunCancelled as err:
            print("cancelled:", err.error.message)
        print(await handle.status())

        seat = await app.start(hold_seat, "12A")
        try:
            await seat.result(timeout=10)
        except perdure.RunCancelled as err:
            print("timed out:", err.error.message)


if __name__ == "__main__":
    asyncio.run(main())
