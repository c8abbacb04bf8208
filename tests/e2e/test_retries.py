"""Step retries, non-retryable errors and step timeouts, as the workflow sees them."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import perdure

EPSILON = 0.01  # clock granularity; the delays themselves are never bounded above


def attempt_number() -> int:
    info = perdure.info()
    assert isinstance(info, perdure.StepInfo)
    return info.attempt


async def test_a_step_that_fails_then_succeeds_is_retried_with_backoff(app: perdure.App) -> None:
    policy = perdure.Retry(max_attempts=4, initial_interval=0.05, backoff=2, max_interval=0.1)
    attempts: list[tuple[int, float]] = []

    @app.step(retry=policy)
    async def flaky(payload: str) -> str:
        attempts.append((attempt_number(), time.time()))
        if len(attempts) < 4:
            raise ConnectionError(f"attempt {len(attempts)} lost the connection")
        return payload.upper()

    @app.workflow()
    async def send() -> str:
        result: str = await flaky("hello")
        await perdure.sleep(0.01)  # without the cache, the run is replayed after this
        return result

    async with app:
        handle = await app.start(send)
        assert await handle.result(timeout=10) == "HELLO"

    assert [n for n, _ in attempts] == [1, 2, 3, 4]
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(attempts)]
    # initial 0.05, doubled to 0.1, then capped at max_interval 0.1
    for gap, delay in zip(gaps, [0.05, 0.1, 0.1], strict=True):
        assert gap >= delay - EPSILON

    # Only the final outcome is delivered; failed attempts are kept apart in the journal.
    journal = await app.backend.read_journal(handle.id)
    steps = [e for e in journal if e.name == "flaky"]
    assert [(e.kind.value, e.attempt, e.failed) for e in steps] == [
        ("step_attempt", 1, True),
        ("step_attempt", 2, True),
        ("step_attempt", 3, True),
        ("step", 4, False),
    ]


async def test_retries_exhausted_raise_a_step_error_the_workflow_can_catch(
    app: perdure.App,
) -> None:
    attempts: list[int] = []

    @app.step(retry=perdure.Retry(max_attempts=2, initial_interval=0.01))
    async def flaky() -> str:
        attempts.append(attempt_number())
        if len(attempts) < 3:
            raise ConnectionError(f"attempt {len(attempts)} failed")
        return "too late"

    @app.workflow()
    async def tolerant() -> dict[str, Any]:
        try:
            await flaky()
        except perdure.StepError as err:
            await perdure.sleep(0.01)  # without the cache, replay must re-raise the same error
            return {
                "step": err.step,
                "attempts": err.attempts,
                "type": err.error.type,
                "message": err.error.message,
            }
        return {"step": "none"}

    async with app:
        handle = await app.start(tolerant)
        caught = await handle.result(timeout=10)
    assert caught == {
        "step": "flaky",
        "attempts": 2,
        "type": "ConnectionError",
        "message": "attempt 2 failed",
    }
    assert attempts == [1, 2]


async def test_an_uncaught_step_error_fails_the_run_with_the_root_cause(app: perdure.App) -> None:
    @app.step(retry=perdure.Retry(max_attempts=2, initial_interval=0.01))
    async def broken() -> None:
        raise KeyError("missing")

    @app.workflow()
    async def careless() -> None:
        await broken()

    async with app:
        handle = await app.start(careless)
        with pytest.raises(perdure.RunFailed) as caught:
            await handle.result(timeout=10)
    assert caught.value.error.type == "KeyError"
    assert "missing" in caught.value.error.message


async def test_concurrent_steps_retry_independently(app: perdure.App) -> None:
    attempts: dict[str, list[int]] = {"a": [], "b": [], "c": []}

    @app.step(retry=perdure.Retry(max_attempts=3, initial_interval=0.02, backoff=3))
    async def fetch(name: str, failures: int) -> str:
        attempts[name].append(attempt_number())
        if len(attempts[name]) <= failures:
            raise ConnectionError(f"{name} failed")
        return name

    @app.workflow()
    async def fan_out() -> list[str]:
        results = await asyncio.gather(fetch("a", 0), fetch("b", 1), fetch("c", 2))
        return list(results)

    async with app:
        handle = await app.start(fan_out)
        assert await handle.result(timeout=10) == ["a", "b", "c"]
    assert attempts == {"a": [1], "b": [1, 2], "c": [1, 2, 3]}


class PaymentDeclined(perdure.NonRetryableError):
    pass


class BadAmount(ValueError):
    pass


@pytest.mark.parametrize(
    ("error", "type_name"),
    [
        (ValueError("bad input"), "ValueError"),
        (BadAmount("negative"), "BadAmount"),  # a subclass of a listed type
        (PaymentDeclined("card declined"), "PaymentDeclined"),
    ],
    ids=["listed", "listed-subclass", "NonRetryableError"],
)
async def test_a_non_retryable_error_gets_exactly_one_attempt(
    app: perdure.App, error: Exception, type_name: str
) -> None:
    attempts: list[int] = []

    @app.step(
        retry=perdure.Retry(max_attempts=5, initial_interval=0.01, non_retryable=(ValueError,))
    )
    async def charge() -> None:
        attempts.append(attempt_number())
        raise error

    @app.workflow()
    async def checkout() -> list[Any]:
        try:
            await charge()
        except perdure.StepError as err:
            return [err.attempts, err.error.type, err.error.message]
        return []

    async with app:
        handle = await app.start(checkout)
        attempts_seen, kind, message = await handle.result(timeout=10)
        await asyncio.sleep(0.1)  # room for a wrongly scheduled retry
    assert attempts == [1]
    assert attempts_seen == 1
    assert kind.endswith(type_name)
    assert message == str(error)


async def test_other_errors_are_still_retried_when_some_types_are_not(app: perdure.App) -> None:
    attempts: list[int] = []

    @app.step(
        retry=perdure.Retry(max_attempts=3, initial_interval=0.01, non_retryable=(ValueError,))
    )
    async def fetch() -> int:
        attempts.append(attempt_number())
        if len(attempts) < 3:
            raise TimeoutError("slow upstream")
        return 7

    @app.workflow()
    async def load() -> int:
        result: int = await fetch()
        return result

    async with app:
        handle = await app.start(load)
        assert await handle.result(timeout=10) == 7
    assert attempts == [1, 2, 3]


async def test_an_async_step_past_its_timeout_fails_with_a_timeout_error(app: perdure.App) -> None:
    calls: list[str] = []

    @app.step(timeout=0.1)
    async def hangs() -> str:
        calls.append("start")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            calls.append("cut off")
            raise
        return "never"

    @app.workflow()
    async def waits() -> list[Any]:
        try:
            await hangs()
        except perdure.StepError as err:
            # without the cache, the run is replayed from here: the recorded timeout
            # comes back, the step does not run again
            await perdure.sleep(0.01)
            return [err.error.type, err.error.message, err.attempts]
        return []

    async with app:
        handle = await app.start(waits)
        kind, message, attempts = await handle.result(timeout=10)
    assert "timeout" in kind.lower()
    assert "hangs" in message and "timed out" in message
    assert attempts == 1
    assert calls == ["start", "cut off"]


async def test_each_retry_gets_a_fresh_timeout(app: perdure.App) -> None:
    attempts: list[int] = []

    @app.step(timeout=0.3, retry=perdure.Retry(max_attempts=3, initial_interval=0.01))
    async def warming_up() -> int:
        attempt = attempt_number()
        attempts.append(attempt)
        # The first two attempts hang; the third finishes well within its own 0.3 s,
        # although the attempts together take far longer than 0.3 s.
        await asyncio.sleep(10 if attempt < 3 else 0.05)
        return attempt

    @app.workflow()
    async def warm() -> int:
        result: int = await warming_up()
        return result

    async with app:
        handle = await app.start(warm)
        assert await handle.result(timeout=10) == 3
    assert attempts == [1, 2, 3]
    journal = await app.backend.read_journal(handle.id)
    failed = [e for e in journal if e.name == "warming_up" and e.failed]
    assert len(failed) == 2
    for entry in failed:
        assert "timed out" in perdure.ErrorInfo.from_bytes(entry.payload).message


async def test_a_sync_step_past_its_timeout_fails_with_a_timeout_error(app: perdure.App) -> None:
    unblock = threading.Event()
    calls: list[str] = []

    @app.step(timeout=0.1)
    def blocks() -> str:
        calls.append("start")
        unblock.wait(5)
        return "late"

    @app.workflow()
    async def waits() -> list[Any]:
        try:
            await blocks()
        except perdure.StepError as err:
            return [err.error.type, err.error.message]
        return []

    try:
        async with app:
            handle = await app.start(waits)
            kind, message = await handle.result(timeout=10)
    finally:
        unblock.set()
    assert "timeout" in kind.lower()
    assert "blocks" in message and "timed out" in message
    assert calls == ["start"]


async def test_a_retry_waiting_out_its_backoff_survives_a_worker_restart(
    app: perdure.App, backend_name: str, make_app: Callable[..., perdure.App]
) -> None:
    attempts: list[tuple[int, float]] = []

    def register(target: perdure.App) -> perdure.WorkflowFunction[[], int]:
        @target.step(name="fragile", retry=perdure.Retry(max_attempts=3, initial_interval=0.5))
        async def fragile() -> int:
            attempts.append((attempt_number(), time.time()))
            if len(attempts) == 1:
                raise ConnectionError("first try fails")
            return attempt_number()

        @target.workflow(name="fragile_flow")
        async def fragile_flow() -> int:
            result: int = await fragile()
            return result

        return fragile_flow

    wf = register(app)
    async with app:
        handle = await app.start(wf, id="backoff-restart")
        async with asyncio.timeout(10):
            while not attempts:
                await asyncio.sleep(0.01)
    # The worker stopped during the 0.5 s backoff; a new one must keep the retry.
    if backend_name == "memory":
        async with app.worker(sticky_cache=False):
            assert await handle.result(timeout=10) == 2
    else:
        second = make_app(sticky_cache=False)
        register(second)
        async with second:
            assert await second.handle("backoff-restart").result(timeout=10) == 2
    assert [n for n, _ in attempts] == [1, 2]
    assert attempts[1][1] - attempts[0][1] >= 0.5 - EPSILON
