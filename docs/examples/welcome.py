"""Quickstart: a first workflow, run by an embedded worker."""

import asyncio

import perdure

app = perdure.App()  # the SQLite file ./perdure.db, or $PERDURE_DATABASE_URL


@app.step()
async def create_account(email: str) -> int:
    print(f"creating an account for {email}")
    return 42  # a real step would insert a row and return its id


@app.step()
def send_email(email: str, subject: str) -> None:  # a plain `def` step runs on a thread
    print(f"sending {subject!r} to {email}")


@app.workflow()
async def onboard(email: str) -> int:
    user_id = await create_account(email)
    await send_email(email, "Welcome!")
    await perdure.sleep(1)  # in real life: timedelta(days=3)
    await send_email(email, "How is it going?")
    return user_id


async def main() -> None:
    async with app:
        handle = await app.start(onboard, "ada@example.com", id="onboard-ada")
        print("result:", await handle.result())


if __name__ == "__main__":
    asyncio.run(main())
