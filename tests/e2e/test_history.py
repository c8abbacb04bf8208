"""Inspecting a run: its steps with attempts, results and errors, and the lines its
code logged through ``perdure.logger``, kept with the run."""

from __future__ import annotations

import logging

import pytest

import perdure

FAST = perdure.Retry(max_attempts=3, initial_interval=0.01)


async def test_steps_show_attempts_results_errors_and_logs(app: perdure.App) -> None:
    calls = {"flaky": 0}

    @app.step(retry=FAST)
    async def flaky(x: int) -> dict[str, int]:
        calls["flaky"] += 1
        perdure.logger.info("attempt %d for %d", calls["flaky"], x)
        perdure.logger.debug("not kept: below INFO")
        if calls["flaky"] < 2:
            raise ConnectionError("try later")
        return {"x": x}

    @app.step()
    def broken() -> None:  # a thread step logs too
        perdure.logger.warning("about to fail")
        raise ValueError("no")

    @app.workflow()
    async def inspected(x: int) -> str:
        perdure.logger.info("starting with %d", x)
        await flaky(x)
        try:
            await broken()
        except perdure.StepError:
            perdure.logger.error("broken step, going on")
        return "done"

    async with app:
        handle = await app.start(inspected, 7, id="inspected")
        assert await handle.result(timeout=10) == "done"
        first, second = await handle.steps()

    assert (first.position, first.name, first.status) == (0, "flaky", "completed")
    assert first.input == {"args": [7], "kwargs": {}}
    assert all(a.started_at is not None and a.started_at <= a.finished_at for a in first.attempts)
    assert all(a.duration is not None and a.duration >= 0 for a in first.attempts)
    assert first.result == {"x": 7} and first.error is None
    assert [a.attempt for a in first.attempts] == [1, 2]
    assert first.attempts[0].error is not None
    assert first.attempts[0].error.message == "try later"
    assert first.attempts[1].error is None
    assert [line.message for line in first.attempts[0].logs] == ["attempt 1 for 7"]
    assert [line.message for line in first.attempts[1].logs] == ["attempt 2 for 7"]
    assert first.finished_at == first.attempts[1].finished_at

    assert (second.name, second.status, second.result) == ("broken", "failed", None)
    assert second.error is not None and second.error.type == "ValueError"
    assert [(line.level, line.message) for line in second.attempts[0].logs] == [
        ("WARNING", "about to fail")
    ]

    logs = await handle.logs()
    assert [(line.step, line.level, line.message) for line in logs] == [
        (None, "INFO", "starting with 7"),
        ("flaky", "INFO", "attempt 1 for 7"),
        ("flaky", "INFO", "attempt 2 for 7"),
        ("broken", "WARNING", "about to fail"),
        (None, "ERROR", "broken step, going on"),
    ]
    assert all(line.at.tzinfo is not None for line in logs)


async def test_a_replayed_workflow_does_not_store_its_lines_twice(
    app: perdure.App, caplog: pytest.LogCaptureFixture
) -> None:
    @app.step()
    async def nap() -> None:
        perdure.logger.info("napping")

    @app.workflow()
    async def talker() -> None:
        perdure.logger.info("before")
        await nap()
        await perdure.sleep(0.05)
        perdure.logger.info("after")

    caplog.set_level(logging.INFO, "perdure.run")
    async with app:
        handle = await app.start(talker, id="talker")
        await handle.result(timeout=10)
    assert [line.message for line in await handle.logs()] == ["before", "napping", "after"]


async def test_inspecting_an_unknown_run_raises(app: perdure.App) -> None:
    with pytest.raises(perdure.RunNotFound):
        await app.handle("missing").steps()
