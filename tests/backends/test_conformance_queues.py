"""Conformance, continued: run keys, queues, admission by turn (``admit_runs``),
priorities, deduplication keys. Every backend must pass these unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_conformance import NOW, TTL, WF, checkpoint, claim, commit, new_run, start

from perdure.backends import Backend
from perdure.errors import RunDeduplicated
from perdure.records import (
    DEFAULT_QUEUE,
    InboxKind,
    NewInboxItem,
    NewRun,
    Outcome,
    QueueLimits,
    RunChange,
    RunFilter,
    RunStatus,
)

ONE_AT_A_TIME = QueueLimits("q", concurrency=1)


def queued(run_id: str, queue: str = "q", *, at: float = NOW, **options: Any) -> NewRun:
    return new_run(run_id, at=at, queue=queue, queued=True, **options)


async def ids(backend: Backend, queue: QueueLimits, now: float = NOW) -> list[str]:
    return await backend.admit_runs(queue, now)


async def finish(backend: Backend, run_id: str, now: float = NOW) -> None:
    """Complete ``run_id``; other runs due are claimed too (and stay unfinished): the
    order of claims among runs due at the same time is the backend's."""
    claims = await backend.claim_runs("w1", 100, now, now + TTL, [WF], None, None, None)
    [c] = [c for c in claims if c.run.id == run_id]
    result = await commit(backend, checkpoint(c, now, outcome=Outcome.COMPLETED, result=b"1"))
    assert result.applied


async def test_a_run_keeps_its_key_queue_and_priority(backend: Backend) -> None:
    rec, _ = await backend.create_run(new_run("r", key="order-1", queue="q", priority=7))
    assert (rec.key, rec.queue, rec.priority, rec.dedup_key) == ("order-1", "q", 7, None)
    assert not rec.queued and rec.admitted_at == NOW  # no limits: admitted at its start
    plain, _ = await backend.create_run(new_run("p"))
    assert (plain.key, plain.queue, plain.priority) == (None, DEFAULT_QUEUE, 0)
    assert await backend.get_run("r") == rec


async def test_runs_are_listed_by_key_and_queue(backend: Backend) -> None:
    for i in range(4):
        await backend.create_run(
            new_run(f"r{i}", at=NOW + i, key="k" if i % 2 else None, queue=f"q{i % 2}")
        )
    page = await backend.list_runs(RunFilter(key="k"), 10, None)
    assert [r.id for r in page.runs] == ["r3", "r1"]
    page = await backend.list_runs(RunFilter(queue="q0"), 10, None)
    assert [r.id for r in page.runs] == ["r2", "r0"]
    page = await backend.list_runs(RunFilter(queue="q1", key="k"), 1, None)
    assert [r.id for r in page.runs] == ["r3"] and page.cursor is not None


async def test_claims_take_only_the_queues_asked_for(backend: Backend) -> None:
    await backend.create_run(new_run("a", queue="gpu"))
    await backend.create_run(new_run("b"))
    taken = await backend.claim_runs("w1", 10, NOW, NOW + TTL, [WF], None, None, ["cpu"])
    assert taken == []
    taken = await backend.claim_runs("w1", 10, NOW, NOW + TTL, [WF], None, None, ["gpu"])
    assert [c.run.id for c in taken] == ["a"]
    assert list(await claim(backend)) == ["b"]  # no queues given: any queue


async def test_a_queued_run_is_not_claimed_until_admitted(backend: Backend) -> None:
    rec, created = await backend.create_run(queued("r"))
    assert created and rec.queued and rec.status is RunStatus.PENDING
    assert rec.wake_at is None and rec.admitted_at is None
    assert await claim(backend, now=NOW + 100) == {}
    assert await ids(backend, ONE_AT_A_TIME) == ["r"]
    rec = await backend.get_run("r")  # type: ignore[assignment]
    assert not rec.queued and rec.admitted_at == NOW and rec.wake_at == NOW
    assert list(await claim(backend)) == ["r"]
    assert await ids(backend, ONE_AT_A_TIME) == []  # nothing else waits


async def test_concurrency_counts_admitted_runs_until_they_end(backend: Backend) -> None:
    for i in range(3):
        await backend.create_run(queued(f"r{i}", at=NOW + i))
    two = QueueLimits("q", concurrency=2)
    assert await ids(backend, two, NOW + 5) == ["r0", "r1"]
    assert await ids(backend, two, NOW + 5) == []  # both still hold their place
    await finish(backend, "r0", NOW + 6)
    assert await ids(backend, two, NOW + 7) == ["r2"]


async def test_a_waiting_or_paused_admitted_run_still_holds_its_place(backend: Backend) -> None:
    await backend.create_run(queued("r0"))
    await backend.create_run(queued("r1", at=NOW + 1))
    assert await ids(backend, ONE_AT_A_TIME, NOW + 2) == ["r0"]
    await backend.change_run(
        RunChange("r0", frozenset({RunStatus.PENDING}), RunStatus.PAUSED), NOW + 3
    )
    assert await ids(backend, ONE_AT_A_TIME, NOW + 4) == []
    await backend.change_run(
        RunChange("r0", frozenset({RunStatus.PAUSED}), RunStatus.CANCELLED), NOW + 5
    )
    assert await ids(backend, ONE_AT_A_TIME, NOW + 6) == ["r1"]


async def test_higher_priority_first_then_start_order(backend: Backend) -> None:
    order = [("low-1", 0), ("high-1", 5), ("low-2", 0), ("high-2", 5), ("mid", 2)]
    for i, (run_id, priority) in enumerate(order):
        await backend.create_run(queued(run_id, at=NOW + i, priority=priority))
    admitted = []
    for i in range(len(order)):
        admitted += await ids(backend, ONE_AT_A_TIME, NOW + 10 + i)
        await finish(backend, admitted[-1], NOW + 10 + i)
    assert admitted == ["high-1", "high-2", "mid", "low-1", "low-2"]


async def test_a_delayed_queued_run_waits_for_its_start_time(backend: Backend) -> None:
    await backend.create_run(queued("later", start_at=NOW + 50))
    await backend.create_run(queued("now", at=NOW + 1))
    open_queue = QueueLimits("q", concurrency=10)
    assert await ids(backend, open_queue, NOW + 2) == ["now"]
    assert await ids(backend, open_queue, NOW + 49) == []
    assert await ids(backend, open_queue, NOW + 50) == ["later"]


async def test_per_key_limits_do_not_starve_other_keys(backend: Backend) -> None:
    for i in range(5):
        await backend.create_run(queued(f"hot{i}", at=NOW + i, key="hot"))
    await backend.create_run(queued("cold", at=NOW + 10, key="cold"))
    await backend.create_run(queued("nokey", at=NOW + 11))
    per_key = QueueLimits("q", per_key=1)
    assert sorted(await ids(backend, per_key, NOW + 20)) == ["cold", "hot0", "nokey"]
    assert await ids(backend, per_key, NOW + 21) == []
    await finish(backend, "hot0", NOW + 22)
    assert await ids(backend, per_key, NOW + 23) == ["hot1"]


async def test_per_key_and_concurrency_together(backend: Backend) -> None:
    for i, key in enumerate(["a", "a", "b", "c"]):
        await backend.create_run(queued(f"r{i}", at=NOW + i, key=key))
    both = QueueLimits("q", concurrency=2, per_key=1)
    assert await ids(backend, both, NOW + 10) == ["r0", "r2"]  # r1 waits for key a


async def test_a_rate_limit_counts_admissions_in_the_window(backend: Backend) -> None:
    for i in range(5):
        await backend.create_run(queued(f"r{i}", at=NOW + i * 0.001))
    rate = QueueLimits("q", rate=2, period=10.0)
    assert await ids(backend, rate, NOW + 1) == ["r0", "r1"]
    assert await ids(backend, rate, NOW + 5) == []
    assert await ids(backend, rate, NOW + 10.5) == []  # both still within 10 s
    assert await ids(backend, rate, NOW + 11.5) == ["r2", "r3"]  # the first two are out of it
    assert await ids(backend, rate, NOW + 21) == []
    assert await ids(backend, rate, NOW + 22) == ["r4"]


async def test_admission_takes_only_its_own_queue_and_pending_runs(backend: Backend) -> None:
    await backend.create_run(queued("other", queue="elsewhere"))
    await backend.create_run(queued("paused", at=NOW + 1))
    await backend.change_run(
        RunChange("paused", frozenset({RunStatus.PENDING}), RunStatus.PAUSED), NOW + 2
    )
    assert await ids(backend, QueueLimits("q", concurrency=5), NOW + 3) == []
    # Resumed: still queued (resuming does not jump the queue), then admitted.
    rec, _ = await backend.change_run(
        RunChange("paused", frozenset({RunStatus.PAUSED}), RunStatus.PENDING, wake=True), NOW + 4
    )
    assert rec.queued and rec.wake_at is None
    assert await ids(backend, QueueLimits("q", concurrency=5), NOW + 5) == ["paused"]


async def test_a_queued_run_can_be_cancelled_at_once(backend: Backend) -> None:
    await backend.create_run(queued("r"))
    await backend.deliver(NewInboxItem("r", InboxKind.CANCEL, NOW, payload=b"no"), NOW)
    rec = await backend.get_run("r")
    assert rec is not None and rec.status is RunStatus.CANCELLED
    assert await ids(backend, ONE_AT_A_TIME) == []


async def test_a_message_does_not_admit_a_queued_run(backend: Backend) -> None:
    await backend.create_run(queued("r"))
    await backend.deliver(NewInboxItem("r", InboxKind.SIGNAL, NOW, topic="t", payload=b"1"), NOW)
    rec = await backend.get_run("r")
    assert rec is not None and rec.queued and rec.wake_at is None
    assert await claim(backend, now=NOW + 10) == {}


async def test_children_may_be_queued(backend: Backend) -> None:
    c = await start(backend, "parent")
    child = queued("child", at=NOW, parent_id="parent", parent_pos=0)
    assert (await commit(backend, checkpoint(c, children=[child], release=True))).applied
    rec = await backend.get_run("child")
    assert rec is not None and rec.queued and rec.queue == "q"
    assert await claim(backend, now=NOW + 1) == {}
    assert await ids(backend, ONE_AT_A_TIME, NOW + 2) == ["child"]


async def test_concurrent_admissions_never_exceed_the_limit(backend: Backend) -> None:
    for i in range(20):
        await backend.create_run(queued(f"r{i}", at=NOW + i * 0.01))
    three = QueueLimits("q", concurrency=3)
    rounds = await asyncio.gather(*(backend.admit_runs(three, NOW + 1) for _ in range(8)))
    admitted = [run_id for batch in rounds for run_id in batch]
    assert sorted(admitted) == ["r0", "r1", "r2"]


async def test_a_dedup_key_is_held_until_its_run_ends(backend: Backend) -> None:
    await backend.create_run(new_run("first", queue="q", dedup_key="user-1"))
    with pytest.raises(RunDeduplicated) as caught:
        await backend.create_run(new_run("second", queue="q", dedup_key="user-1"))
    assert caught.value.holder == "first" and caught.value.dedup_key == "user-1"
    assert await backend.get_run("second") is None
    # Another queue, another key, or the same id again (idempotent start): all fine.
    await backend.create_run(new_run("elsewhere", queue="other", dedup_key="user-1"))
    await backend.create_run(new_run("other-key", queue="q", dedup_key="user-2"))
    rec, created = await backend.create_run(new_run("first", queue="q", dedup_key="user-1"))
    assert rec.id == "first" and not created
    claims = await backend.claim_runs("w1", 10, NOW, NOW + TTL, [WF], None, None, ["q"])
    [c] = [c for c in claims if c.run.id == "first"]
    await commit(backend, checkpoint(c, outcome=Outcome.FAILED, error=b"{}"))
    rec, created = await backend.create_run(new_run("second", queue="q", dedup_key="user-1"))
    assert created and rec.dedup_key == "user-1"


async def test_reopening_a_run_whose_dedup_key_another_took_is_refused(
    backend: Backend,
) -> None:
    await backend.create_run(new_run("first", queue="q", dedup_key="user-1"))
    [c] = await backend.claim_runs("w1", 10, NOW, NOW + TTL, [WF], None, None, ["q"])
    await commit(backend, checkpoint(c, outcome=Outcome.FAILED, error=b"{}"))
    await backend.create_run(new_run("second", queue="q", dedup_key="user-1"))
    retry = RunChange("first", frozenset({RunStatus.FAILED}), RunStatus.RUNNING, wake=True)
    with pytest.raises(RunDeduplicated) as caught:
        await backend.change_run(retry, NOW + 1)
    assert caught.value.holder == "second"
    rec = await backend.get_run("first")
    assert rec is not None and rec.status is RunStatus.FAILED  # nothing changed
    # Once the holder has ended, the retry goes through.
    [c] = await backend.claim_runs("w1", 10, NOW + 2, NOW + TTL, [WF], None, None, ["q"])
    await commit(backend, checkpoint(c, NOW + 2, outcome=Outcome.COMPLETED, result=b"1"))
    rec, applied = await backend.change_run(retry, NOW + 3)
    assert applied and rec.status is RunStatus.RUNNING
    with pytest.raises(RunDeduplicated):
        await backend.create_run(new_run("third", queue="q", dedup_key="user-1"))


async def test_a_dedup_key_of_a_queued_run_is_held_too(backend: Backend) -> None:
    await backend.create_run(queued("first", dedup_key="d"))
    with pytest.raises(RunDeduplicated):
        await backend.create_run(queued("second", at=NOW + 1, dedup_key="d"))
    await backend.deliver(NewInboxItem("first", InboxKind.CANCEL, NOW, payload=b"x"), NOW + 2)
    _, created = await backend.create_run(queued("second", at=NOW + 3, dedup_key="d"))
    assert created


async def test_a_dedup_key_is_checked_in_a_batch_of_starts(backend: Backend) -> None:
    outcomes = await asyncio.gather(
        *(backend.create_run(new_run(f"r{i}", queue="q", dedup_key="once")) for i in range(6)),
        return_exceptions=True,
    )
    made = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, RunDeduplicated)]
    assert len(made) == 1 and len(refused) == 5
