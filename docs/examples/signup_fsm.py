"""A signup as a state machine: a step per status, a callback, a timeout, hooks."""

import asyncio
import enum
from datetime import timedelta

import pydantic

import perdure

app = perdure.App()


class Status(enum.IntEnum):
    CREATED = 1
    VERIFIED = 2
    CHARGED = 3
    DONE = 4
    REJECTED = 5


class Account(pydantic.BaseModel):
    email: str
    verified: bool = False
    paid_cents: int = 0
    reminders: int = 0


signup = app.state_machine("signup", Status, record=Account)


@signup.step(Status.CREATED, to=[Status.VERIFIED, Status.REJECTED], parallel=4)
async def verify(r: perdure.Record[Account]) -> Status:
    if r.data.email.endswith("@spam.example"):
        return Status.REJECTED
    r.data.verified = True
    return Status.VERIFIED


async def on_payment(r: perdure.Record[Account], cents: int) -> Status:
    r.data.paid_cents += cents
    return Status.CHARGED


signup.callback(Status.VERIFIED, on_payment, to=[Status.CHARGED])
signup.timeout(Status.VERIFIED, after=timedelta(minutes=10), to=Status.REJECTED)


@signup.step(Status.CHARGED, to=[Status.DONE])
async def send_receipts(r: perdure.Record[Account]) -> Status | perdure.Outcome:
    r.data.reminders += 1  # one receipt per round, saved each round
    return r.repeat() if r.data.reminders < 3 else Status.DONE


@signup.on_complete
async def announce(r: perdure.Record[Account]) -> None:
    print(f"{r.key} ended in {r.status.name}")


async def main() -> None:
    print(signup.mermaid(), end="")
    async with app:
        run = await signup.trigger("user-42", Account(email="ann@example.com"))
        await signup.await_status("user-42", run.id, Status.VERIFIED, timeout=30)
        try:
            await signup.trigger("user-42", Account(email="ann@example.com"))
        except perdure.MachineRunActive:
            print("user-42 already has an active run")
        await signup.callback_for("user-42", Status.VERIFIED, 1999)
        done = await signup.await_status("user-42", run.id, Status.DONE, timeout=30)
        await run.result(timeout=30)  # the run ends once its on_complete hook has run
        print(done)

        spam = await signup.trigger("user-43", Account(email="bot@spam.example"))
        await spam.result(timeout=30)
        print("user-43:", (await signup.get("user-43")).status.name)


if __name__ == "__main__":
    asyncio.run(main())
