"""Guide: what callers and workflows see when something fails."""

import asyncio

import perdure

app = perdure.App()


class InvalidAddress(Exception):
    pass


@app.step()
async def validate(address: str) -> str:
    if not address:
        raise InvalidAddress("the address is empty")
    return address.upper()


@app.workflow()
async def ship(address: str) -> str:
    return await validate(address)  # a StepError not caught here fails the run


@app.workflow()
async def ship_or_hold(address: str) -> str:
    try:
        return await validate(address)
    except perdure.StepError as err:  # the step failed for good
        return f"held: {err.error.type} ({err.error.message})"


@app.workflow()
async def ship_many(addresses: list[str]) -> list[str]:
    out = []
    for address in addresses:
        try:
            out.append(await (await perdure.start_child(ship, address)))
        except perdure.ChildFailed as err:
            out.append(f"{err.run_id} failed: {err.error.message}")
    return out


async def main() -> None:
    async with app:
        handle = await app.start(ship, "")
        try:
            await handle.result(timeout=10)
        except perdure.RunFailed as err:
            info = err.error  # an ErrorInfo: type, message, traceback (all strings)
            print(info.type, "|", info.message)
            print(info.traceback.strip().splitlines()[-1])
        print((await handle.info()).error)  # the same ErrorInfo, from the run's record

        print(await (await app.start(ship_or_hold, "")).result(timeout=10))
        print(await (await app.start(ship_many, ["1 Main St", ""], id="many")).result(timeout=10))

        try:
            await app.start(ship_or_hold, "x", id="many")  # "many" is a ship_many run
        except perdure.RunConflict as err:
            print(err)
        try:
            await app.handle("no-such-run").status()
        except perdure.RunNotFound as err:
            print(err)


if __name__ == "__main__":
    asyncio.run(main())
