"""Messages into runs (send / receive) and events out of them (set_event / get_event)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import perdure


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


async def parked(app: perdure.App, run_id: str) -> bool:
    """The run has started and waits with no worker holding it."""
    rec = await app.backend.get_run(run_id)
    return rec is not None and rec.status is perdure.RunStatus.RUNNING and rec.owner is None


async def test_message_with_an_idempotency_key_is_delivered_once(app: perdure.App) -> None:
    @app.workflow()
    async def inbox() -> list[Any]:
        first = await perdure.receive("orders")
        perdure.set_event("first", first)
        # A duplicate would arrive well within this window: delivery is immediate.
        second = await perdure.receive("orders", timeout=0.5)
        return [first, second]

    async with app:
        handle = await app.start(inbox)
        assert await handle.send("orders", {"n": 1}, key="order-1") is True
        assert await handle.send("orders", {"n": 1}, key="order-1") is False
        assert await handle.get_event("first", timeout=10) == {"n": 1}
        # The key stays taken after the message was consumed.
        assert await handle.send("orders", {"n": 1}, key="order-1") is False
        assert await handle.result(timeout=10) == [{"n": 1}, None]


async def test_an_idempotency_key_belongs_to_one_run(app: perdure.App) -> None:
    @app.workflow()
    async def inbox() -> Any:
        return await perdure.receive("orders")

    async with app:
        first = await app.start(inbox)
        second = await app.start(inbox)
        assert await first.send("orders", "a", key="shared") is True
        assert await second.send("orders", "b", key="shared") is True
        assert await first.result(timeout=10) == "a"
        assert await second.result(timeout=10) == "b"


async def test_messages_without_a_key_are_all_delivered(app: perdure.App) -> None:
    @app.workflow()
    async def inbox() -> list[Any]:
        return [await perdure.receive("orders"), await perdure.receive("orders")]

    async with app:
        handle = await app.start(inbox)
        assert await handle.send("orders", "same") is True
        assert await handle.send("orders", "same") is True
        assert await handle.result(timeout=10) == ["same", "same"]


async def test_receive_picks_messages_by_topic_in_order(app: perdure.App) -> None:
    @app.workflow()
    async def sorter() -> list[Any]:
        tagged = await perdure.receive("T")
        return [tagged, await perdure.receive(), await perdure.receive()]

    # Every message is in the inbox before any worker looks at the run.
    handle = await app.start(sorter)
    await handle.send(None, "t1")
    await handle.send("T", "t2")
    await handle.send(None, "t3")
    assert await handle.status() is perdure.RunStatus.PENDING
    async with app:
        assert await handle.result(timeout=10) == ["t2", "t1", "t3"]


async def test_receive_on_a_topic_skips_other_topics_while_waiting(app: perdure.App) -> None:
    @app.workflow()
    async def sorter() -> list[Any]:
        tagged = await perdure.receive("T")
        return [tagged, await perdure.receive(), await perdure.receive()]

    async with app:
        handle = await app.start(sorter)
        await eventually(lambda: parked(app, handle.id))
        await handle.send(None, "t1")  # arrives while the run waits on "T"
        await asyncio.sleep(0.1)
        assert await handle.status() is perdure.RunStatus.RUNNING
        await handle.send("T", "t2")
        await handle.send(None, "t3")
        assert await handle.result(timeout=10) == ["t2", "t1", "t3"]


async def test_message_sent_before_receive_is_buffered(app: perdure.App) -> None:
    gate = asyncio.Event()
    busy = asyncio.Event()

    @app.step()
    async def slow_work() -> str:
        busy.set()
        await gate.wait()
        return "worked"

    @app.workflow()
    async def later() -> list[Any]:
        done = await slow_work()
        return [done, await perdure.receive("reply")]

    async with app:
        handle = await app.start(later)
        async with asyncio.timeout(10):
            await busy.wait()
        # The workflow is inside the step, nowhere near receive().
        assert await handle.send("reply", "early bird") is True
        gate.set()
        assert await handle.result(timeout=10) == ["worked", "early bird"]


async def test_receive_timeout_returns_none_when_nothing_arrives(app: perdure.App) -> None:
    @app.workflow()
    async def wait_a_bit() -> list[Any]:
        got = await perdure.receive("never", timeout=0.2)
        return [got, "after"]

    async with app:
        handle = await app.start(wait_a_bit)
        assert await handle.result(timeout=10) == [None, "after"]


async def test_receive_timeout_returns_a_message_that_arrives_in_time(app: perdure.App) -> None:
    @app.workflow()
    async def wait_a_bit() -> Any:
        return await perdure.receive("reply", timeout=30)

    async with app:
        handle = await app.start(wait_a_bit)
        await eventually(lambda: parked(app, handle.id))
        await handle.send("reply", {"ok": True})
        assert await handle.result(timeout=10) == {"ok": True}


async def test_message_to_an_unknown_run_is_an_error(app: perdure.App) -> None:
    async with app:
        with pytest.raises(perdure.RunNotFound):
            await app.handle("nobody").send("t", "hello")
        with pytest.raises(perdure.RunNotFound):
            await app.handle("nobody").get_event("k")


async def test_unserializable_message_is_refused_and_not_delivered(app: perdure.App) -> None:
    @app.workflow()
    async def inbox() -> list[Any]:
        return [await perdure.receive("t", timeout=0.3), await perdure.receive("t")]

    async with app:
        handle = await app.start(inbox)
        with pytest.raises(perdure.SerializationError):
            await handle.send("t", {"handle": object()})
        # Only a message sent after the first receive gave up arrives, so a refused
        # message that leaked into the inbox would show up as the first value.
        await eventually(lambda: _journal_has_timer(app, handle.id))
        await handle.send("t", "fine")
        assert await handle.result(timeout=10) == [None, "fine"]


async def _journal_has_timer(app: perdure.App, run_id: str) -> bool:
    return any(e.kind == "timer" for e in await app.backend.read_journal(run_id))


async def test_readers_see_the_last_event_and_never_change_the_run(app: perdure.App) -> None:
    @app.workflow()
    async def progress() -> str:
        perdure.set_event("stage", "v1")
        await perdure.sleep(0.05)
        perdure.set_event("stage", "v2")
        return str(await perdure.receive("finish"))

    async with app:
        handle = await app.start(progress)

        async def at_v2() -> bool:
            return bool(await handle.get_event("stage") == "v2")

        await eventually(at_v2)
        await eventually(lambda: parked(app, handle.id))
        before = await handle.info()
        journal = await app.backend.read_journal(handle.id)

        assert await handle.get_event("stage") == "v2"
        assert await handle.get_event("stage", timeout=1) == "v2"
        assert await handle.get_event("unknown", timeout=0.2) is None
        assert await handle.get_event("unknown") is None

        assert await handle.info() == before
        assert await app.backend.read_journal(handle.id) == journal
        await handle.send("finish", "done")
        assert await handle.result(timeout=10) == "done"
        assert await handle.get_event("stage") == "v2"  # still readable after the end


async def test_get_event_waits_for_a_value_to_be_set(app: perdure.App) -> None:
    @app.workflow()
    async def announce() -> None:
        await perdure.receive("go")
        perdure.set_event("ready", {"port": 8080})
        await perdure.receive("stop")

    async with app:
        handle = await app.start(announce)
        reader = asyncio.create_task(handle.get_event("ready", timeout=10))
        await eventually(lambda: parked(app, handle.id))
        assert not reader.done()
        await handle.send("go")
        assert await reader == {"port": 8080}
        await handle.send("stop")
        await handle.result(timeout=10)
