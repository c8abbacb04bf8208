"""Conformance, continued: operators' changes (``change_run``), retention
(``purge_runs``), dead letters in ``claim_runs``, and runs created with a journal
(forks). Every backend must pass these unchanged."""

from __future__ import annotations

import pytest
from test_conformance import NOW, TTL, checkpoint, claim, entry, new_run, start

from perdure.backends import Backend
from perdure.errors import RunNotFound
from perdure.records import (
    EntryKind,
    InboxKind,
    JournalEntry,
    NewInboxItem,
    NewRun,
    Outcome,
    RunChange,
    RunFilter,
    RunStatus,
)

ALL = frozenset(RunStatus)
NOTE = JournalEntry(0, -1, EntryKind.CONTROL, "retry", b'{"by": "ops"}', NOW)


async def test_change_run_applies_only_in_the_expected_statuses(backend: Backend) -> None:
    await backend.create_run(new_run("r"))
    change = RunChange("r", frozenset({RunStatus.RUNNING}), RunStatus.PAUSED)
    rec, applied = await backend.change_run(change, NOW)
    assert not applied and rec.status is RunStatus.PENDING
    rec, applied = await backend.change_run(
        RunChange("r", frozenset({RunStatus.PENDING}), RunStatus.PAUSED), NOW + 1
    )
    assert applied and rec.status is RunStatus.PAUSED and rec.updated_at == NOW + 1
    with pytest.raises(RunNotFound):
        await backend.change_run(RunChange("nope", ALL, RunStatus.PAUSED), NOW)


async def test_a_paused_run_is_not_claimed_and_its_worker_hears_of_it(backend: Backend) -> None:
    c = await start(backend, "r")
    item = NewInboxItem("r", InboxKind.PAUSE, NOW, payload=b"why")
    rec, applied = await backend.change_run(
        RunChange("r", ALL, RunStatus.PAUSED, inbox=(item,)), NOW
    )
    assert applied and rec.mailbox == c.run.mailbox + 1
    # No fence: the worker keeps its lease and may record what it has in flight.
    assert rec.owner == "w1" and rec.lease_token == c.token
    held = await backend.extend_leases("w1", {"r": c.token}, NOW + TTL)
    assert held == {"r": rec.mailbox}
    assert [i.kind for i in await backend.read_inbox("r", NOW)] == [InboxKind.PAUSE]
    result = (await backend.checkpoint([checkpoint(c, entries=[entry(0)], release=True)]))[0]
    assert result.applied
    assert (await backend.get_run("r")).status is RunStatus.PAUSED  # type: ignore[union-attr]
    assert await claim(backend, now=NOW + 100) == {}

    rec, _ = await backend.change_run(
        RunChange("r", frozenset({RunStatus.PAUSED}), RunStatus.RUNNING, wake=True), NOW + 5
    )
    assert rec.status is RunStatus.RUNNING and rec.wake_at == NOW + 5
    assert list(await claim(backend, now=NOW + 5)) == ["r"]


async def test_a_fence_rejects_the_holders_later_writes(backend: Backend) -> None:
    c = await start(backend, "r")
    rec, _ = await backend.change_run(
        RunChange("r", ALL, RunStatus.RUNNING, fence=True, entries=(NOTE,)), NOW
    )
    assert rec.owner is None and rec.lease_token == c.token + 1 and rec.journal_len == 1
    result = (await backend.checkpoint([checkpoint(c, entries=[entry(0)])]))[0]
    assert not result.applied
    assert await backend.extend_leases("w1", {"r": c.token}, NOW + TTL) == {}
    journal = await backend.read_journal("r")
    assert [(e.seq, e.kind, e.name) for e in journal] == [(0, EntryKind.CONTROL, "retry")]


async def test_a_rewind_truncates_the_journal_and_reopens_the_run(backend: Backend) -> None:
    c = await start(backend, "r")
    failed = JournalEntry(2, 2, EntryKind.STEP, "s", b"{}", NOW, 1, True)
    consumed = NewInboxItem("r", InboxKind.TIMER, NOW, pos=1, key="timer:0:1")
    await backend.checkpoint([checkpoint(c, inbox=[consumed])])
    [timer] = await backend.read_inbox("r", NOW)
    await backend.checkpoint(
        [
            checkpoint(
                c,
                entries=[entry(0), entry(1), failed],
                consumed=[timer.id],
                outcome=Outcome.FAILED,
                error=b'{"type": "E"}',
            )
        ]
    )
    again = NewInboxItem("r", InboxKind.RETRY, NOW + 1, pos=2, key="retry:0:2:1")
    rec, applied = await backend.change_run(
        RunChange(
            "r",
            frozenset({RunStatus.FAILED}),
            RunStatus.RUNNING,
            fence=True,
            truncate_from=2,
            entries=(NOTE,),
            inbox=(again,),
            wake=True,
        ),
        NOW + 1,
    )
    assert applied
    assert rec.status is RunStatus.RUNNING and rec.error is None and rec.finished_at is None
    assert rec.journal_len == 3 and rec.wake_at == NOW + 1 and rec.recoveries == 0
    journal = await backend.read_journal("r")
    assert [(e.seq, e.kind) for e in journal] == [
        (0, EntryKind.STEP),
        (1, EntryKind.STEP),
        (2, EntryKind.CONTROL),
    ]
    # The consumed timer's key is free again; the retry item is due.
    assert await backend.deliver(NewInboxItem("r", InboxKind.TIMER, NOW, key="timer:0:1"), NOW)
    claims = await claim(backend, now=NOW + 1)
    assert {i.kind for i in claims["r"].inbox} == {InboxKind.RETRY, InboxKind.TIMER}


async def test_a_terminal_change_ends_the_run_and_tells_its_parent(backend: Backend) -> None:
    await backend.create_run(new_run("parent"))
    await backend.create_run(NewRun("kid", "wf", b"", NOW, parent_id="parent", parent_pos=3))
    rec, applied = await backend.change_run(
        RunChange("kid", ALL, RunStatus.TERMINATED, fence=True, error=b'{"type": "T"}'), NOW
    )
    assert applied and rec.status is RunStatus.TERMINATED and rec.finished_at == NOW
    assert rec.wake_at is None and rec.error == b'{"type": "T"}'
    [told] = await backend.read_inbox("parent", NOW)
    assert (told.kind, told.pos, told.topic) == (InboxKind.CHILD, 3, "terminated")


async def test_purge_deletes_only_ended_runs_finished_before_the_cutoff(backend: Backend) -> None:
    for name in ("old", "older", "new"):
        await backend.create_run(new_run(name))
    await backend.create_run(new_run("active"))
    await backend.change_run(RunChange("older", ALL, RunStatus.TERMINATED, fence=True), NOW)
    await backend.change_run(RunChange("old", ALL, RunStatus.TERMINATED, fence=True), NOW + 1)
    await backend.change_run(RunChange("new", ALL, RunStatus.TERMINATED, fence=True), NOW + 10)
    await backend.deliver(NewInboxItem("old", InboxKind.SIGNAL, NOW, key="k"), NOW)

    assert await backend.purge_runs(NOW + 5, 1) == ["older"]  # oldest first, up to the limit
    assert await backend.purge_runs(NOW + 5, 10, "new") == []
    assert await backend.purge_runs(NOW + 5, 10) == ["old"]
    assert await backend.get_run("old") is None
    assert await backend.read_journal("old") == []
    assert await backend.purge_runs(1e12, 10, "active") == []
    assert await backend.purge_runs(1e12, 10) == ["new"]
    page = await backend.list_runs(RunFilter(), 10, None)
    assert [r.id for r in page.runs] == ["active"]
    # The id is free again, without the old run's keys.
    await backend.create_run(new_run("old"))
    assert await backend.deliver(NewInboxItem("old", InboxKind.SIGNAL, NOW, key="k"), NOW)


async def test_a_run_whose_workers_keep_dying_is_dead_lettered(backend: Backend) -> None:
    await backend.create_run(NewRun("kid", "wf", b"", NOW, parent_id="p", parent_pos=1))
    await backend.create_run(new_run("p", "other"))
    now = NOW
    for expected in range(3):
        claims = await backend.claim_runs("w", 10, now, now + TTL, ["wf"], 2)
        assert [c.run.recoveries for c in claims] == [expected]
        now += TTL + 1  # the worker died: its lease runs out
    claims = await backend.claim_runs("w", 10, now, now + TTL, ["wf"], 2)
    assert claims == []
    rec = await backend.get_run("kid")
    assert rec is not None and rec.status is RunStatus.DEAD_LETTER and rec.owner is None
    assert b"DeadLetter" in (rec.error or b"")
    [told] = await backend.read_inbox("p", now)
    assert told.topic == "dead_letter"


async def test_progress_resets_the_recovery_count(backend: Backend) -> None:
    await backend.create_run(new_run("r"))
    [c] = await backend.claim_runs("w", 10, NOW, NOW + TTL, [WF := "wf"], 1)
    [c] = await backend.claim_runs("w", 10, NOW + TTL + 1, NOW + 2 * TTL, [WF], 1)
    assert c.run.recoveries == 1
    await backend.checkpoint([checkpoint(c, NOW + TTL + 1, entries=[entry(0)])])
    assert (await backend.get_run("r")).recoveries == 0  # type: ignore[union-attr]


async def test_a_run_created_with_a_journal_continues_it(backend: Backend) -> None:
    journal = (entry(0), entry(1, name="other"))
    rec, created = await backend.create_run(
        NewRun("fork", "wf", b"in", NOW, journal=journal, events=(("k", b"v"),))
    )
    assert created and rec.journal_len == 2 and rec.status is RunStatus.PENDING
    assert await backend.read_journal("fork") == list(journal)
    assert await backend.get_event("fork", "k") == b"v"
    c = (await claim(backend))["fork"]
    assert (await backend.checkpoint([checkpoint(c, entries=[entry(2)])]))[0].applied


async def test_a_worker_with_a_version_claims_only_runs_of_that_version_or_none(
    backend: Backend,
) -> None:
    await backend.create_run(new_run("any"))
    await backend.create_run(NewRun("v1", "wf", b"", NOW, version="1"))
    await backend.create_run(NewRun("v2", "wf", b"", NOW, version="2"))
    assert (await backend.get_run("v2")).version == "2"  # type: ignore[union-attr]
    claims = await backend.claim_runs("w", 10, NOW, NOW + TTL, ["wf"], None, "2")
    assert sorted(c.run.id for c in claims) == ["any", "v2"]
    assert await backend.claim_runs("w", 10, NOW, NOW + TTL, ["wf"], None, "3") == []
    [c] = await backend.claim_runs("w", 10, NOW, NOW + TTL, ["wf"])
    assert c.run.id == "v1" and c.run.version == "1"
    # A child keeps the version its NewRun says.
    kid = NewRun("kid", "wf", b"", NOW, parent_id="v1", parent_pos=0, version="1")
    await backend.checkpoint([checkpoint(c, children=[kid])])
    page = await backend.list_runs(RunFilter(parent_id="v1"), 10, None)
    assert [(r.id, r.version) for r in page.runs] == [("kid", "1")]


async def test_journal_details_are_stored_exactly(backend: Backend) -> None:
    c = await start(backend, "r")
    detail = b'{"started": 999.5}\n\x00\xffinput'
    first = JournalEntry(0, 0, EntryKind.STEP, "s", b"1", NOW, 1, False, detail)
    second = JournalEntry(1, 1, EntryKind.STEP, "s", b"2", NOW)
    await backend.checkpoint([checkpoint(c, entries=[first, second])])
    assert await backend.read_journal("r") == [first, second]
    fork = JournalEntry(0, 0, EntryKind.STEP, "s", b"1", NOW, 1, False, b"x")
    await backend.create_run(NewRun("fork", "wf", b"", NOW, journal=(fork,)))
    assert await backend.read_journal("fork") == [fork]


async def test_the_worker_registry(backend: Backend) -> None:
    assert await backend.list_workers(0) == []
    await backend.save_worker("b", NOW, b'{"host": "x"}')
    await backend.save_worker("a", NOW + 5, b"{}")
    await backend.save_worker("b", NOW + 10, b'{"host": "y"}')  # replaces
    workers = await backend.list_workers(NOW)
    assert [(w.id, w.seen_at, w.info) for w in workers] == [
        ("a", NOW + 5, b"{}"),
        ("b", NOW + 10, b'{"host": "y"}'),
    ]
    assert [w.id for w in await backend.list_workers(NOW + 5)] == ["b"]
    assert await backend.forget_workers(NOW + 6) == 1  # "a"
    assert await backend.forget_workers(0, "b") == 1
    assert await backend.forget_workers(0, "nobody") == 0
    assert await backend.list_workers(0) == []
