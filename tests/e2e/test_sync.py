"""The synchronous surface, and processes that start and read runs without a worker."""

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


async def _parked(app: perdure.App, run_id: str) -> bool:
    rec = await app.backend.get_run(run_id)
    return rec is not None and rec.status is perdure.RunStatus.RUNNING and rec.owner is None


async def test_run_sync_from_a_plain_thread(app: perdure.App) -> None:
    @app.step()
    def double(x: int) -> int:
        return x * 2

    @app.workflow()
    async def twice(x: int) -> dict[str, int]:
        await perdure.sleep(0.05)
        return {"x": x, "doubled": await double(x)}

    def script() -> list[dict[str, int]]:
        try:
            first = app.run_sync(twice, 21, id="sync-1")
            # A second call in the same script starts a fresh worker for its run.
            return [first, app.run_sync(twice, 5)]
        finally:
            app.close_sync()

    assert await asyncio.to_thread(script) == [{"x": 21, "doubled": 42}, {"x": 5, "doubled": 10}]
    # run_sync's worker stopped with it, yet the run's record stays readable.
    assert await app.handle("sync-1").status() is perdure.RunStatus.COMPLETED


async def test_run_sync_raises_the_run_failure(app: perdure.App) -> None:
    @app.workflow()
    async def broken() -> None:
        raise ValueError("bad input")

    def script() -> None:
        try:
            app.run_sync(broken)
        finally:
            app.close_sync()

    with pytest.raises(perdure.RunFailed) as caught:
        await asyncio.to_thread(script)
    assert caught.value.error.type == "ValueError"
    assert caught.value.error.message == "bad input"


async def test_start_sync_with_a_worker_elsewhere(app: perdure.App) -> None:
    @app.workflow()
    async def greeter(name: str) -> str:
        perdure.set_event("waiting", True)
        word = await perdure.receive("word")
        return f"{word}, {name}"

    @app.workflow()
    async def forever() -> None:
        await perdure.receive("never")

    def client() -> tuple[str, Any, bool, bool, perdure.RunStatus]:
        handle = app.start_sync(greeter, "Ada", id="greet-1")
        ready = handle.get_event("waiting", timeout=10)
        handle.send("word", "Hello")
        greeting = handle.result(timeout=10)
        again = app.handle_sync("greet-1").result(timeout=10)
        assert again == greeting

        stuck = app.start_sync(forever, id="forever-1")
        first = stuck.cancel("no longer needed")
        second = stuck.cancel("again")
        with pytest.raises(perdure.RunCancelled) as caught:
            stuck.result(timeout=10)
        assert "no longer needed" in caught.value.error.message
        return greeting, ready, first, second, stuck.status()

    # The worker runs on this test's loop; the client calls from another thread.
    try:
        async with app:
            greeting, ready, first, second, status = await asyncio.to_thread(client)
    finally:
        await asyncio.to_thread(app.close_sync)
    assert greeting == "Hello, Ada"
    assert ready is True
    assert (first, second) == (True, False)
    assert status is perdure.RunStatus.CANCELLED


async def test_handle_sync_mirrors_the_async_handle(app: perdure.App) -> None:
    @app.workflow()
    async def echo() -> Any:
        return await perdure.receive()

    def client(handle: perdure.Handle[Any]) -> tuple[perdure.RunInfo, Any]:
        sync = handle.sync
        assert sync.id == "echo-1"
        assert sync.send(None, [1, 2, 3]) is True
        return sync.info(), sync.result(timeout=10)

    try:
        async with app:
            handle = await app.start(echo, id="echo-1")
            info, result = await asyncio.to_thread(client, handle)
    finally:
        await asyncio.to_thread(app.close_sync)
    assert result == [1, 2, 3]
    assert info.id == "echo-1"
    assert info.workflow == "echo"


async def test_a_process_without_a_worker_starts_and_reads_runs(
    app: perdure.App, backend_name: str, make_app: Callable[..., perdure.App]
) -> None:
    if backend_name == "memory":
        pytest.skip("memory:// lives in one App; a second App cannot see its runs")
    ran: list[str] = []

    def register(target: perdure.App) -> perdure.WorkflowFunction[[str], str]:
        @target.workflow(name="shout")
        async def shout(text: str) -> str:
            ran.append(text)
            suffix = await perdure.receive("suffix")
            return f"{text.upper()}{suffix}{await perdure.receive('more')}"

        return shout

    wf = register(app)
    handle = await app.start(wf, "hi", id="shout-1")  # no worker anywhere yet
    # Buffered in the file until some worker picks the run up.
    assert await handle.send("suffix", "!") is True
    await asyncio.sleep(0.2)
    assert await handle.status() is perdure.RunStatus.PENDING
    assert ran == []

    worker_app = make_app()
    register(worker_app)
    async with worker_app:
        await eventually(lambda: _parked(app, "shout-1"))
        # Neither the message nor the result passes through memory: the first App and
        # the worker's App only share the file.
        assert await handle.send("more", "?") is True
        assert await handle.result(timeout=10) == "HI!?"
    assert ran[0] == "hi"  # without the sticky cache the body also ran on replay
    info = await handle.info()
    assert info.status is perdure.RunStatus.COMPLETED
    assert [run.id async for run in app.list_runs(status="completed")] == ["shout-1"]
