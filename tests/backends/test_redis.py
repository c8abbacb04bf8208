"""Redis only: what the conformance suite cannot see from one backend object.

Several processes share one Redis, each with connections of its own; here two
``RedisBackend`` objects on one prefix stand in for two processes. Each test gets a
fresh key prefix in the test database (the shared ``url`` fixture).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from perdure.backends import open_backend
from perdure.errors import ConfigurationError, RunDeduplicated
from perdure.records import (
    DEFAULT_QUEUE,
    Checkpoint,
    EntryKind,
    InboxKind,
    JournalEntry,
    NewInboxItem,
    NewRun,
    Outcome,
    QueueLimits,
    RunChange,
    RunFilter,
    RunStatus,
    WorkerRecord,
)

redis = pytest.importorskip("redis")
from perdure.backends.redis import RedisBackend  # noqa: E402
from perdure.backends.redis.layout import LAYOUT_VERSION, encode_entry  # noqa: E402
from stores.redis import drop, keys_of, prefix_of  # noqa: E402

NOW = 1000.0
TTL = 30.0


@pytest.fixture
def backend_name() -> str:
    return "redis"


@pytest.fixture
def raw(url: str) -> Iterator[Any]:
    """A plain client of the test database, to look at what the backend wrote."""
    client = redis.Redis.from_url(url.split("?", 1)[0])
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def store(url: str) -> AsyncIterator[RedisBackend]:
    backend = RedisBackend.from_url(url)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
async def pair(url: str) -> AsyncIterator[tuple[RedisBackend, RedisBackend]]:
    one, two = RedisBackend.from_url(url), RedisBackend.from_url(url)
    await one.open()
    await two.open()
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


def step(seq: int) -> JournalEntry:
    return JournalEntry(seq, seq, EntryKind.STEP, "s", b"1", NOW)


class TestURL:
    def test_parameters(self) -> None:
        backend = RedisBackend.from_url(
            "redis://:s3cret@cache.example:6380/2?prefix=shop:&socket_timeout=5"
        )
        assert backend.prefix == "shop:"
        # Everything perdure does not know is redis-py's; the password stays out of logs.
        assert backend.client_url == "redis://:s3cret@cache.example:6380/2?socket_timeout=5"
        assert "s3cret" not in backend.url
        assert backend.url.startswith("redis://:***@cache.example:6380/2")

    def test_defaults_and_tls(self) -> None:
        backend = open_backend("redis://localhost:6379/0")
        assert isinstance(backend, RedisBackend)
        assert backend.prefix == "perdure:"
        secure = open_backend("rediss://app:pw@localhost/0")
        assert isinstance(secure, RedisBackend)
        assert secure.url == "rediss://app:***@localhost/0"

    @pytest.mark.parametrize(
        "url",
        [
            "redis://localhost/0?prefix=",
            "redis://localhost/0?max_connections=many",
            "redis://localhost/0?socket_timeout=soon",
        ],
    )
    def test_bad_parameters_are_configuration_errors(self, url: str) -> None:
        with pytest.raises(ConfigurationError):
            open_backend(url)


def test_without_redis_py_the_error_names_the_extra() -> None:
    script = (
        "import sys\n"
        "sys.modules['redis'] = None  # as if it were not installed\n"
        "import perdure\n"
        "from perdure.errors import ConfigurationError\n"
        "perdure.App('memory://')\n"
        "try:\n"
        "    perdure.App('redis://localhost:6379/0')\n"
        "except ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'perdure[redis]'" in out.stdout


class TestLayout:
    async def test_every_key_is_under_the_prefix(self, url: str, raw: Any) -> None:
        prefix = prefix_of(url)
        before = set(raw.keys("*"))
        backend = RedisBackend.from_url(url)
        await backend.open()
        try:
            await backend.create_run(NewRun("r", "wf", b"", NOW, timeout=60.0))
            await backend.deliver(NewInboxItem("r", InboxKind.SIGNAL, NOW, topic="t"), NOW)
            [claim] = await backend.claim_runs("w", 1, NOW, NOW + TTL, ["wf"])
            cp = Checkpoint("r", "w", claim.token, NOW, NOW + TTL, entries=[step(0)])
            cp.events = {"k": b"v"}
            assert (await backend.checkpoint([cp]))[0].applied
        finally:
            await backend.close()
        added = set(raw.keys("*")) - before
        assert added
        assert all(key.startswith(prefix.encode()) for key in added)
        assert raw.get(f"{prefix}layout") == str(LAYOUT_VERSION).encode()

    async def test_two_prefixes_in_one_database_are_separate_stores(self, url: str) -> None:
        other = url.replace(prefix_of(url), prefix_of(url) + "b:")
        try:
            one, two = RedisBackend.from_url(url), RedisBackend.from_url(other)
            for backend, data in ((one, b"one"), (two, b"two")):
                await backend.open()
                _, created = await backend.create_run(NewRun("r", "wf", data, NOW))
                assert created
            rec_one, rec_two = await one.get_run("r"), await two.get_run("r")
            assert rec_one is not None and rec_two is not None
            assert (rec_one.input, rec_two.input) == (b"one", b"two")
            assert len((await one.list_runs(RunFilter(), 10, None)).runs) == 1
            await one.close()
            await two.close()
        finally:
            drop(other)

    async def test_reopening_is_idempotent_and_keeps_the_data(self, url: str) -> None:
        backend = RedisBackend.from_url(url)
        await backend.open()
        await backend.open()  # opening twice is harmless
        await backend.create_run(NewRun("r", "wf", b"kept", NOW))
        await backend.close()
        await backend.close()
        for _ in range(2):
            again = RedisBackend.from_url(url)
            await again.open()
            try:
                rec = await again.get_run("r")
                assert rec is not None
                assert (rec.input, rec.status) == (b"kept", RunStatus.PENDING)
            finally:
                await again.close()

    async def test_a_store_written_by_a_newer_layout_is_refused(self, url: str, raw: Any) -> None:
        raw.set(f"{prefix_of(url)}layout", LAYOUT_VERSION + 1)
        backend = RedisBackend.from_url(url)
        with pytest.raises(ConfigurationError, match="newer perdure"):
            await backend.open()
        await backend.close()

    async def test_times_and_payloads_come_back_exact(self, store: RedisBackend) -> None:
        created = 1_700_000_000.1 + 0.2  # not a short decimal
        payload = bytes(range(256))  # every byte, NUL and invalid UTF-8 included
        await store.create_run(NewRun("r:ü", "wf", payload, created, timeout=1e-9))
        [claim] = await store.claim_runs("w", 1, created + 1, created + 1 + TTL / 3, ["wf"])
        assert claim.run.created_at == created
        assert claim.run.input == payload
        assert claim.run.lease_until == created + 1 + TTL / 3
        [deadline] = claim.inbox
        assert deadline.visible_at == created + 1e-9
        entry = JournalEntry(0, 3, EntryKind.STEP, "naïve\nname", payload, created / 7, 2, True)
        cp = Checkpoint("r:ü", "w", claim.token, created + 2, created + 3, entries=[entry])
        assert (await store.checkpoint([cp]))[0].applied
        assert await store.read_journal("r:ü") == [entry]

    async def test_a_fork_with_a_long_journal_is_created_whole(self, store: RedisBackend) -> None:
        # Far more entries than one Lua call can pass along at once.
        journal = tuple(step(i) for i in range(10_000))
        events = tuple((f"k{i}", b"v") for i in range(5_000))
        rec, created = await store.create_run(
            NewRun("fork", "wf", b"", NOW, journal=journal, events=events)
        )
        assert created and rec.journal_len == 10_000
        assert await store.read_journal("fork") == list(journal)
        assert await store.get_event("fork", "k4999") == b"v"

    async def test_purging_a_run_leaves_none_of_its_keys(
        self, store: RedisBackend, url: str
    ) -> None:
        prefix = prefix_of(url)
        await store.create_run(NewRun("keep", "wf", b"", NOW))
        before = set(keys_of(prefix))
        await store.create_run(
            NewRun("gone", "other", b"", NOW, timeout=60.0, key="k", dedup_key="d")
        )
        await store.deliver(NewInboxItem("gone", InboxKind.SIGNAL, NOW, key="m"), NOW)
        [claim] = await store.claim_runs("w", 1, NOW, NOW + TTL, ["other"])
        cp = Checkpoint(
            "gone",
            "w",
            claim.token,
            NOW,
            NOW + TTL,
            entries=[step(0)],
            inbox=[NewInboxItem("gone", InboxKind.TIMER, NOW + 9, pos=1, key="timer:0:1")],
            events={"k": b"v"},
            outcome=Outcome.COMPLETED,
            result=b"1",
        )
        assert (await store.checkpoint([cp]))[0].applied
        assert await store.purge_runs(NOW + 1, 10) == ["gone"]
        left = set(keys_of(prefix)) - before
        # Only the counter that numbers inbox items may stay.
        assert {key.decode()[len(prefix) :] for key in left} <= {"next_item"}
        assert await store.get_run("gone") is None
        assert [r.id for r in (await store.list_runs(RunFilter(), 10, None)).runs] == ["keep"]


# What perdure's layout 1 left under a prefix (taken from that code, prefix removed):
# "waiting", pending; "parked", claimed once, with one journal entry and a deadline, its
# lease released until the deadline.
LAYOUT_1_STORE: dict[str, Any] = {
    "layout": b"1",
    "workflows": {b"wf"},
    "next_item": b"1",
    "run:waiting": {
        b"workflow": b"wf", b"status": b"pending", b"input": b"in", b"parent_pos": b"-1",
        b"generation": b"0", b"journal_len": b"0", b"created_at": b"1000.0",
        b"updated_at": b"1000.0", b"wake_at": b"1000.0", b"lease_token": b"0",
        b"mailbox": b"0", b"recoveries": b"0",
    },
    "run:parked": {
        b"workflow": b"wf", b"status": b"running", b"input": b"p", b"parent_pos": b"-1",
        b"generation": b"0", b"journal_len": b"1", b"created_at": b"1000.0",
        b"updated_at": b"1000.0", b"wake_at": b"1060.0", b"lease_token": b"1",
        b"mailbox": b"0", b"recoveries": b"0", b"started_at": b"1000.0",
    },
    "journal:parked": {b"0": b'[0,"step","s",1000.0,1,false,true]\n1'},
    "item:1": {
        b"kind": b"deadline", b"pos": b"-1", b"visible_at": b"1060.0",
        b"payload": b"workflow timed out after 60 s", b"key": b"deadline",
    },
    "keys:parked": {b"deadline": b"1"},
    "inbox:parked": [(b"1", 1.0)],
    "waits:parked": [(b"1", 1060.0)],
    "due:wf": [(b"waiting", 1000.0), (b"parked", 1060.0)],
    "idx:all": [(b"parked", 1000.0), (b"waiting", 1000.0)],
    "idx:workflow:wf": [(b"parked", 1000.0), (b"waiting", 1000.0)],
    "idx:status:pending": [(b"waiting", 1000.0)],
    "idx:status:running": [(b"parked", 1000.0)],
}  # fmt: skip


def write_store(raw: Any, prefix: str, store: dict[str, Any]) -> None:
    for name, value in store.items():
        key = prefix + name
        if isinstance(value, bytes):
            raw.set(key, value)
        elif isinstance(value, set):
            raw.sadd(key, *value)
        elif isinstance(value, dict):
            raw.hset(key, mapping=value)
        else:
            raw.zadd(key, dict(value))


class TestUpgrades:
    async def test_a_layout_1_store_is_upgraded_in_place_and_keeps_its_runs(
        self, url: str, raw: Any
    ) -> None:
        prefix = prefix_of(url)
        write_store(raw, prefix, LAYOUT_1_STORE)
        backend = RedisBackend.from_url(url)
        await backend.open()
        try:
            assert raw.get(f"{prefix}layout") == str(LAYOUT_VERSION).encode() == b"3"
            page = await backend.list_runs(RunFilter(), 10, None)
            assert [(r.id, r.status, r.version) for r in page.runs] == [
                ("waiting", RunStatus.PENDING, None),
                ("parked", RunStatus.RUNNING, None),
            ]
            # On the default queue, admitted when they were created: both take a place.
            assert {(r.queue, r.priority, r.queued, r.admitted_at) for r in page.runs} == {
                (DEFAULT_QUEUE, 0, False, NOW)
            }
            assert (await backend.list_runs(RunFilter(queue=DEFAULT_QUEUE), 9, None)) == page
            await backend.create_run(NewRun("third", "wf", b"", NOW, queued=True))
            assert await backend.admit_runs(QueueLimits(DEFAULT_QUEUE, concurrency=2), NOW) == []
            old_entry = JournalEntry(0, 0, EntryKind.STEP, "s", b"1", NOW, 1)
            assert await backend.read_journal("parked") == [old_entry]
            assert await backend.next_wake_at() == NOW
            # Runs of no version: a worker of any version takes them, when due.
            [first] = await backend.claim_runs("w", 9, NOW, NOW + 600, ["wf"], None, "2")
            assert first.run.id == "waiting" and first.token == 1
            later = NOW + 61
            [second] = await backend.claim_runs("w", 9, later, later + TTL, ["wf"], None, "2")
            assert second.run.id == "parked" and second.token == 2
            assert [(i.id, i.kind) for i in second.inbox] == [(1, InboxKind.DEADLINE)]
            # The old journal continues with entries of the new layout.
            new_entry = JournalEntry(1, 1, EntryKind.STEP, "t", None, later, 1, False, b"d")
            cp = Checkpoint("parked", "w", second.token, later, later + TTL, entries=[new_entry])
            assert (await backend.checkpoint([cp]))[0].applied
            assert await backend.read_journal("parked") == [old_entry, new_entry]
            # Items keep being numbered after the old ones.
            await backend.deliver(NewInboxItem("waiting", InboxKind.SIGNAL, later), later)
            assert [i.id for i in await backend.read_inbox("waiting", later)] == [2]
        finally:
            await backend.close()
        again = RedisBackend.from_url(url)  # an upgraded store opens as it is
        await again.open()
        try:
            assert raw.get(f"{prefix}layout") == b"3"
            rec = await again.get_run("parked")
            assert rec is not None and rec.journal_len == 2
        finally:
            await again.close()

    async def test_processes_opening_an_old_store_at_once_upgrade_it_once(
        self, url: str, raw: Any
    ) -> None:
        write_store(raw, prefix_of(url), LAYOUT_1_STORE)
        backends = [RedisBackend.from_url(url) for _ in range(4)]
        try:
            await asyncio.gather(*(b.open() for b in backends))
            runs = await asyncio.gather(*(b.get_run("waiting") for b in backends))
            assert all(r is not None and r.status is RunStatus.PENDING for r in runs)
        finally:
            for b in backends:
                await b.close()
        assert raw.get(f"{prefix_of(url)}layout") == b"3"


class TestVersions:
    async def test_a_version_is_not_starved_by_due_runs_of_another(
        self, store: RedisBackend
    ) -> None:
        # Runs of version 1, due long before: no worker of version 2 may take them, and
        # they must not hide the one run it may take.
        for i in range(50):
            await store.create_run(NewRun(f"old{i:02d}", "wf", b"", NOW - 100, version="1"))
        await store.create_run(NewRun("new", "wf", b"", NOW, version="2"))
        [claim] = await store.claim_runs("w2", 1, NOW, NOW + TTL, ["wf"], None, "2")
        assert claim.run.id == "new"
        assert await store.claim_runs("w2", 1, NOW, NOW + TTL, ["wf"], None, "2") == []
        # An expired lease is recovered only by a worker of its version, too.
        later = NOW + TTL + 1
        assert await store.claim_runs("w3", 1, later, later + TTL, ["wf"], None, "3") == []
        [again] = await store.claim_runs("w2b", 1, later, later + TTL, ["wf"], None, "2")
        assert (again.run.id, again.run.recoveries) == ("new", 1)

    async def test_a_version_no_run_needs_is_no_longer_listed(
        self, store: RedisBackend, url: str, raw: Any
    ) -> None:
        versions = f"{prefix_of(url)}versions:wf"
        await store.create_run(NewRun("r", "wf", b"", NOW, version="1"))
        assert raw.smembers(versions) == {b"1"}
        assert await store.next_wake_at() == NOW
        [claim] = await store.claim_runs("w", 1, NOW, NOW + TTL, ["wf"])
        held = Checkpoint("r", "w", claim.token, NOW, NOW + TTL, outcome=Outcome.HELD)
        assert (await store.checkpoint([held]))[0].applied
        assert await store.next_wake_at() is None
        assert await store.claim_runs("w", 1, NOW, NOW + TTL, ["wf"]) == []
        assert not raw.exists(versions)  # the claim that found its queues empty forgot it
        # Resuming the held run queues it, and lists its version, again.
        resume = RunChange("r", frozenset({RunStatus.HELD}), RunStatus.RUNNING, wake=True)
        _, applied = await store.change_run(resume, NOW + 1)
        assert applied and raw.smembers(versions) == {b"1"}
        [claim] = await store.claim_runs("w", 1, NOW + 1, NOW + TTL, ["wf"], None, "1")
        assert (claim.run.id, claim.run.version) == ("r", "1")

    async def test_versions_that_look_alike_keep_apart(self, store: RedisBackend) -> None:
        # The queue of (workflow "b:c", version "a") is not that of ("c", "a:b").
        await store.create_run(NewRun("one", "b:c", b"", NOW, version="a"))
        await store.create_run(NewRun("two", "c", b"", NOW, version="a:b"))
        assert await store.claim_runs("w", 9, NOW, NOW + TTL, ["c"], None, "a") == []
        [claim] = await store.claim_runs("w", 9, NOW, NOW + TTL, ["c"], None, "a:b")
        assert claim.run.id == "two"


class TestQueues:
    async def test_a_queue_is_not_starved_by_due_runs_of_another(self, store: RedisBackend) -> None:
        for i in range(50):
            await store.create_run(NewRun(f"old{i:02d}", "wf", b"", NOW - 100))
        await store.create_run(NewRun("gpu", "wf", b"", NOW, queue="gpu", version="1"))
        [claim] = await store.claim_runs("w", 1, NOW, NOW + TTL, ["wf"], None, "1", ["gpu"])
        assert claim.run.id == "gpu"
        later = NOW + TTL + 1  # its lease ran out: recovered from its own lane too
        [again] = await store.claim_runs("w", 1, later, later + TTL, ["wf"], None, None, ["gpu"])
        assert (again.run.id, again.run.recoveries) == ("gpu", 1)

    async def test_a_queue_no_run_needs_is_no_longer_listed(
        self, store: RedisBackend, url: str, raw: Any
    ) -> None:
        queues = f"{prefix_of(url)}queues:wf"
        await store.create_run(NewRun("r", "wf", b"", NOW, queue="q"))
        assert raw.smembers(queues) == {b"q"}
        assert await store.next_wake_at() == NOW
        [claim] = await store.claim_runs("w", 1, NOW, NOW + TTL, ["wf"])
        done = Checkpoint("r", "w", claim.token, NOW, NOW + TTL, outcome=Outcome.COMPLETED)
        assert (await store.checkpoint([done]))[0].applied
        assert await store.claim_runs("w", 1, NOW, NOW + TTL, ["wf"]) == []
        assert not raw.exists(queues)

    async def test_queues_that_look_alike_keep_apart(self, store: RedisBackend) -> None:
        # The lane of (workflow "w", queue "a") is not that of ("1:a:w", the default).
        await store.create_run(NewRun("one", "1:a:w", b"", NOW))
        await store.create_run(NewRun("two", "w", b"", NOW, queue="a"))
        assert await store.claim_runs("w", 9, NOW, NOW + TTL, ["1:a:w"], None, None, ["a"]) == []
        [claim] = await store.claim_runs("w", 9, NOW, NOW + TTL, ["w"], None, None, ["a"])
        assert claim.run.id == "two"

    async def test_priorities_at_the_ends_of_the_range_keep_their_order(
        self, store: RedisBackend
    ) -> None:
        order = [("top", 1_000_000), ("mid-a", 0), ("mid-b", 0), ("low", -1_000_000)]
        for run_id, priority in reversed(order):
            # Start times a microsecond apart, the later ones first in priority 0.
            at = NOW + (1e-6 if run_id == "mid-b" else 2e-6)
            await store.create_run(
                NewRun(run_id, "wf", b"", at, queue="q", priority=priority, queued=True)
            )
        assert await store.admit_runs(QueueLimits("q"), NOW + 1) == [
            "top",
            "mid-b",
            "mid-a",
            "low",
        ]

    async def test_a_child_with_a_dedup_key_held_is_refused(self, store: RedisBackend) -> None:
        await store.create_run(NewRun("holder", "wf", b"", NOW, dedup_key="d"))
        await store.create_run(NewRun("parent", "wf", b"", NOW + 1))
        claims = await store.claim_runs("w", 9, NOW + 1, NOW + TTL, ["wf"])
        [token] = [c.token for c in claims if c.run.id == "parent"]
        child = NewRun("child", "wf", b"", NOW + 1, parent_id="parent", parent_pos=0, dedup_key="d")
        cp = Checkpoint("parent", "w", token, NOW + 1, NOW + TTL, children=[child])
        with pytest.raises(RunDeduplicated) as caught:
            await store.checkpoint([cp])
        assert caught.value.holder == "holder"
        assert await store.get_run("child") is None


async def test_workers_seen_by_one_process_are_listed_by_another(
    pair: tuple[RedisBackend, RedisBackend],
) -> None:
    one, two = pair
    await one.save_worker("w1", NOW + 0.1, b'{"pid": 1}')
    await two.save_worker("w0", NOW + 0.2, b"\x00\xff")
    assert await two.list_workers(NOW) == [
        WorkerRecord("w0", NOW + 0.2, b"\x00\xff"),
        WorkerRecord("w1", NOW + 0.1, b'{"pid": 1}'),
    ]
    assert await two.forget_workers(NOW + 0.15) == 1
    assert [w.id for w in await one.list_workers(0.0)] == ["w0"]


class TestSharedStore:
    async def test_two_backends_never_claim_the_same_run(
        self, pair: tuple[RedisBackend, RedisBackend]
    ) -> None:
        one, two = pair
        runs = {f"r{i:03d}" for i in range(300)}
        await asyncio.gather(*(one.create_run(NewRun(r, "wf", b"", NOW)) for r in runs))

        async def drain(backend: RedisBackend, owner: str) -> list[str]:
            taken: list[str] = []
            while claims := await backend.claim_runs(owner, 3, NOW, NOW + TTL, ["wf"]):
                taken.extend(c.run.id for c in claims)
            return taken

        # Two owners on each backend, all claiming at once.
        results = await asyncio.gather(
            drain(one, "a"), drain(two, "b"), drain(one, "c"), drain(two, "d")
        )
        everything = [run_id for taken in results for run_id in taken]
        assert len(everything) == len(set(everything)), "a run was claimed twice"
        assert set(everything) == runs
        for taken, owner in zip(results, "abcd", strict=True):
            for run_id in taken[:5]:
                rec = await two.get_run(run_id)
                assert rec is not None
                assert (rec.owner, rec.lease_token) == (owner, 1)

    def test_processes_claiming_at_once_never_share_a_run(self, url: str) -> None:
        script = (
            "import asyncio, sys\n"
            "from perdure.backends import open_backend\n"
            "url, owner = sys.argv[1:]\n"
            "async def main():\n"
            "    backend = open_backend(url)\n"
            "    taken = []\n"
            "    while claims := await backend.claim_runs(owner, 2, 1000.0, 1030.0, ['wf']):\n"
            "        taken.extend(c.run.id for c in claims)\n"
            "    await backend.close()\n"
            "    print(' '.join(taken))\n"
            "asyncio.run(main())\n"
        )

        async def create() -> None:
            backend = RedisBackend.from_url(url)
            await asyncio.gather(
                *(backend.create_run(NewRun(f"r{i:03d}", "wf", b"", NOW)) for i in range(400))
            )
            await backend.close()

        asyncio.run(create())
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, url, f"p{i}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for i in range(4)
        ]
        taken: list[str] = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode()
            taken.extend(out.decode().split())
        assert len(taken) == len(set(taken)) == 400

    async def test_a_lease_is_fenced_across_backends(
        self, pair: tuple[RedisBackend, RedisBackend]
    ) -> None:
        one, two = pair
        await one.create_run(NewRun("r", "wf", b"", NOW))
        [first] = await one.claim_runs("a", 10, NOW, NOW + TTL, ["wf"])
        assert await two.claim_runs("b", 10, NOW + 1, NOW + 1 + TTL, ["wf"]) == []
        [second] = await two.claim_runs("b", 10, NOW + TTL + 1, NOW + 2 * TTL, ["wf"])
        assert second.token == first.token + 1
        assert second.run.recoveries == 1
        stale = Checkpoint("r", "a", first.token, NOW + TTL + 2, NOW + 2 * TTL, entries=[step(0)])
        [result] = await one.checkpoint([stale])
        assert not result.applied
        assert await two.read_journal("r") == []
        assert not await one.release("r", "a", first.token, NOW + TTL + 2)
        assert await one.extend_leases("a", {"r": first.token}, NOW + 3 * TTL) == {}
        current = Checkpoint(
            "r", "b", second.token, NOW + TTL + 2, NOW + 2 * TTL, entries=[step(0)]
        )
        [result] = await two.checkpoint([current])
        assert result.applied
        assert await one.read_journal("r") == [step(0)]


class TestBatches:
    @pytest.mark.parametrize("sender_first", [True, False], ids=["sender-first", "parker-first"])
    async def test_a_message_from_the_same_batch_wakes_a_run_parking_in_it(
        self, store: RedisBackend, sender_first: bool
    ) -> None:
        """The committer batches checkpoints of many runs: one run may send to another
        that parks in the same batch, unaware of the message. It must not stay parked."""
        for run_id in ("sender", "waiter"):
            await store.create_run(NewRun(run_id, "wf", b"", NOW))
        claims = {c.run.id: c for c in await store.claim_runs("w", 9, NOW, NOW + 30, ["wf"])}
        sender, waiter = claims["sender"], claims["waiter"]
        message = NewInboxItem("waiter", InboxKind.SIGNAL, NOW, topic="t", payload=b"hi")
        send = Checkpoint("sender", "w", sender.token, NOW, NOW + TTL, inbox=[message])
        park = Checkpoint("waiter", "w", waiter.token, NOW, NOW + TTL, release=True, mailbox_seen=0)
        results = await store.checkpoint([send, park] if sender_first else [park, send])
        assert all(r.applied for r in results)
        rec = await store.get_run("waiter")
        assert rec is not None
        assert (rec.owner, rec.mailbox, rec.wake_at) == (None, 1, NOW)
        [again] = await store.claim_runs("w2", 9, NOW, NOW + TTL, ["wf"])
        assert again.run.id == "waiter"
        assert [i.payload for i in again.inbox] == [b"hi"]

    async def test_a_duplicate_journal_entry_aborts_only_its_checkpoint(
        self, store: RedisBackend, url: str, raw: Any
    ) -> None:
        for run_id in ("a", "b"):
            await store.create_run(NewRun(run_id, "wf", b"", NOW))
        claims = {c.run.id: c for c in await store.claim_runs("w", 9, NOW, NOW + 30, ["wf"])}
        # A journal entry the run's length does not count (as a bad restore would
        # leave): the fence passes, the seq check refuses the checkpoint.
        old = JournalEntry(0, 0, EntryKind.STEP, "old", None, 0.0)
        raw.hset(f"{prefix_of(url)}journal:a", "0", encode_entry(old))
        batch = [
            Checkpoint(
                r, "w", claims[r].token, NOW, NOW + TTL, entries=[step(0)], events={"k": b"v"}
            )
            for r in ("a", "b")
        ]
        results = await store.checkpoint(batch)
        assert [r.applied for r in results] == [False, True]
        assert await store.read_journal("a") == [old]
        assert await store.get_event("a", "k") is None
        assert await store.read_journal("b") == [step(0)]
        rec = await store.get_run("a")
        assert rec is not None and rec.journal_len == 0


async def test_one_backend_serves_several_event_loops(url: str) -> None:
    """The sync surface runs its own loop on a thread: the same backend object must
    work there, here, and here again after being closed from there."""
    backend = RedisBackend.from_url(url)
    await backend.open()
    await backend.create_run(NewRun("here", "wf", b"1", NOW))
    seen: list[Any] = []

    def elsewhere() -> None:
        async def main() -> None:
            seen.append(await backend.get_run("here"))
            seen.append(await backend.create_run(NewRun("there", "wf", b"2", NOW)))
            await backend.close()

        asyncio.run(main())

    thread = threading.Thread(target=elsewhere)
    thread.start()
    await asyncio.to_thread(thread.join, 60)
    assert not thread.is_alive()
    assert seen[0] is not None and seen[0].input == b"1"
    assert seen[1][1] is True
    rec = await backend.get_run("there")  # reopens on this loop
    assert rec is not None and rec.input == b"2"
    await backend.close()


async def test_more_callers_than_connections_wait_their_turn(url: str) -> None:
    backend = RedisBackend.from_url(url + "&max_connections=2")
    await backend.open()
    try:
        results = await asyncio.gather(
            *(backend.create_run(NewRun(f"r{i}", "wf", b"", NOW)) for i in range(200))
        )
        assert all(created for _, created in results)
    finally:
        await backend.close()
