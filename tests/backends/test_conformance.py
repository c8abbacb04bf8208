"""The backend conformance suite: one set of tests every backend must pass unchanged.

Each test calls the ``Backend`` methods directly (no App, no worker) with timestamps
it chooses, so the only thing under test is the storage contract in
``perdure/backends/base.py``. Passing here is what makes a backend interchangeable
with the others.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from perdure.backends import Backend
from perdure.errors import RunNotFound
from perdure.records import (
    Checkpoint,
    CheckpointResult,
    Claim,
    EntryKind,
    InboxItem,
    InboxKind,
    JournalEntry,
    NewInboxItem,
    NewRun,
    Outcome,
    RunFilter,
    RunRecord,
    RunStatus,
)

NOW = 1000.0
TTL = 30.0
WF = "wf"
LATER = 1e9  # far enough ahead that every timer in these tests is visible


# -- helpers ------------------------------------------------------------------------------


def new_run(run_id: str, workflow: str = WF, *, at: float = NOW, **options: Any) -> NewRun:
    return NewRun(run_id, workflow, b"input", at, **options)


async def claim(
    backend: Backend,
    owner: str = "w1",
    now: float = NOW,
    *,
    workflows: tuple[str, ...] = (WF,),
    limit: int = 100,
    ttl: float = TTL,
) -> dict[str, Claim]:
    claims = await backend.claim_runs(owner, limit, now, now + ttl, list(workflows))
    by_id = {c.run.id: c for c in claims}
    assert len(by_id) == len(claims), "a run was claimed twice in one call"
    return by_id


async def start(
    backend: Backend, run_id: str, owner: str = "w1", now: float = NOW, **options: Any
) -> Claim:
    """Create a run and claim it; the test must have no other run due."""
    await backend.create_run(new_run(run_id, at=now, **options))
    claims = await claim(backend, owner, now)
    assert list(claims) == [run_id]
    return claims[run_id]


def entry(seq: int, *, pos: int | None = None, name: str = "step", at: float = NOW) -> JournalEntry:
    return JournalEntry(seq, seq if pos is None else pos, EntryKind.STEP, name, b"ok", at)


def checkpoint(c: Claim, now: float = NOW, **changes: Any) -> Checkpoint:
    """A checkpoint by the claim's owner and token, having seen the claim's mailbox."""
    changes.setdefault("mailbox_seen", c.run.mailbox)
    return Checkpoint(c.run.id, c.run.owner or "", c.token, now, now + TTL, **changes)


async def commit(backend: Backend, cp: Checkpoint) -> CheckpointResult:
    [result] = await backend.checkpoint([cp])
    return result


def timer_item(run_id: str, payload: bytes, at: float, pos: int = 1) -> NewInboxItem:
    """A scheduled item: due only at its time."""
    return NewInboxItem(run_id, InboxKind.TIMER, at, pos=pos, payload=payload, key=f"timer:0:{pos}")


def signal(
    run_id: str, payload: bytes = b"msg", *, key: str | None = None, at: float = NOW
) -> NewInboxItem:
    return NewInboxItem(run_id, InboxKind.SIGNAL, at, topic="topic", payload=payload, key=key)


def timer(run_id: str, pos: int, at: float, generation: int = 0) -> NewInboxItem:
    # The key the workflow engine gives its durable timers; cancel_timers relies on it.
    return NewInboxItem(run_id, InboxKind.TIMER, at, pos=pos, key=f"timer:{generation}:{pos}")


async def run_of(backend: Backend, run_id: str) -> RunRecord:
    rec = await backend.get_run(run_id)
    assert rec is not None
    return rec


async def state(backend: Backend, run_id: str) -> tuple[object, ...]:
    """Everything a checkpoint could change about a run."""
    return (
        await backend.get_run(run_id),
        await backend.read_journal(run_id),
        await backend.read_inbox(run_id, LATER),
        await backend.get_event(run_id, "k"),
    )


def kinds(items: list[InboxItem]) -> list[InboxKind]:
    return [i.kind for i in items]


ERROR = json.dumps({"type": "ValueError", "message": "boom", "traceback": ""}).encode()


# -- create_run ---------------------------------------------------------------------------


async def test_create_run_starts_pending_and_due(backend: Backend) -> None:
    rec, created = await backend.create_run(new_run("r"))
    assert created
    assert rec.id == "r"
    assert rec.workflow == WF
    assert rec.status is RunStatus.PENDING
    assert rec.input == b"input"
    assert (rec.result, rec.error, rec.parent_id, rec.parent_pos) == (None, None, None, -1)
    assert (rec.generation, rec.journal_len, rec.lease_token, rec.mailbox) == (0, 0, 0, 0)
    assert rec.recoveries == 0
    assert rec.created_at == NOW
    assert rec.started_at is None and rec.finished_at is None
    assert rec.owner is None and rec.lease_until is None
    assert rec.wake_at == NOW
    assert await backend.get_run("r") == rec
    assert await backend.read_journal("r") == []
    assert await backend.read_inbox("r", LATER) == []


async def test_get_run_of_unknown_id_is_none(backend: Backend) -> None:
    assert await backend.get_run("nobody") is None
    assert await backend.read_journal("nobody") == []
    assert await backend.read_inbox("nobody", LATER) == []
    assert await backend.get_event("nobody", "k") is None


async def test_create_run_is_idempotent_on_id(backend: Backend) -> None:
    first, created = await backend.create_run(new_run("r", timeout=60.0))
    assert created
    again, created = await backend.create_run(
        NewRun("r", "another", b"other input", NOW + 5, parent_id="p", timeout=10.0)
    )
    assert not created
    assert again == first  # unchanged whatever the workflow: the caller decides on conflicts
    assert await backend.get_run("r") == first
    # The second call's timeout added no second deadline.
    assert kinds(await backend.read_inbox("r", LATER)) == [InboxKind.DEADLINE]
    assert [r.id for r in (await backend.list_runs(RunFilter(), 10, None)).runs] == ["r"]


async def test_timeout_creates_a_deadline_at_start_plus_timeout(backend: Backend) -> None:
    await backend.create_run(new_run("now", timeout=60.0))
    await backend.create_run(new_run("delayed", timeout=60.0, start_at=NOW + 100))
    assert await backend.read_inbox("now", NOW + 59.5) == []
    [deadline] = await backend.read_inbox("now", NOW + 60)
    assert deadline.kind is InboxKind.DEADLINE
    assert deadline.visible_at == NOW + 60
    assert deadline.run_id == "now"
    assert await backend.read_inbox("delayed", NOW + 159.5) == []
    [deadline] = await backend.read_inbox("delayed", NOW + 160)
    assert deadline.kind is InboxKind.DEADLINE
    assert deadline.visible_at == NOW + 160


async def test_delayed_start_is_not_claimable_before_its_time(backend: Backend) -> None:
    rec, _ = await backend.create_run(new_run("r", start_at=NOW + 100))
    assert rec.wake_at == NOW + 100
    assert rec.created_at == NOW
    assert await claim(backend, now=NOW + 99.5) == {}
    assert await backend.next_wake_at() == NOW + 100
    claims = await claim(backend, now=NOW + 100)
    assert list(claims) == ["r"]
    assert claims["r"].run.started_at == NOW + 100


# -- claim_runs ---------------------------------------------------------------------------


async def test_claim_takes_only_due_runs(backend: Backend) -> None:
    await backend.create_run(new_run("due"))
    await backend.create_run(new_run("early", at=NOW - 50))
    await backend.create_run(new_run("future", start_at=NOW + 1))
    assert set(await claim(backend)) == {"due", "early"}
    assert (await run_of(backend, "future")).status is RunStatus.PENDING
    assert list(await claim(backend, now=NOW + 1)) == ["future"]


async def test_claim_takes_only_listed_workflows(backend: Backend) -> None:
    await backend.create_run(new_run("a", "alpha"))
    await backend.create_run(new_run("b", "beta"))
    await backend.create_run(new_run("c", "gamma"))
    assert await claim(backend, workflows=()) == {}
    assert list(await claim(backend, workflows=("beta", "delta"))) == ["b"]
    assert (await run_of(backend, "a")).status is RunStatus.PENDING
    assert set(await claim(backend, workflows=("alpha", "beta", "gamma"))) == {"a", "c"}


async def test_claim_respects_limit(backend: Backend) -> None:
    for i in range(5):
        await backend.create_run(new_run(f"r{i}", at=NOW + i / 10))
    first = await claim(backend, now=NOW + 1, limit=2)
    second = await claim(backend, "w2", now=NOW + 1, limit=2)
    third = await claim(backend, "w3", now=NOW + 1, limit=2)
    assert (len(first), len(second), len(third)) == (2, 2, 1)
    assert set(first) | set(second) | set(third) == {f"r{i}" for i in range(5)}
    assert await claim(backend, "w4", now=NOW + 1) == {}


async def test_claim_leases_the_run(backend: Backend) -> None:
    await backend.create_run(new_run("r"))
    c = (await claim(backend, "w1", NOW + 2))["r"]
    rec = c.run
    assert rec.owner == "w1"
    assert rec.status is RunStatus.RUNNING
    assert rec.lease_token == 1 and c.token == 1
    assert rec.lease_until == NOW + 2 + TTL
    assert rec.started_at == NOW + 2
    assert rec.recoveries == 0
    assert await backend.get_run("r") == rec


async def test_claim_sets_started_at_once_and_increments_the_token(backend: Backend) -> None:
    c = await start(backend, "r")
    assert await backend.release("r", "w1", c.token, NOW + 5)
    again = (await claim(backend, "w2", NOW + 10))["r"]
    assert again.token == 2 and again.run.lease_token == 2
    assert again.run.owner == "w2"
    assert again.run.started_at == NOW  # the first start, not this one
    assert again.run.recoveries == 0  # given back, not recovered


async def test_claim_returns_the_due_inbox_items_in_order(backend: Backend) -> None:
    await backend.create_run(new_run("r", timeout=60.0))
    await backend.deliver(signal("r", b"one"), NOW)
    await backend.deliver(signal("r", b"two"), NOW)
    await backend.deliver(timer_item("r", b"later", NOW + 50), NOW)
    # A message stamped ahead of the claimer's clock (another process's clock) is due.
    await backend.deliver(signal("r", b"ahead", at=NOW + 50), NOW)
    c = (await claim(backend))["r"]
    # Not the deadline, not the timer "later": scheduled items wait for their time.
    assert [i.payload for i in c.inbox] == [b"one", b"two", b"ahead"]
    assert all(i.run_id == "r" and i.kind is InboxKind.SIGNAL for i in c.inbox)
    assert c.inbox[0].id < c.inbox[1].id
    assert c.inbox == await backend.read_inbox("r", NOW)


async def test_a_live_lease_is_not_claimed_and_an_expired_one_is_recovered(
    backend: Backend,
) -> None:
    c = await start(backend, "r", "w1")  # leased until NOW + TTL
    await backend.deliver(signal("r"), NOW + 1)  # makes it due, but it is still leased
    assert await claim(backend, "w2", NOW + TTL - 1) == {}
    taken = (await claim(backend, "w2", NOW + TTL + 1))["r"]
    assert taken.run.owner == "w2"
    assert taken.token == c.token + 1
    assert taken.run.recoveries == 1
    assert taken.run.started_at == NOW
    assert [i.kind for i in taken.inbox] == [InboxKind.SIGNAL]
    again = (await claim(backend, "w3", NOW + 2 * TTL + 2))["r"]
    assert again.run.recoveries == 2
    assert (await run_of(backend, "r")).recoveries == 2


# -- fencing ------------------------------------------------------------------------------


def everything(c: Claim, now: float = NOW) -> Checkpoint:
    """A checkpoint that would change every part of the run."""
    return checkpoint(
        c,
        now,
        entries=[entry(c.run.journal_len)],
        consumed=[i.id for i in c.inbox],
        inbox=[timer(c.run.id, 7, now + 10)],
        cancel_timers=[1],
        children=[new_run(f"{c.run.id}-child", parent_id=c.run.id, parent_pos=3)],
        events={"k": b"v"},
        outcome=Outcome.COMPLETED,
        result=b"done",
    )


async def test_a_checkpoint_with_a_stale_token_writes_nothing(backend: Backend) -> None:
    await backend.create_run(new_run("r"))
    await backend.deliver(signal("r"), NOW)
    old = (await claim(backend, "w1"))["r"]
    new = (await claim(backend, "w2", NOW + TTL + 1))["r"]  # the lease expired: taken over
    before = await state(backend, "r")
    result = await commit(backend, everything(old, NOW + TTL + 2))
    assert not result.applied
    assert await state(backend, "r") == before
    assert await backend.get_run("r-child") is None
    rec = await run_of(backend, "r")
    assert rec.status is RunStatus.RUNNING and rec.owner == "w2"
    # The current holder still writes.
    assert (await commit(backend, everything(new, NOW + TTL + 2))).applied


async def test_a_checkpoint_by_the_same_owner_with_an_old_token_writes_nothing(
    backend: Backend,
) -> None:
    old = await start(backend, "r", "w1")
    new = (await claim(backend, "w1", NOW + TTL + 1))["r"]  # same worker, new lease
    assert new.token == old.token + 1
    before = await state(backend, "r")
    assert not (await commit(backend, everything(old, NOW + TTL + 2))).applied
    assert await state(backend, "r") == before


async def test_a_checkpoint_by_another_owner_writes_nothing(backend: Backend) -> None:
    c = await start(backend, "r", "w1")
    before = await state(backend, "r")
    impostor = Checkpoint("r", "w2", c.token, NOW, NOW + TTL, entries=[entry(0)])
    assert not (await commit(backend, impostor)).applied
    assert await state(backend, "r") == before
    unknown = Checkpoint("nobody", "w1", 1, NOW, NOW + TTL, entries=[entry(0)])
    assert not (await commit(backend, unknown)).applied
    assert await backend.get_run("nobody") is None


async def test_a_checkpoint_after_release_writes_nothing(backend: Backend) -> None:
    c = await start(backend, "r")
    assert await backend.release("r", "w1", c.token, NOW)
    before = await state(backend, "r")
    assert not (await commit(backend, everything(c))).applied
    assert await state(backend, "r") == before


@pytest.mark.parametrize(
    "seqs",
    [[3], [1], [0], [2, 4], [2, 2], [1, 2]],
    ids=["gap", "duplicate-last", "duplicate-first", "gap-inside", "repeat-inside", "overlap"],
)
async def test_journal_seq_must_continue_the_journal(backend: Backend, seqs: list[int]) -> None:
    c = await start(backend, "r")
    assert (await commit(backend, checkpoint(c, entries=[entry(0), entry(1)]))).applied
    await backend.deliver(signal("r"), NOW)
    [item] = await backend.read_inbox("r", NOW)
    before = await state(backend, "r")
    bad = checkpoint(
        c,
        NOW + 1,
        entries=[entry(s, name="bad") for s in seqs],
        consumed=[item.id],
        inbox=[timer("r", 5, NOW + 10)],
        events={"k": b"v"},
        outcome=Outcome.COMPLETED,
        result=b"done",
    )
    assert not (await commit(backend, bad)).applied
    assert await state(backend, "r") == before
    # The lease is intact: the next checkpoint in sequence applies.
    assert (await commit(backend, checkpoint(c, NOW + 2, entries=[entry(2)]))).applied
    assert [e.seq for e in await backend.read_journal("r")] == [0, 1, 2]
    assert all(e.name == "step" for e in await backend.read_journal("r"))


# -- checkpoint effects -------------------------------------------------------------------


async def test_journal_entries_are_read_back_in_order(backend: Backend) -> None:
    c = await start(backend, "r")
    first = [
        JournalEntry(0, 0, EntryKind.STEP, "fetch", b'"page"', NOW, attempt=2),
        JournalEntry(1, 1, EntryKind.STEP_ATTEMPT, "charge", ERROR, NOW + 1, 1, failed=True),
        JournalEntry(2, -1, EntryKind.PATCH, "v2", None, NOW + 1),
    ]
    second = [
        JournalEntry(3, 2, EntryKind.TIMER, "sleep", None, NOW + 60),
        JournalEntry(4, 3, EntryKind.SIGNAL, "topic", b"m", NOW + 61),
        JournalEntry(5, 4, EntryKind.EVENT, "k", b"v", NOW + 61),
    ]
    assert (await commit(backend, checkpoint(c, entries=first))).applied
    assert await backend.read_journal("r") == first
    assert (await run_of(backend, "r")).journal_len == 3
    assert (await commit(backend, checkpoint(c, NOW + 61, entries=second))).applied
    assert await backend.read_journal("r") == first + second
    rec = await run_of(backend, "r")
    assert rec.journal_len == 6
    assert rec.updated_at == NOW + 61
    assert rec.status is RunStatus.RUNNING and rec.owner == "w1"


async def test_a_checkpoint_without_outcome_keeps_and_extends_the_lease(backend: Backend) -> None:
    c = await start(backend, "r")
    result = await commit(backend, checkpoint(c, NOW + 20, entries=[entry(0)]))
    assert result.applied
    assert result.mailbox == 0
    rec = await run_of(backend, "r")
    assert rec.owner == "w1" and rec.lease_token == c.token
    assert rec.lease_until == NOW + 20 + TTL
    assert await claim(backend, "w2", NOW + TTL + 10) == {}  # the old lease would have expired


async def test_consumed_inbox_items_are_no_longer_returned(backend: Backend) -> None:
    await backend.create_run(new_run("r"))
    await backend.deliver(signal("r", b"one"), NOW)
    await backend.deliver(signal("r", b"two"), NOW)
    c = (await claim(backend))["r"]
    one, two = c.inbox
    assert (await commit(backend, checkpoint(c, consumed=[one.id]))).applied
    assert await backend.read_inbox("r", LATER) == [two]
    assert await backend.release("r", "w1", c.token, NOW)
    assert (await claim(backend, "w2", NOW + 1))["r"].inbox == [two]


async def test_consuming_another_runs_item_does_nothing_to_it(backend: Backend) -> None:
    await backend.create_run(new_run("other", "elsewhere"))
    await backend.deliver(signal("other"), NOW)
    [theirs] = await backend.read_inbox("other", NOW)
    c = await start(backend, "r")
    assert (await commit(backend, checkpoint(c, consumed=[theirs.id]))).applied
    assert await backend.read_inbox("other", NOW) == [theirs]


async def test_own_timers_are_idempotent_by_key(backend: Backend) -> None:
    c = await start(backend, "r")
    assert (await commit(backend, checkpoint(c, inbox=[timer("r", 2, NOW + 60)]))).applied
    # A replayed step asks for the same timer again: still one timer.
    assert (await commit(backend, checkpoint(c, inbox=[timer("r", 2, NOW + 90)]))).applied
    assert await backend.read_inbox("r", NOW + 59) == []
    [item] = await backend.read_inbox("r", LATER)
    assert (item.kind, item.pos, item.visible_at, item.key) == (
        InboxKind.TIMER,
        2,
        NOW + 60,
        "timer:0:2",
    )
    # Consumed, its key still may not be reused.
    assert (await commit(backend, checkpoint(c, NOW + 60, consumed=[item.id]))).applied
    assert (await commit(backend, checkpoint(c, NOW + 60, inbox=[timer("r", 2, NOW + 99)]))).applied
    assert await backend.read_inbox("r", LATER) == []
    # Items to itself are not news from outside: the mailbox stays put.
    assert (await run_of(backend, "r")).mailbox == 0


async def test_cancel_timers_removes_an_unconsumed_timer_by_position(backend: Backend) -> None:
    c = await start(backend, "r")
    timers = [timer("r", 2, NOW + 60), timer("r", 3, NOW + 60), timer("r", 4, NOW + 5)]
    assert (await commit(backend, checkpoint(c, inbox=timers))).applied
    [fired] = await backend.read_inbox("r", NOW + 5)
    assert fired.pos == 4
    assert (await commit(backend, checkpoint(c, NOW + 5, consumed=[fired.id]))).applied
    cp = checkpoint(c, NOW + 6, cancel_timers=[2, 4, 9])
    assert (await commit(backend, cp)).applied
    assert [i.pos for i in await backend.read_inbox("r", LATER)] == [3]
    # A timer the run consumed stays recorded: its key is not free again.
    assert (await commit(backend, checkpoint(c, NOW + 6, inbox=[timer("r", 4, NOW + 7)]))).applied
    assert [i.pos for i in await backend.read_inbox("r", LATER)] == [3]
    # The cancelled one's key is free again.
    assert (await commit(backend, checkpoint(c, NOW + 6, inbox=[timer("r", 2, NOW + 8)]))).applied
    assert [(i.pos, i.visible_at) for i in await backend.read_inbox("r", LATER)] == [
        (3, NOW + 60),
        (2, NOW + 8),
    ]


async def test_events_are_set_and_overwritten(backend: Backend) -> None:
    c = await start(backend, "r")
    assert (await commit(backend, checkpoint(c, events={"a": b"1", "b": b"2"}))).applied
    assert await backend.get_event("r", "a") == b"1"
    assert await backend.get_event("r", "b") == b"2"
    assert (await commit(backend, checkpoint(c, events={"a": b"3", "empty": b""}))).applied
    assert await backend.get_event("r", "a") == b"3"
    assert await backend.get_event("r", "empty") == b""
    assert await backend.get_event("r", "b") == b"2"
    assert await backend.get_event("r", "missing") is None
    assert await backend.get_event("other", "a") is None


async def test_children_are_created_idempotently_with_their_parent(backend: Backend) -> None:
    c = await start(backend, "parent")
    child = NewRun("child", "kid", b"child input", NOW, parent_id="parent", parent_pos=4)
    assert (await commit(backend, checkpoint(c, children=[child]))).applied
    rec = await run_of(backend, "child")
    assert (rec.workflow, rec.input, rec.status) == ("kid", b"child input", RunStatus.PENDING)
    assert (rec.parent_id, rec.parent_pos) == ("parent", 4)
    assert rec.wake_at == NOW
    # The parent's journal replays the start: nothing changes.
    again = NewRun("child", "kid", b"changed", NOW + 1, parent_id="parent", parent_pos=4)
    assert (await commit(backend, checkpoint(c, NOW + 1, children=[again]))).applied
    assert await backend.get_run("child") == rec
    page = await backend.list_runs(RunFilter(parent_id="parent"), 10, None)
    assert [r.id for r in page.runs] == ["child"]
    assert list(await claim(backend, "w2", NOW + 1, workflows=("kid",))) == ["child"]


async def test_a_child_with_a_timeout_gets_its_deadline(backend: Backend) -> None:
    c = await start(backend, "parent")
    child = NewRun("child", "kid", b"", NOW, parent_id="parent", parent_pos=0, timeout=30.0)
    assert (await commit(backend, checkpoint(c, children=[child]))).applied
    [deadline] = await backend.read_inbox("child", LATER)
    assert (deadline.kind, deadline.visible_at) == (InboxKind.DEADLINE, NOW + 30)


async def waiting_parent(backend: Backend) -> str:
    """A parent that started child "child" at position 4 and released itself to wait."""
    p = await start(backend, "parent")
    child = NewRun("child", "kid", b"", NOW, parent_id="parent", parent_pos=4)
    cp = checkpoint(
        p,
        entries=[JournalEntry(0, 4, EntryKind.CHILD_STARTED, "kid", None, NOW)],
        children=[child],
        release=True,
    )
    assert (await commit(backend, cp)).applied
    rec = await run_of(backend, "parent")
    assert rec.wake_at is None and rec.owner is None
    return "parent"


@pytest.mark.parametrize(
    ("outcome", "result", "error"),
    [
        (Outcome.COMPLETED, b'"the result"', None),
        (Outcome.FAILED, None, ERROR),
        (Outcome.CANCELLED, None, ERROR),
    ],
    ids=["completed", "failed", "cancelled"],
)
async def test_a_finished_child_notifies_its_parent(
    backend: Backend, outcome: Outcome, result: bytes | None, error: bytes | None
) -> None:
    await waiting_parent(backend)
    c = (await claim(backend, "w2", NOW + 5, workflows=("kid",)))["child"]
    cp = checkpoint(c, NOW + 10, outcome=outcome, result=result, error=error)
    assert (await commit(backend, cp)).applied
    parent = await run_of(backend, "parent")
    assert parent.mailbox == 1
    assert parent.wake_at == NOW + 10
    [item] = await backend.read_inbox("parent", NOW + 10)
    assert item.kind is InboxKind.CHILD
    assert item.pos == 4
    assert item.topic == outcome.value
    assert item.payload == (result if outcome is Outcome.COMPLETED else error)
    assert (await claim(backend, "w3", NOW + 10))["parent"].inbox == [item]


async def test_cancel_runs_delivers_cancel_to_the_target(backend: Backend) -> None:
    await backend.create_run(new_run("target", "other"))
    t = (await claim(backend, "w2", workflows=("other",)))["target"]
    c = await start(backend, "r", "w1")
    cp = checkpoint(c, NOW + 1, cancel_runs=[("target", "no longer needed"), ("ghost", "gone")])
    assert (await commit(backend, cp)).applied  # an unknown target is ignored
    [item] = await backend.read_inbox("target", NOW + 1)
    assert item.kind is InboxKind.CANCEL
    assert item.payload == b"no longer needed"
    rec = await run_of(backend, "target")
    assert rec.status is RunStatus.RUNNING  # its worker unwinds it
    assert rec.mailbox == t.run.mailbox + 1
    # Asked twice, delivered once.
    assert (await commit(backend, checkpoint(c, NOW + 2, cancel_runs=[("target", "x")]))).applied
    assert len(await backend.read_inbox("target", LATER)) == 1


async def test_cancelling_a_child_that_never_started_finishes_it_and_tells_the_parent(
    backend: Backend,
) -> None:
    p = await start(backend, "parent")
    child = NewRun("child", "kid", b"", NOW, parent_id="parent", parent_pos=4)
    assert (await commit(backend, checkpoint(p, children=[child]))).applied
    cp = checkpoint(p, NOW + 1, cancel_runs=[("child", "stop")])
    assert (await commit(backend, cp)).applied
    rec = await run_of(backend, "child")
    assert rec.status is RunStatus.CANCELLED
    assert rec.finished_at == NOW + 1
    assert rec.error is not None
    error = json.loads(rec.error)
    assert (error["type"], error["message"]) == ("Cancelled", "stop")
    assert await claim(backend, "w2", LATER, workflows=("kid",)) == {}
    [item] = await backend.read_inbox("parent", NOW + 1)
    assert (item.kind, item.pos, item.topic, item.payload) == (
        InboxKind.CHILD,
        4,
        "cancelled",
        rec.error,
    )


async def test_messages_to_other_runs_are_delivered_and_wake_them(backend: Backend) -> None:
    await backend.create_run(new_run("b", "other"))
    b = (await claim(backend, "w2", workflows=("other",)))["b"]
    assert (await commit(backend, checkpoint(b, release=True))).applied
    assert (await run_of(backend, "b")).wake_at is None
    a = await start(backend, "a", "w1", NOW + 1)
    message = signal("b", b"hi", key="msg:from-a", at=NOW + 1)
    assert (await commit(backend, checkpoint(a, NOW + 1, inbox=[message]))).applied
    assert (await commit(backend, checkpoint(a, NOW + 2, inbox=[message]))).applied
    rec = await run_of(backend, "b")
    assert rec.mailbox == 1
    assert rec.wake_at == NOW + 1
    [item] = (await claim(backend, "w3", NOW + 2, workflows=("other",)))["b"].inbox
    assert (item.kind, item.payload, item.key) == (InboxKind.SIGNAL, b"hi", "msg:from-a")


@pytest.mark.parametrize(
    ("outcome", "result", "error"),
    [
        (Outcome.COMPLETED, b'"the result"', None),
        (Outcome.FAILED, None, ERROR),
        (Outcome.CANCELLED, None, ERROR),
    ],
    ids=["completed", "failed", "cancelled"],
)
async def test_a_final_outcome_finishes_the_run(
    backend: Backend, outcome: Outcome, result: bytes | None, error: bytes | None
) -> None:
    c = await start(backend, "r", timeout=600.0)
    cp = checkpoint(c, NOW + 5, entries=[entry(0)], outcome=outcome, result=result, error=error)
    assert (await commit(backend, cp)).applied
    rec = await run_of(backend, "r")
    assert rec.status is RunStatus(outcome.value)
    assert rec.status.is_terminal
    assert (rec.result, rec.error) == (result, error)
    assert rec.finished_at == NOW + 5
    assert rec.started_at == NOW
    assert (rec.owner, rec.lease_until, rec.wake_at) == (None, None, None)
    assert rec.lease_token == c.token
    assert await backend.next_wake_at() is None
    # Nothing brings it back: not its deadline, not a message, not a lost lease.
    await backend.deliver(signal("r"), NOW + 6)
    assert await claim(backend, "w2", LATER) == {}
    assert not (await commit(backend, checkpoint(c, NOW + 7, entries=[entry(1)]))).applied
    assert await backend.release("r", "w1", c.token, NOW + 7) is False
    assert (await run_of(backend, "r")).status is RunStatus(outcome.value)


async def test_held_stops_the_run_until_an_operator_acts(backend: Backend) -> None:
    c = await start(backend, "r", timeout=600.0)
    assert (await commit(backend, checkpoint(c, entries=[entry(0)]))).applied
    cp = checkpoint(c, NOW + 5, outcome=Outcome.HELD, error=ERROR)
    assert (await commit(backend, cp)).applied
    rec = await run_of(backend, "r")
    assert rec.status is RunStatus.HELD
    assert not rec.status.is_terminal
    assert rec.error == ERROR
    assert rec.result is None and rec.finished_at is None
    assert (rec.owner, rec.lease_until, rec.wake_at) == (None, None, None)
    assert rec.journal_len == 1  # kept for whoever repairs it
    assert await backend.next_wake_at() is None
    await backend.deliver(signal("r"), NOW + 6)
    assert await claim(backend, "w2", LATER) == {}
    assert (await run_of(backend, "r")).status is RunStatus.HELD


async def test_continued_starts_a_new_generation(backend: Backend) -> None:
    await backend.create_run(new_run("r"))
    await backend.deliver(signal("r", b"seen", key="msg:1"), NOW)
    await backend.deliver(signal("r", b"unseen", key="msg:2"), NOW)
    c = (await claim(backend))["r"]
    seen, unseen = c.inbox
    first = checkpoint(
        c,
        entries=[entry(0), JournalEntry(1, 1, EntryKind.SIGNAL, "topic", b"seen", NOW)],
        consumed=[seen.id],
        inbox=[
            timer("r", 2, NOW + 60),
            NewInboxItem("r", InboxKind.RETRY, NOW + 5, pos=3, key="retry:0:3:1"),
        ],
    )
    assert (await commit(backend, first)).applied
    cp = checkpoint(c, NOW + 10, entries=[entry(2)], outcome=Outcome.CONTINUED, new_input=b"next")
    assert (await commit(backend, cp)).applied
    rec = await run_of(backend, "r")
    assert rec.generation == 1
    assert rec.journal_len == 0
    assert await backend.read_journal("r") == []
    assert rec.input == b"next"
    assert rec.status is RunStatus.RUNNING
    assert (rec.owner, rec.lease_until) == (None, None)
    assert rec.wake_at == NOW + 10
    assert rec.finished_at is None and rec.result is None
    # Signals not yet consumed carry over; timers, retries and consumed items do not.
    assert await backend.read_inbox("r", LATER) == [unseen]
    again = (await claim(backend, "w2", NOW + 10))["r"]  # runnable at once
    assert again.inbox == [unseen]
    assert again.run.generation == 1
    assert again.run.started_at == NOW + 10  # the new generation starts its own clock
    assert again.run.recoveries == 0
    # The new generation journals from 0 and may use its own keys.
    cp = checkpoint(again, NOW + 11, entries=[entry(0)], inbox=[timer("r", 2, NOW + 20, 1)])
    assert (await commit(backend, cp)).applied
    assert [e.seq for e in await backend.read_journal("r")] == [0]
    assert [i.key for i in await backend.read_inbox("r", LATER)] == [unseen.key, "timer:1:2"]
    # A timer of generation 1 is cancelled by position in generation 1.
    assert (await commit(backend, checkpoint(again, NOW + 12, cancel_timers=[2]))).applied
    assert await backend.read_inbox("r", LATER) == [unseen]


async def test_continued_keeps_the_runs_deadline(backend: Backend) -> None:
    # The timeout counts from the run's first start and continue-as-new keeps the run
    # (same id, same handle): the deadline must still fire in the new generation.
    c = await start(backend, "r", timeout=60.0)
    assert (await commit(backend, checkpoint(c, NOW + 10, outcome=Outcome.CONTINUED))).applied
    assert kinds(await backend.read_inbox("r", LATER)) == [InboxKind.DEADLINE]
    [deadline] = await backend.read_inbox("r", LATER)
    assert (deadline.kind, deadline.visible_at) == (InboxKind.DEADLINE, NOW + 60)
    again = (await claim(backend, "w1", NOW + 10))["r"]
    assert (await commit(backend, checkpoint(again, NOW + 11, release=True))).applied
    assert (await run_of(backend, "r")).wake_at == NOW + 60


async def test_continued_keeps_a_cancel_its_worker_had_not_seen(backend: Backend) -> None:
    # deliver() said the cancel was accepted; it arrived after the worker read its inbox,
    # so the new generation must still receive it.
    c = await start(backend, "r")
    cancel = NewInboxItem("r", InboxKind.CANCEL, NOW + 1, payload=b"stop", key="cancel")
    assert await backend.deliver(cancel, NOW + 1)
    cp = checkpoint(c, NOW + 2, outcome=Outcome.CONTINUED, new_input=b"next")
    assert cp.mailbox_seen == 0
    assert (await commit(backend, cp)).applied
    again = (await claim(backend, "w1", NOW + 2))["r"]
    assert [(i.kind, i.payload) for i in again.inbox] == [(InboxKind.CANCEL, b"stop")]


async def test_continued_without_new_input_keeps_the_input(backend: Backend) -> None:
    c = await start(backend, "r")
    assert (await commit(backend, checkpoint(c, outcome=Outcome.CONTINUED))).applied
    assert (await run_of(backend, "r")).input == b"input"


# -- release in a checkpoint: when the run next needs a worker ---------------------------


async def test_release_with_nothing_pending_waits_for_news(backend: Backend) -> None:
    c = await start(backend, "r")
    result = await commit(backend, checkpoint(c, NOW + 1, entries=[entry(0)], release=True))
    assert result.applied
    rec = await run_of(backend, "r")
    assert (rec.owner, rec.lease_until, rec.wake_at) == (None, None, None)
    assert rec.status is RunStatus.RUNNING
    assert rec.lease_token == c.token
    assert await claim(backend, "w2", LATER) == {}
    assert await backend.next_wake_at() is None


async def test_release_wakes_at_the_earliest_timer_ignoring_seen_signals(
    backend: Backend,
) -> None:
    await backend.create_run(new_run("r", timeout=600.0))
    await backend.deliver(signal("r"), NOW)  # seen by the worker, left for a later receive()
    c = (await claim(backend))["r"]
    assert c.run.mailbox == 1
    cp = checkpoint(
        c,
        NOW + 1,
        inbox=[
            timer("r", 0, NOW + 60),
            NewInboxItem("r", InboxKind.RETRY, NOW + 45, pos=1, key="retry:0:1:1"),
            timer("r", 2, NOW + 90),
        ],
        release=True,
    )
    assert (await commit(backend, cp)).applied
    assert (await run_of(backend, "r")).wake_at == NOW + 45
    assert await backend.next_wake_at() == NOW + 45
    assert await claim(backend, "w2", NOW + 44) == {}
    assert list(await claim(backend, "w2", NOW + 45)) == ["r"]


async def test_release_counts_the_deadline_as_a_timer(backend: Backend) -> None:
    c = await start(backend, "r", timeout=100.0)
    assert (await commit(backend, checkpoint(c, NOW + 1, release=True))).applied
    assert (await run_of(backend, "r")).wake_at == NOW + 100


async def test_release_with_only_seen_signals_waits_for_news(backend: Backend) -> None:
    await backend.create_run(new_run("r"))
    await backend.deliver(signal("r"), NOW)
    c = (await claim(backend))["r"]
    assert (await commit(backend, checkpoint(c, NOW + 1, release=True))).applied
    assert (await run_of(backend, "r")).wake_at is None
    await backend.deliver(signal("r", b"another"), NOW + 2)
    assert (await run_of(backend, "r")).wake_at == NOW + 2
    assert len((await claim(backend, "w2", NOW + 2))["r"].inbox) == 2


async def test_release_after_unseen_news_wakes_at_once(backend: Backend) -> None:
    c = await start(backend, "r")
    # A message arrives while the worker is busy; its checkpoint has not seen it.
    await backend.deliver(signal("r"), NOW + 1)
    cp = checkpoint(c, NOW + 2, inbox=[timer("r", 0, NOW + 60)], release=True)
    assert cp.mailbox_seen == 0
    result = await commit(backend, cp)
    assert result.applied
    assert result.mailbox == 1
    assert (await run_of(backend, "r")).wake_at == NOW + 2
    assert list(await claim(backend, "w2", NOW + 2)) == ["r"]


async def test_a_batch_applies_every_checkpoint_that_is_not_fenced_off(backend: Backend) -> None:
    for name in "abcd":
        await backend.create_run(new_run(name))
    claims = await claim(backend)
    assert set(claims) == set("abcd")
    a, b, c, d = (claims[n] for n in "abcd")
    before_b = await state(backend, "b")
    before_c = await state(backend, "c")
    batch = [
        checkpoint(a, entries=[entry(0)], events={"k": b"a"}),
        Checkpoint("b", "w1", b.token + 1, NOW, NOW + TTL, entries=[entry(0)], events={"k": b"b"}),
        checkpoint(c, entries=[entry(1)], events={"k": b"c"}),  # a gap
        checkpoint(d, entries=[entry(0)], outcome=Outcome.COMPLETED, result=b"d"),
    ]
    results = await backend.checkpoint(batch)
    assert [r.applied for r in results] == [True, False, False, True]
    assert [e.seq for e in await backend.read_journal("a")] == [0]
    assert await backend.get_event("a", "k") == b"a"
    assert await state(backend, "b") == before_b
    assert await state(backend, "c") == before_c
    assert (await run_of(backend, "d")).status is RunStatus.COMPLETED
    assert await backend.checkpoint([]) == []


async def test_a_batch_applies_checkpoints_of_one_run_in_order(backend: Backend) -> None:
    c = await start(backend, "r")
    batch = [
        checkpoint(c, entries=[entry(0)], events={"k": b"1"}),
        checkpoint(c, NOW + 1, entries=[entry(1)], events={"k": b"2"}),
        checkpoint(c, NOW + 2, entries=[entry(1)]),  # already taken by the one before
    ]
    results = await backend.checkpoint(batch)
    assert [r.applied for r in results] == [True, True, False]
    assert [e.seq for e in await backend.read_journal("r")] == [0, 1]
    assert await backend.get_event("r", "k") == b"2"


# -- deliver ------------------------------------------------------------------------------


async def test_deliver_to_an_unknown_run_raises(backend: Backend) -> None:
    with pytest.raises(RunNotFound):
        await backend.deliver(signal("nobody"), NOW)
    assert await backend.get_run("nobody") is None


async def test_deliver_is_idempotent_by_key(backend: Backend) -> None:
    await backend.create_run(new_run("r"))
    await backend.create_run(new_run("s", "other"))
    assert await backend.deliver(signal("r", b"first", key="msg:k"), NOW)
    assert not await backend.deliver(signal("r", b"second", key="msg:k"), NOW + 1)
    assert [i.payload for i in await backend.read_inbox("r", LATER)] == [b"first"]
    assert (await run_of(backend, "r")).mailbox == 1
    assert await backend.deliver(signal("s", key="msg:k"), NOW)  # keys are per run
    # Still refused after the first one was consumed.
    c = (await claim(backend))["r"]
    [item] = c.inbox
    assert (await commit(backend, checkpoint(c, NOW + 2, consumed=[item.id], release=True))).applied
    assert not await backend.deliver(signal("r", b"third", key="msg:k"), NOW + 3)
    assert await backend.read_inbox("r", LATER) == []
    rec = await run_of(backend, "r")
    assert rec.mailbox == 1
    assert rec.wake_at is None


async def test_deliver_without_key_always_adds(backend: Backend) -> None:
    await backend.create_run(new_run("r"))
    assert await backend.deliver(signal("r"), NOW)
    assert await backend.deliver(signal("r"), NOW)
    assert len(await backend.read_inbox("r", NOW)) == 2
    assert (await run_of(backend, "r")).mailbox == 2


async def test_deliver_wakes_a_waiting_run(backend: Backend) -> None:
    c = await start(backend, "r")
    assert (await commit(backend, checkpoint(c, release=True))).applied
    assert await claim(backend, "w2", NOW + 50) == {}
    assert await backend.deliver(signal("r", b"hello"), NOW + 50)
    rec = await run_of(backend, "r")
    assert rec.mailbox == 1
    assert rec.wake_at == NOW + 50
    assert await backend.next_wake_at() == NOW + 50
    woken = (await claim(backend, "w2", NOW + 50))["r"]
    assert [i.payload for i in woken.inbox] == [b"hello"]
    assert woken.run.mailbox == 1
    assert woken.run.recoveries == 0


async def test_deliver_brings_a_later_wake_forward(backend: Backend) -> None:
    c = await start(backend, "r")
    cp = checkpoint(c, inbox=[timer("r", 0, NOW + 500)], release=True)
    assert (await commit(backend, cp)).applied
    assert (await run_of(backend, "r")).wake_at == NOW + 500
    await backend.deliver(signal("r"), NOW + 10)
    assert (await run_of(backend, "r")).wake_at == NOW + 10
    # An earlier wake is never pushed back by a message.
    await backend.deliver(signal("r", at=NOW + 300), NOW + 20)
    assert (await run_of(backend, "r")).wake_at == NOW + 10


async def test_deliver_of_a_future_item_wakes_the_run_when_it_is_visible(
    backend: Backend,
) -> None:
    c = await start(backend, "r")
    assert (await commit(backend, checkpoint(c, release=True))).applied
    await backend.deliver(signal("r", at=NOW + 40), NOW + 10)
    assert (await run_of(backend, "r")).wake_at == NOW + 40
    assert await claim(backend, "w2", NOW + 39) == {}
    assert len((await claim(backend, "w2", NOW + 40))["r"].inbox) == 1


async def test_cancel_finishes_a_run_that_never_started(backend: Backend) -> None:
    await backend.create_run(new_run("r"))
    await backend.create_run(new_run("delayed", start_at=NOW + 100))
    cancel = NewInboxItem("r", InboxKind.CANCEL, NOW + 1, payload=b"changed my mind", key="cancel")
    assert await backend.deliver(cancel, NOW + 1)
    rec = await run_of(backend, "r")
    assert rec.status is RunStatus.CANCELLED
    assert rec.finished_at == NOW + 1
    assert rec.started_at is None
    assert rec.error is not None
    error = json.loads(rec.error)
    assert (error["type"], error["message"]) == ("Cancelled", "changed my mind")
    assert (rec.owner, rec.wake_at) == (None, None)
    cancel = NewInboxItem("delayed", InboxKind.CANCEL, NOW + 1, key="cancel")
    assert await backend.deliver(cancel, NOW + 1)
    assert (await run_of(backend, "delayed")).status is RunStatus.CANCELLED
    assert await claim(backend, "w1", LATER) == {}
    assert await backend.next_wake_at() is None


async def test_cancel_of_a_never_started_child_tells_its_parent(backend: Backend) -> None:
    await waiting_parent(backend)
    cancel = NewInboxItem("child", InboxKind.CANCEL, NOW + 3, payload=b"stop", key="cancel")
    assert await backend.deliver(cancel, NOW + 3)
    child = await run_of(backend, "child")
    assert child.status is RunStatus.CANCELLED
    parent = await run_of(backend, "parent")
    assert parent.wake_at == NOW + 3
    assert parent.mailbox == 1
    [item] = (await claim(backend, "w2", NOW + 3))["parent"].inbox
    assert (item.kind, item.pos, item.topic, item.payload) == (
        InboxKind.CHILD,
        4,
        "cancelled",
        child.error,
    )


async def test_cancel_of_a_running_run_is_left_to_its_worker(backend: Backend) -> None:
    c = await start(backend, "r")
    assert await backend.deliver(NewInboxItem("r", InboxKind.CANCEL, NOW, key="cancel"), NOW)
    rec = await run_of(backend, "r")
    assert rec.status is RunStatus.RUNNING and rec.owner == "w1"
    assert rec.mailbox == c.run.mailbox + 1
    assert kinds(await backend.read_inbox("r", NOW)) == [InboxKind.CANCEL]
    # A second request is the same request.
    assert not await backend.deliver(NewInboxItem("r", InboxKind.CANCEL, NOW, key="cancel"), NOW)


async def test_cancel_of_a_finished_run_is_refused(backend: Backend) -> None:
    c = await start(backend, "r")
    assert (await commit(backend, checkpoint(c, outcome=Outcome.COMPLETED, result=b"1"))).applied
    before = await state(backend, "r")
    cancel = NewInboxItem("r", InboxKind.CANCEL, NOW + 1, payload=b"too late", key="cancel")
    assert await backend.deliver(cancel, NOW + 1) is False
    assert await state(backend, "r") == before


# -- extend_leases and release ------------------------------------------------------------


async def test_extend_leases_keeps_only_the_leases_still_held(backend: Backend) -> None:
    await backend.create_run(new_run("kept"))
    kept = (await claim(backend, "w1", NOW, ttl=TTL))["kept"]
    await backend.create_run(new_run("lost"))
    lost = (await claim(backend, "w1", NOW, ttl=5.0))["lost"]
    assert (await claim(backend, "w2", NOW + 6))["lost"].run.owner == "w2"
    await backend.deliver(signal("kept"), NOW + 7)
    held = await backend.extend_leases(
        "w1", {"kept": kept.token, "lost": lost.token, "nobody": 1}, NOW + 100
    )
    assert held == {"kept": 1}  # the mailbox, so the worker sees news
    assert (await run_of(backend, "kept")).lease_until == NOW + 100
    rec = await run_of(backend, "lost")
    assert (rec.owner, rec.lease_until) == ("w2", NOW + 6 + TTL)
    # Past its first lease, "kept" is now leased until NOW + 100 (and "lost" by w2).
    assert await claim(backend, "w3", NOW + 33) == {}
    assert await backend.extend_leases("w1", {"kept": kept.token + 1}, NOW + 200) == {}
    assert await backend.extend_leases("w3", {"kept": kept.token}, NOW + 200) == {}
    assert (await run_of(backend, "kept")).lease_until == NOW + 100


async def test_release_gives_the_run_back_to_be_claimed_at_once(backend: Backend) -> None:
    c = await start(backend, "r")
    assert (await commit(backend, checkpoint(c, entries=[entry(0)], release=True))).applied
    await backend.deliver(signal("r"), NOW + 1)
    c = (await claim(backend, "w1", NOW + 1))["r"]
    assert await backend.release("r", "w2", c.token, NOW + 2) is False
    assert await backend.release("r", "w1", c.token - 1, NOW + 2) is False
    assert await backend.release("nobody", "w1", c.token, NOW + 2) is False
    assert (await run_of(backend, "r")).owner == "w1"
    assert await backend.release("r", "w1", c.token, NOW + 2) is True
    rec = await run_of(backend, "r")
    assert (rec.owner, rec.lease_until) == (None, None)
    assert rec.wake_at == NOW + 2
    assert rec.journal_len == 1 and rec.status is RunStatus.RUNNING
    assert await backend.release("r", "w1", c.token, NOW + 2) is False  # only once
    again = (await claim(backend, "w2", NOW + 2))["r"]
    assert again.token == c.token + 1
    assert again.run.recoveries == 0
    assert len(again.inbox) == 1  # nothing was consumed


# -- reads --------------------------------------------------------------------------------


async def test_read_inbox_returns_visible_unconsumed_items_in_id_order(backend: Backend) -> None:
    await backend.create_run(new_run("r"))
    await backend.deliver(signal("r", b"a"), NOW)
    await backend.deliver(timer_item("r", b"b", NOW + 50), NOW)
    await backend.deliver(signal("r", b"c"), NOW)
    assert [i.payload for i in await backend.read_inbox("r", NOW)] == [b"a", b"c"]
    items = await backend.read_inbox("r", NOW + 50)
    assert [i.payload for i in items] == [b"a", b"b", b"c"]
    assert [i.id for i in items] == sorted(i.id for i in items)
    c = (await claim(backend))["r"]
    assert (await commit(backend, checkpoint(c, consumed=[items[0].id]))).applied
    assert [i.payload for i in await backend.read_inbox("r", NOW + 50)] == [b"b", b"c"]
    item = items[1]
    assert (item.run_id, item.kind, item.pos, item.visible_at, item.key) == (
        "r",
        InboxKind.TIMER,
        1,
        NOW + 50,
        "timer:0:1",
    )


async def test_next_wake_at(backend: Backend) -> None:
    assert await backend.next_wake_at() is None
    await backend.create_run(new_run("a", start_at=NOW + 200))
    await backend.create_run(new_run("b", start_at=NOW + 100))
    assert await backend.next_wake_at() == NOW + 100
    # A leased run needs a worker again only if its lease runs out.
    c = (await claim(backend, "w1", NOW + 100))["b"]
    assert await backend.next_wake_at() == NOW + 100 + TTL
    assert (await commit(backend, checkpoint(c, NOW + 101, outcome=Outcome.COMPLETED))).applied
    assert await backend.next_wake_at() == NOW + 200
    cancel = NewInboxItem("a", InboxKind.CANCEL, NOW + 102, key="cancel")
    assert await backend.deliver(cancel, NOW + 102)
    assert await backend.next_wake_at() is None


# -- list_runs ----------------------------------------------------------------------------


async def ids(backend: Backend, limit: int = 100, **filters: Any) -> list[str]:
    page = await backend.list_runs(RunFilter(**filters), limit, None)
    return [r.id for r in page.runs]


async def test_list_runs_newest_first_with_filters(backend: Backend) -> None:
    await backend.create_run(new_run("a1", "alpha", at=NOW + 1))
    await backend.create_run(new_run("a2", "alpha", at=NOW + 2))
    await backend.create_run(new_run("b1", "beta", at=NOW + 2))
    await backend.create_run(new_run("b2", "beta", at=NOW + 3, parent_id="a1", parent_pos=0))
    await backend.create_run(new_run("g1", "gamma", at=NOW + 4))
    g = (await claim(backend, now=NOW + 5, workflows=("gamma",)))["g1"]
    assert (await commit(backend, checkpoint(g, NOW + 5, outcome=Outcome.COMPLETED))).applied

    assert await ids(backend) == ["g1", "b2", "b1", "a2", "a1"]  # same instant: id descending
    assert await ids(backend, workflow="alpha") == ["a2", "a1"]
    assert await ids(backend, workflow="nothing") == []
    assert await ids(backend, status=RunStatus.COMPLETED) == ["g1"]
    assert await ids(backend, status=RunStatus.PENDING) == ["b2", "b1", "a2", "a1"]
    assert await ids(backend, parent_id="a1") == ["b2"]
    assert await ids(backend, created_after=NOW + 2) == ["g1", "b2", "b1", "a2"]  # inclusive
    assert await ids(backend, created_before=NOW + 2) == ["a1"]  # exclusive
    assert await ids(backend, created_after=NOW + 2, created_before=NOW + 4) == ["b2", "b1", "a2"]
    assert await ids(backend, workflow="beta", created_after=NOW + 2.5) == ["b2"]
    assert await ids(backend, workflow="beta", status=RunStatus.PENDING, parent_id="a1") == ["b2"]
    [rec] = (await backend.list_runs(RunFilter(workflow="gamma"), 10, None)).runs
    assert rec == await backend.get_run("g1")


async def test_list_runs_pages_end_with_no_cursor(backend: Backend) -> None:
    empty = await backend.list_runs(RunFilter(), 5, None)
    assert (empty.runs, empty.cursor) == ([], None)
    for i in range(10):
        await backend.create_run(new_run(f"r{i}", at=NOW + i))
    first = await backend.list_runs(RunFilter(), 5, None)
    assert [r.id for r in first.runs] == [f"r{i}" for i in range(9, 4, -1)]
    assert first.cursor is not None
    second = await backend.list_runs(RunFilter(), 5, first.cursor)
    assert [r.id for r in second.runs] == [f"r{i}" for i in range(4, -1, -1)]
    assert second.cursor is None  # exactly full, and nothing after it
    filtered = await backend.list_runs(RunFilter(created_before=NOW + 7), 4, None)
    assert [r.id for r in filtered.runs] == ["r6", "r5", "r4", "r3"]
    rest = await backend.list_runs(RunFilter(created_before=NOW + 7), 4, filtered.cursor)
    assert [r.id for r in rest.runs] == ["r2", "r1", "r0"]
    assert rest.cursor is None


async def test_list_runs_rejects_a_bad_cursor(backend: Backend) -> None:
    await backend.create_run(new_run("r"))
    with pytest.raises(ValueError):
        await backend.list_runs(RunFilter(), 5, "not a cursor")


async def test_list_runs_rejects_a_forged_cursor(backend: Backend) -> None:
    """A cursor no list could have made (a NUL in its id, a time that is no number)."""
    await backend.create_run(new_run("r"))
    for forged in ([NOW, "a\0b"], ["NaN", "r"], [float("inf"), "r"]):
        cursor = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()
        with pytest.raises(ValueError):
            await backend.list_runs(RunFilter(), 5, cursor)


async def test_count_runs_by_status_with_the_list_filters(backend: Backend) -> None:
    assert await backend.count_runs(RunFilter()) == {}
    await backend.create_run(new_run("a1", "alpha", at=NOW + 1))
    await backend.create_run(new_run("a2", "alpha", at=NOW + 2))
    await backend.create_run(new_run("b1", "beta", at=NOW + 2, parent_id="a1", parent_pos=0))
    await backend.create_run(new_run("g1", "gamma", at=NOW + 4))
    g = (await claim(backend, now=NOW + 5, workflows=("gamma",)))["g1"]
    assert (await commit(backend, checkpoint(g, NOW + 5, outcome=Outcome.COMPLETED))).applied

    pending, completed = RunStatus.PENDING, RunStatus.COMPLETED
    assert await backend.count_runs(RunFilter()) == {pending: 3, completed: 1}
    # A status in the filter is ignored: the counts are by status.
    assert await backend.count_runs(RunFilter(status=completed)) == {pending: 3, completed: 1}
    assert await backend.count_runs(RunFilter(workflow="alpha")) == {pending: 2}
    assert await backend.count_runs(RunFilter(parent_id="a1")) == {pending: 1}
    assert await backend.count_runs(RunFilter(created_after=NOW + 2)) == {pending: 2, completed: 1}
    assert await backend.count_runs(RunFilter(created_before=NOW + 2)) == {pending: 1}
    assert await backend.count_runs(RunFilter(workflow="nothing")) == {}


async def test_list_runs_cursor_visits_every_run_once_despite_inserts(backend: Backend) -> None:
    originals = set()
    for i in range(1000):
        run_id = f"run-{i:04d}"
        # Four runs share each instant, so the cursor must break ties by id.
        await backend.create_run(new_run(run_id, at=NOW + i // 4))
        originals.add(run_id)
    older = set()
    seen: list[str] = []
    last: tuple[float, str] | None = None
    cursor: str | None = None
    pages = 0
    while True:
        page = await backend.list_runs(RunFilter(), 37, cursor)
        for rec in page.runs:
            key = (rec.created_at, rec.id)
            assert last is None or key < last, "pages must run strictly newest to oldest"
            last = key
        assert last is not None
        seen.extend(r.id for r in page.runs)
        if page.cursor is None:
            break
        assert len(page.runs) == 37
        cursor = page.cursor
        pages += 1
        # Runs created between pages: newer ones land before the cursor and are not
        # seen; older ones land after it and are; a tie with the last row sorts by id.
        await backend.create_run(new_run(f"newer-{pages}", at=NOW + 5000 + pages))
        await backend.create_run(new_run(f"zz-tie-{pages}", at=last[0]))
        await backend.create_run(new_run(f"older-{pages}", at=NOW - 1 - pages))
        older.add(f"older-{pages}")
    assert len(seen) == len(set(seen)), "a run was listed twice"
    assert set(seen) == originals | older
    assert pages >= 1000 // 37


async def test_a_message_stamped_after_the_claimers_clock_is_in_the_claim(
    backend: Backend,
) -> None:
    """A message that lands between a worker reading its clock and claiming counts in
    the mailbox; it must also be in the claimed inbox, or the release would see an
    unchanged mailbox and park the run with the message unread."""
    await backend.create_run(new_run("r"))
    await backend.deliver(signal("r", b"hi", at=NOW + 0.5), NOW + 0.5)
    c = (await claim(backend, "w1", NOW))["r"]
    assert [i.payload for i in c.inbox] == [b"hi"]
    assert c.run.mailbox == 1
