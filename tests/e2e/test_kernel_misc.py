"""Kernel behaviours a user relies on that the scenario files don't cover."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

import perdure
from perdure.workflow import instance as instance_module


async def test_steps_get_a_stable_idempotency_key(app: perdure.App) -> None:
    seen: list[perdure.StepInfo] = []

    @app.step(retry=perdure.Retry(max_attempts=2, initial_interval=0.01))
    async def pay() -> None:
        info = perdure.info()
        assert isinstance(info, perdure.StepInfo)
        seen.append(info)
        if info.attempt == 1:
            raise ConnectionError("flaky")

    @app.workflow()
    async def order() -> None:
        await pay()

    async with app:
        handle = await app.start(order, id="order-7")
        await handle.result(timeout=10)
    assert [s.attempt for s in seen] == [1, 2]
    assert seen[0].idempotency_key == seen[1].idempotency_key
    assert seen[0].idempotency_key.startswith("order-7:")
    assert seen[0].step == "pay" and seen[0].run_id == "order-7"


async def test_sync_steps_run_off_the_event_loop(app: perdure.App) -> None:
    threads: list[int] = []

    @app.step()
    def blocking() -> int:
        threads.append(threading.get_ident())
        return 1

    @app.workflow()
    async def wf() -> int:
        return await blocking()

    async with app:
        assert await (await app.start(wf)).result(timeout=10) == 1
    assert threads and threads[0] != threading.get_ident()


async def test_a_step_called_outside_a_workflow_is_the_plain_function(app: perdure.App) -> None:
    @app.step()
    async def double(x: int) -> int:
        return 2 * x

    @app.step()
    def triple(x: int) -> int:
        return 3 * x

    assert await double(4) == 8
    assert triple(4) == 12


async def test_workflow_only_calls_outside_a_workflow_say_so() -> None:
    with pytest.raises(perdure.NotInWorkflow, match="receive"):
        await perdure.receive("x")
    with pytest.raises(perdure.NotInWorkflow, match="set_event"):
        perdure.set_event("k", 1)


async def test_registration_errors_are_clear(app: perdure.App) -> None:
    @app.workflow(name="same")
    async def one() -> None: ...

    with pytest.raises(perdure.RegistrationError, match="already registered"):

        @app.workflow(name="same")
        async def two() -> None: ...

    with pytest.raises(TypeError, match="async def"):

        @app.workflow()
        def not_async() -> None: ...

    other = perdure.App("memory://")

    @other.workflow()
    async def elsewhere() -> None: ...

    with pytest.raises(perdure.RegistrationError, match="not registered on this app"):
        await app.start(elsewhere)
    with pytest.raises(perdure.RegistrationError, match="no workflow named 'nope'"):
        await app.start("nope")
    with pytest.raises(TypeError, match="bad arguments"):
        await app.start(one, 1, 2, 3)


async def test_workflow_info_inside_the_workflow(app: perdure.App) -> None:
    @app.workflow()
    async def whoami() -> list[object]:
        info = perdure.info()
        assert isinstance(info, perdure.WorkflowInfo)
        return [info.run_id, info.workflow, info.generation, info.parent_id]

    async with app:
        handle = await app.start(whoami, id="me")
        assert await handle.result(timeout=10) == ["me", "whoami", 0, None]


async def test_an_evicted_run_resumes_by_replay(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(sticky_cache=True)
    runs = {"step": 0}

    @app.step()
    async def work() -> int:
        runs["step"] += 1
        return 41

    @app.workflow()
    async def waits() -> int:
        value = await work()
        await perdure.sleep(0.2)  # longer than the cache keeps idle runs below
        return value + 1

    async with app.worker(cache_idle=0.0) as worker:
        handle = await app.start(waits)
        assert await handle.result(timeout=10) == 42
    assert runs["step"] == 1
    assert worker.stats["replayed"] >= 1 and worker.stats["cache_hits"] == 0
    await app.close()


async def test_a_sleeping_run_is_resumed_from_the_cache(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(sticky_cache=True)

    @app.workflow()
    async def naps() -> str:
        await perdure.sleep(0.05)
        await perdure.sleep(0.05)
        return "rested"

    async with app.worker() as worker:
        assert await (await app.start(naps)).result(timeout=10) == "rested"
    assert worker.stats["cache_hits"] >= 2 and worker.stats["replayed"] == 0
    await app.close()


async def test_long_histories_warn(
    app: perdure.App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(instance_module, "HISTORY_WARNING", 20)

    @app.step()
    async def tick(i: int) -> int:
        return i

    @app.workflow()
    async def long() -> int:
        return sum([await tick(i) for i in range(30)])

    with caplog.at_level(logging.WARNING, logger="perdure.workflow"):
        async with app:
            assert await (await app.start(long)).result(timeout=10) == sum(range(30))
    assert any("continue_as_new" in r.getMessage() for r in caplog.records)


async def test_a_codec_sees_every_stored_payload(url: str) -> None:
    class Xor:
        def encode(self, data: bytes) -> bytes:
            return bytes(b ^ 0x5A for b in data)

        def decode(self, data: bytes) -> bytes:
            return bytes(b ^ 0x5A for b in data)

    app = perdure.App(url, codec=Xor(), poll_interval=0.05)

    @app.step()
    async def secret(name: str) -> str:
        return f"token-for-{name}"

    @app.workflow()
    async def wf(name: str) -> str:
        return await secret(name)

    async with app:
        handle = await app.start(wf, "ada")
        assert await handle.result(timeout=10) == "token-for-ada"
        journal = await app.backend.read_journal(handle.id)
        record = await app.backend.get_run(handle.id)
    assert (
        record is not None and b"ada" not in record.input and b"ada" not in (record.result or b"")
    )
    assert all(b"token" not in (e.payload or b"") for e in journal)


async def test_handles_for_unknown_runs_raise(app: perdure.App) -> None:
    with pytest.raises(perdure.RunNotFound):
        await app.handle("missing").status()
    with pytest.raises(perdure.RunNotFound):
        await app.handle("missing").send("t", 1)


async def test_many_runs_at_once(app: perdure.App) -> None:
    @app.step()
    async def inc(x: int) -> int:
        return x + 1

    @app.workflow()
    async def chain(x: int) -> int:
        for _ in range(5):
            x = await inc(x)
        return x

    async with app:
        handles = await asyncio.gather(*(app.start(chain, i) for i in range(100)))
        results = await asyncio.gather(*(h.result(timeout=30) for h in handles))
    assert results == [i + 5 for i in range(100)]


async def test_a_child_of_an_earlier_generation_does_not_answer_the_new_one(
    app: perdure.App,
) -> None:
    @app.workflow()
    async def slow(x: float) -> str:
        await perdure.sleep(x)
        return f"slow{x}"

    @app.workflow()
    async def parent(gen: int) -> str:
        if gen == 0:
            await perdure.start_child(slow, 0.05)  # left behind by continue_as_new
            perdure.continue_as_new(1)
        child = await perdure.start_child(slow, 0.3)
        return await child.result()

    async with app:
        handle = await app.start(parent, 0, id="p")
        assert await handle.result(timeout=20) == "slow0.3"


async def test_the_deadline_survives_continue_as_new(app: perdure.App) -> None:
    @app.workflow()
    async def forever(n: int) -> int:
        await perdure.sleep(0.05)
        perdure.continue_as_new(n + 1)

    async with app:
        handle = await app.start(forever, 0, timeout=0.5)
        with pytest.raises(perdure.RunCancelled, match="timed out"):
            await handle.result(timeout=20)


async def test_step_calls_fit_every_asyncio_combinator(app: perdure.App) -> None:
    @app.step()
    async def pause(x: int) -> int:
        await asyncio.sleep(0.01 * x)
        return x

    @app.workflow()
    async def combos() -> list[object]:
        done, pending = await asyncio.wait(
            [pause(3), pause(1)], return_when=asyncio.FIRST_COMPLETED
        )
        first = [t.result() for t in done]
        task = asyncio.create_task(pause(2))
        async with asyncio.TaskGroup() as group:
            a = group.create_task(pause(1))
        both = await asyncio.gather(pause(1), pause(2))
        quick = await asyncio.wait_for(pause(1), 5)
        await asyncio.gather(*pending)
        return [first, await task, a.result(), both, quick]

    async with app:
        assert await (await app.start(combos)).result(timeout=10) == [[1], 2, 1, [1, 2], 1]


async def test_bad_run_ids_are_refused_before_anything_is_written(app: perdure.App) -> None:
    @app.workflow()
    async def wf() -> None:
        return None

    for bad in ("", "x" * 201, "a\0b"):
        with pytest.raises(ValueError, match="run id"):
            await app.start(wf, id=bad)
    assert [run async for run in app.list_runs()] == []
