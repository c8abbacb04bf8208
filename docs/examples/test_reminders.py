"""Testing: a test file to copy. Run it with `pytest test_reminders.py`."""

from datetime import timedelta

import pytest
from reminders import app, remind, send_email

from perdure.testing import TestApp

pytestmark = pytest.mark.asyncio  # pytest-asyncio runs the async tests


async def test_an_unanswered_reminder_closes_the_account() -> None:
    sent: list[str] = []

    async def fake_send(to: str, text: str) -> str:
        sent.append(text)
        return "queued"

    async with TestApp(app) as env:
        env.mock(send_email, fake_send)
        handle = await env.start(remind, "ada@example.com")
        await env.advance(timedelta(days=6))
        assert sent == []  # still sleeping
        assert await env.result(handle) == "closed"  # skips the rest of the week, and 2 days
        assert sent == ["Still there?", "We will close your account."]


async def test_a_reply_keeps_the_account() -> None:
    async def fake_send(to: str, text: str) -> str:
        return "queued"

    async with TestApp(app) as env:
        env.mock(send_email, fake_send)
        handle = await env.start(remind, "ada@example.com")
        await env.advance(timedelta(days=7, hours=3))
        await env.send(handle, "reply", "yes please")
        assert await env.result(handle) == "kept: yes please"
        kinds = [entry.kind.value for entry in await env.journal(handle)]
        assert kinds == ["timer", "step", "signal"]


async def test_a_flaky_mail_server_is_retried_on_durable_timers() -> None:
    attempts: list[int] = []

    async def flaky_send(to: str, text: str) -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise ConnectionError("try again")
        return "queued"

    async with TestApp(app) as env:
        env.mock(send_email, flaky_send)
        handle = await env.start(remind, "ada@example.com")
        await env.advance(timedelta(days=7))
        assert attempts == [1]  # failed; the retry waits five (virtual) minutes
        await env.advance(timedelta(minutes=5))
        assert attempts == [1, 2]
        await env.send(handle, "reply", "ok")
        assert await env.result(handle) == "kept: ok"
