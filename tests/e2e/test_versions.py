"""Runs pinned to a code version, the worker registry, and runs that say why no live
worker takes them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

import perdure
from perdure.worker import registry
from stores import SHARED

# Two deploys need a database they share: memory:// lives in one App.


def deploy(make_app: Callable[..., perdure.App], version: str | None, greeting: str) -> perdure.App:
    app = make_app(version=version)

    @app.workflow()
    async def greet(name: str) -> str:
        return f"{greeting}, {name}"

    return app


@pytest.mark.parametrize("backend_name", SHARED)
async def test_a_pinned_run_is_run_only_by_workers_of_its_version(
    make_app: Callable[..., perdure.App], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "OVERDUE", 0.0)
    v1 = deploy(make_app, "v1", "hello")
    v2 = deploy(make_app, "v2", "hi")
    old = await v1.start("greet", "ada", id="old")
    assert (await old.info()).version == "v1"
    async with v2:  # only a v2 worker is alive
        new = await v2.start("greet", "bob", id="new")
        assert await new.result(timeout=10) == "hi, bob"

        async def explained() -> str | None:
            return (await old.info()).waiting_for

        async with asyncio.timeout(10):
            while await explained() is None:
                await asyncio.sleep(0.05)
        reason = await explained()
        assert reason is not None and "pinned to version 'v1'" in reason and "'v2'" in reason
        listed = [run async for run in v2.list_runs(workflow="greet") if run.id == "old"]
        assert listed[0].waiting_for == reason
        assert await old.status() is perdure.RunStatus.PENDING
        [me] = await v2.workers()
        # Every worker also runs schedules' scheduler runs, whoever created them.
        served = ["greet", "perdure.schedule"]
        assert (me.version, me.workflows, me.pid) == ("v2", served, os.getpid())
    async with v1:  # the v1 deploy comes back and takes its run
        assert await old.result(timeout=10) == "hello, ada"
        assert (await old.info()).waiting_for is None
    await v1.close()
    await v2.close()


async def test_children_keep_their_parents_pin_and_workers_check_in_and_out(
    make_app: Callable[..., perdure.App],
) -> None:
    app = make_app(version="2")

    @app.workflow()
    async def child() -> str:
        return "child"

    @app.workflow()
    async def parent() -> str:
        kid = await perdure.start_child(child, id="pinned-child")
        return await kid

    async with app:
        handle = await app.start(parent, id="pinned-parent")
        assert await handle.result(timeout=10) == "child"
        assert (await app.handle("pinned-child").info()).version == "2"
        assert [w.version for w in await app.workers()] == ["2"]
    assert await app.workers() == []  # a stopped worker checks out


async def test_a_run_nobody_serves_says_so(
    make_app: Callable[..., perdure.App], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "OVERDUE", 0.0)
    app = make_app()

    @app.workflow()
    async def served() -> str:
        return "ok"

    handle = await app.start("served", id="nobody")
    assert (await handle.info()).waiting_for == "no worker is running on this database"
    async with app:
        assert await handle.result(timeout=10) == "ok"
    with pytest.raises(ValueError, match="version"):
        perdure.App("memory://", version="")
