"""Testing: the workflows under test (a reminder that waits a week)."""

from datetime import timedelta

import perdure

app = perdure.App()


@app.step(retry=perdure.Retry(max_attempts=3, initial_interval=timedelta(minutes=5)))
async def send_email(to: str, text: str) -> str:
    raise ConnectionError("no mail server in this example; tests replace this step")


@app.workflow()
async def remind(user: str) -> str:
    await perdure.sleep(timedelta(days=7))
    await send_email(user, "Still there?")
    answer = await perdure.receive("reply", timeout=timedelta(days=2))
    if answer is None:
        await send_email(user, "We will close your account.")
        return "closed"
    return f"kept: {answer}"
