"""MySQL/MariaDB only: what the conformance suite cannot see from one backend object.

Several processes share one database, each with connections of its own; here two
``MySQLBackend`` objects on one store stand in for two processes. Each test gets a
fresh table prefix in the test database (the shared ``url`` fixture).
"""

from __future__ import annotations

import asyncio
import logging
import random
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from perdure.backends import open_backend
from perdure.errors import ConfigurationError, RunDeduplicated, RunNotFound
from perdure.records import (
    Checkpoint,
    EntryKind,
    InboxKind,
    JournalEntry,
    NewInboxItem,
    NewRun,
    Outcome,
    QueueLimits,
    RunFilter,
    RunStatus,
)

asyncmy = pytest.importorskip("asyncmy")
import stores.mysql as store  # noqa: E402
from perdure.backends.mysql import MySQLBackend  # noqa: E402

NOW = 1000.0
TTL = 30.0
SUFFIXES = {"runs", "journal", "inbox", "events", "workers", "queues", "schema"}


@pytest.fixture
def backend_name() -> str:
    return "mysql"


@pytest.fixture
def prefix(url: str) -> str:
    return store.prefix_of(url)


@pytest.fixture
async def pair(url: str) -> AsyncIterator[tuple[MySQLBackend, MySQLBackend]]:
    one, two = MySQLBackend.from_url(url), MySQLBackend.from_url(url)
    await one.open()
    await two.open()
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


@pytest.fixture
async def backend(url: str) -> AsyncIterator[MySQLBackend]:
    opened = MySQLBackend.from_url(url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def schema_versions(prefix: str) -> list[int]:
    return [v for (v,) in store.query(f"SELECT version FROM `{prefix}schema` ORDER BY version")]


def shipped_versions() -> list[int]:
    folder = resources.files("perdure.backends.mysql").joinpath("migrations")
    return sorted(int(f.name.split("_", 1)[0]) for f in folder.iterdir() if f.name.endswith(".sql"))


def migration_statements(version: int, prefix: str) -> list[str]:
    """The statements of one shipped migration, for a store's prefix."""
    folder = resources.files("perdure.backends.mysql").joinpath("migrations")
    [script] = [f for f in folder.iterdir() if f.name.startswith(f"{version:04d}_")]
    chunks = script.read_text().replace("{prefix}", prefix).split(";\n")
    return [
        chunk
        for chunk in chunks
        if "".join(
            line for line in chunk.splitlines() if not line.lstrip().startswith("--")
        ).strip()
    ]


def make_first_schema_store(prefix: str) -> None:
    """A store as the first release left it: migration 1 applied and recorded."""
    for statement in migration_statements(1, prefix):
        store.query(statement)
    store.query(
        f"CREATE TABLE `{prefix}schema` (version INT NOT NULL PRIMARY KEY, "
        "applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP) ENGINE = InnoDB"
    )
    store.query(f"INSERT INTO `{prefix}schema` (version) VALUES (1)")


def step(seq: int) -> JournalEntry:
    return JournalEntry(seq, seq, EntryKind.STEP, "s", b"1", NOW)


class TestURL:
    def test_parameters(self) -> None:
        backend = open_backend(
            "mysql://app:s%40cret@db.example:3307/shop?prefix=orders_&pool_size=3"
            "&connect_timeout=2.5&unix_socket=/run/mysqld/mysqld.sock"
        )
        assert isinstance(backend, MySQLBackend)
        s = backend.settings
        assert (s.host, s.port, s.database, s.user, s.password) == (
            "db.example",
            3307,
            "shop",
            "app",
            "s@cret",
        )
        assert (s.prefix, s.pool_size, s.connect_timeout) == ("orders_", 3, 2.5)
        assert s.unix_socket == "/run/mysqld/mysqld.sock"
        # The password stays out of logs.
        assert "cret" not in backend.url
        assert "db.example:3307/shop" in backend.url

    def test_defaults_and_the_mariadb_scheme(self) -> None:
        backend = open_backend("mariadb://root@localhost/shop")
        assert isinstance(backend, MySQLBackend)
        s = backend.settings
        assert (s.port, s.prefix, s.pool_size, s.ssl_context) == (3306, "perdure_", 10, None)
        assert backend.url == "mariadb://root@localhost/shop"

    def test_ssl(self) -> None:
        backend = open_backend("mysql://localhost/shop?ssl=true")
        assert isinstance(backend, MySQLBackend)
        assert backend.settings.ssl_context is not None

    @pytest.mark.parametrize(
        "url",
        [
            "mysql://localhost/",
            "mysql://localhost",
            "mysql://localhost/shop?prefix=my-app_",
            "mysql://localhost/shop?prefix=",
            "mysql://localhost/shop?prefix=" + "x" * 49,
            "mysql://localhost/shop?pool_size=0",
            "mysql://localhost/shop?pool_size=many",
            "mysql://localhost/shop?connect_timeout=0",
            "mysql://localhost/shop?ssl=maybe",
            "mysql://localhost/shop?schema=perdure",
            "mysql://localhost:port/shop",
        ],
    )
    def test_bad_parameters_are_configuration_errors(self, url: str) -> None:
        with pytest.raises(ConfigurationError):
            open_backend(url)


def test_without_asyncmy_the_error_names_the_extra() -> None:
    script = (
        "import sys\n"
        "sys.modules['asyncmy'] = None  # as if it were not installed\n"
        "import perdure\n"
        "from perdure.errors import ConfigurationError\n"
        "perdure.App('memory://')\n"
        "for url in ('mysql://localhost/db', 'mariadb://localhost/db'):\n"
        "    try:\n"
        "        perdure.App(url)\n"
        "    except ConfigurationError as exc:\n"
        "        print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.count("pip install 'perdure[mysql]'") == 2


class TestTables:
    async def test_tables_carry_the_prefix_and_are_innodb(self, url: str, prefix: str) -> None:
        assert store.tables_of(prefix) == set()
        backend = MySQLBackend.from_url(url)
        await backend.open()  # creates the tables
        try:
            await backend.create_run(NewRun("r", "wf", b"", NOW))
        finally:
            await backend.close()
        assert store.tables_of(prefix) == {prefix + suffix for suffix in SUFFIXES}
        engines = store.query(
            "SELECT DISTINCT engine FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND LEFT(table_name, %s) = %s",
            (len(prefix), prefix),
        )
        assert [e.lower() for (e,) in engines] == ["innodb"]
        assert store.query(f"SELECT id FROM `{prefix}runs`") == [(b"r",)]

    async def test_two_prefixes_in_one_database_are_separate_stores(
        self, url: str, prefix: str
    ) -> None:
        other = url.replace(f"prefix={prefix}", f"prefix={prefix}b_")
        try:
            one, two = MySQLBackend.from_url(url), MySQLBackend.from_url(other)
            for backend, data in ((one, b"one"), (two, b"two")):
                await backend.open()
                _, created = await backend.create_run(NewRun("r", "wf", data, NOW))
                assert created
            rec_one, rec_two = await one.get_run("r"), await two.get_run("r")
            assert rec_one is not None and rec_two is not None
            assert (rec_one.input, rec_two.input) == (b"one", b"two")
            await one.close()
            await two.close()
        finally:
            store.drop(other)

    async def test_an_applications_tables_are_left_alone(self, url: str, prefix: str) -> None:
        store.query(f"CREATE TABLE `{prefix}orders` (id INT)")
        backend = MySQLBackend.from_url(url)
        await backend.open()
        await backend.close()
        assert store.tables_of(prefix) == {prefix + s for s in SUFFIXES | {"orders"}}


class TestMigrations:
    async def test_migrations_are_recorded_and_reopening_is_idempotent(
        self, url: str, prefix: str
    ) -> None:
        backend = MySQLBackend.from_url(url)
        await backend.open()
        await backend.open()  # opening twice is harmless
        await backend.create_run(NewRun("r", "wf", b"kept", NOW))
        await backend.close()
        await backend.close()
        assert shipped_versions()
        assert schema_versions(prefix) == shipped_versions()

        for _ in range(2):
            again = MySQLBackend.from_url(url)
            await again.open()
            try:
                rec = await again.get_run("r")
                assert rec is not None
                assert (rec.input, rec.status) == (b"kept", RunStatus.PENDING)
            finally:
                await again.close()
        assert schema_versions(prefix) == shipped_versions()

    async def test_a_migration_interrupted_halfway_is_completed(
        self, url: str, prefix: str
    ) -> None:
        """MySQL commits DDL at once: a process killed mid-migration leaves some tables
        and no version row. The next open finishes the job."""
        backend = MySQLBackend.from_url(url)
        await backend.open()
        await backend.close()
        store.query(f"DROP TABLE `{prefix}events`")
        store.query(f"DELETE FROM `{prefix}schema`")
        again = MySQLBackend.from_url(url)
        await again.open()
        await again.close()
        assert store.tables_of(prefix) == {prefix + s for s in SUFFIXES}
        assert schema_versions(prefix) == shipped_versions()

    def test_processes_opening_a_new_store_at_once_all_succeed(
        self, url: str, prefix: str, tmp_path: Path
    ) -> None:
        """Migrations are serialized (GET_LOCK): processes racing to set up a fresh
        store all succeed, and each migration is applied once."""
        script = (
            "import asyncio, pathlib, sys, time\n"
            "from perdure.backends import open_backend\n"
            "from perdure.records import NewRun\n"
            "url, folder, name = sys.argv[1:]\n"
            "folder = pathlib.Path(folder)\n"
            "async def main():\n"
            "    backend = open_backend(url)\n"
            "    (folder / f'ready-{name}').touch()\n"
            "    while not (folder / 'go').exists():\n"
            "        time.sleep(0.001)\n"
            "    await backend.open()\n"
            "    await backend.create_run(NewRun(name, 'wf', b'', 1000.0))\n"
            "    await backend.close()\n"
            "asyncio.run(main())\n"
        )
        names = [f"p{i}" for i in range(6)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, url, str(tmp_path), name], stderr=subprocess.PIPE
            )
            for name in names
        ]
        try:
            deadline = time.monotonic() + 60
            while len(list(tmp_path.glob("ready-*"))) < len(names):
                assert time.monotonic() < deadline, "the processes did not start"
                time.sleep(0.01)
            (tmp_path / "go").touch()
            for proc in procs:
                _, err = proc.communicate(timeout=60)
                assert proc.returncode == 0, err.decode()
        finally:
            for proc in procs:
                proc.kill()
        assert schema_versions(prefix) == shipped_versions()
        rows = store.query(f"SELECT id FROM `{prefix}runs` ORDER BY id")
        assert [r.decode() for (r,) in rows] == names

    async def test_a_store_of_the_first_schema_is_upgraded_in_place(
        self, url: str, prefix: str
    ) -> None:
        """A store made before runs had versions, journal entries details and workers a
        registry: the next open adds them, and the runs already there go on."""
        make_first_schema_store(prefix)
        store.query(
            f"INSERT INTO `{prefix}runs` (id, workflow, status, input, created_at, updated_at, "
            "wake_at, journal_len) VALUES ('old', 'wf', 'pending', 'in', %s, %s, %s, 1)",
            (NOW, NOW, NOW),
        )
        store.query(
            f"INSERT INTO `{prefix}journal` (run_id, seq, pos, kind, name, payload, at) "
            "VALUES ('old', 0, 0, 'step', 's', '1', %s)",
            (NOW,),
        )
        assert schema_versions(prefix) == [1]

        backend = MySQLBackend.from_url(url)
        await backend.open()
        try:
            assert schema_versions(prefix) == shipped_versions()
            assert store.tables_of(prefix) == {prefix + s for s in SUFFIXES}
            rec = await backend.get_run("old")
            assert rec is not None
            assert (rec.input, rec.status, rec.version) == (b"in", RunStatus.PENDING, None)
            # On the default queue, let in when it was made.
            assert (rec.queue, rec.queued, rec.admitted_at) == ("default", False, NOW)
            assert await backend.read_journal("old") == [step(0)]
            # A versioned worker takes it (it is pinned to no version), and goes on.
            [claim] = await backend.claim_runs("w", 9, NOW, NOW + TTL, ["wf"], None, "2")
            assert claim.run.id == "old"
            detailed = JournalEntry(1, 1, EntryKind.STEP, "s", b"2", NOW, 1, False, b"d")
            [result] = await backend.checkpoint(
                [Checkpoint("old", "w", claim.token, NOW, NOW + TTL, entries=[detailed])]
            )
            assert result.applied
            assert await backend.read_journal("old") == [step(0), detailed]
            await backend.create_run(NewRun("new", "wf", b"", NOW, version="2"))
            new = await backend.get_run("new")
            assert new is not None and new.version == "2"
            await backend.save_worker("w", NOW, b"{}")
            assert [w.id for w in await backend.list_workers(0)] == ["w"]
        finally:
            await backend.close()

    async def test_an_upgrade_interrupted_halfway_is_completed(self, url: str, prefix: str) -> None:
        """MySQL has no ADD COLUMN IF NOT EXISTS: an upgrade killed after adding a
        column, before recording itself, runs again over it."""
        make_first_schema_store(prefix)
        [add_version, *_] = migration_statements(2, prefix)
        assert "ADD COLUMN version" in add_version
        store.query(add_version)
        backend = MySQLBackend.from_url(url)
        await backend.open()
        try:
            assert schema_versions(prefix) == shipped_versions()
            await backend.create_run(NewRun("r", "wf", b"", NOW, version="1"))
            rec = await backend.get_run("r")
            assert rec is not None and rec.version == "1"
        finally:
            await backend.close()


class TestValues:
    async def test_versions_and_worker_ids_compare_byte_for_byte(
        self, backend: MySQLBackend
    ) -> None:
        for run_id, version in (("a", "v1"), ("b", "V1"), ("c", "v1 ")):
            await backend.create_run(NewRun(run_id, "wf", b"", NOW, version=version))
        claims = await backend.claim_runs("w", 9, NOW, NOW + TTL, ["wf"], None, "v1")
        assert [c.run.id for c in claims] == ["a"]
        for worker_id in ("w", "W", "w ", "ẃ"):
            await backend.save_worker(worker_id, NOW, worker_id.encode())
        workers = await backend.list_workers(0)
        assert [(w.id, w.info) for w in workers] == [
            (i, i.encode()) for i in sorted(("w", "W", "w ", "ẃ"))
        ]

    async def test_ids_differing_in_case_or_trailing_spaces_are_different_runs(
        self, backend: MySQLBackend
    ) -> None:
        ids = ["run", "Run", "run ", "rün", "run\t"]
        for i, run_id in enumerate(ids):
            _, created = await backend.create_run(NewRun(run_id, "wf", bytes([i]), NOW))
            assert created, run_id
        for i, run_id in enumerate(ids):
            rec = await backend.get_run(run_id)
            assert rec is not None and (rec.id, rec.input) == (run_id, bytes([i]))
        page = await backend.list_runs(RunFilter(), 10, None)
        # Newest first, ties by id in code point order, as Python sorts strings.
        assert [r.id for r in page.runs] == sorted(ids, reverse=True)

    async def test_payloads_and_times_round_trip_exactly(self, backend: MySQLBackend) -> None:
        payload = bytes(range(256)) * 3 + b"\x00'\\\"%s"
        created = time.time() + random.random()
        await backend.create_run(NewRun("r", "wf", payload, created))
        rec = await backend.get_run("r")
        assert rec is not None
        assert (rec.input, rec.created_at, rec.wake_at) == (payload, created, created)
        [claim] = await backend.claim_runs("w", 1, created, created + 1 / 3, ["wf"])
        assert claim.run.lease_until == created + 1 / 3

    async def test_keys_of_any_length_are_kept_whole(self, backend: MySQLBackend) -> None:
        long_key = "k" * 5000 + "é"
        await backend.create_run(NewRun("r", "wf", b"", NOW))
        item = NewInboxItem("r", InboxKind.SIGNAL, NOW, topic="t", key=long_key)
        assert await backend.deliver(item, NOW)
        assert not await backend.deliver(item, NOW)  # the same key: not again
        other = NewInboxItem("r", InboxKind.SIGNAL, NOW, topic="t", key=long_key[:-1] + "e")
        assert await backend.deliver(other, NOW)
        [claim] = await backend.claim_runs("w", 1, NOW, NOW + TTL, ["wf"])
        assert [i.key for i in claim.inbox] == [long_key, other.key]
        events = {long_key: b"a", long_key + "x": b"b"}
        [result] = await backend.checkpoint(
            [Checkpoint("r", "w", claim.token, NOW, NOW + TTL, events=events)]
        )
        assert result.applied
        assert await backend.get_event("r", long_key) == b"a"
        assert await backend.get_event("r", long_key + "x") == b"b"


class TestSharedDatabase:
    async def test_two_backends_never_claim_the_same_run(
        self, pair: tuple[MySQLBackend, MySQLBackend]
    ) -> None:
        one, two = pair
        runs = {f"r{i:03d}" for i in range(300)}
        await asyncio.gather(*(one.create_run(NewRun(r, "wf", b"", NOW)) for r in runs))

        async def drain(backend: MySQLBackend, owner: str) -> list[str]:
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

    async def test_a_claim_in_progress_does_not_block_starts(
        self, pair: tuple[MySQLBackend, MySQLBackend], prefix: str
    ) -> None:
        """A locking read over the due range at READ COMMITTED takes no gap locks: runs
        started meanwhile, due in that range, are not held up (REPEATABLE READ, the
        server's default, would block them until the claim committed)."""
        one, two = pair
        for i in range(5):
            await one.create_run(NewRun(f"r{i}", "wf", b"", NOW))
        async with one._db.connection() as conn:
            await conn.begin()
            async with conn.cursor() as cur:
                await cur.execute(
                    f"SELECT id FROM `{prefix}runs` WHERE wake_at <= %s "
                    "ORDER BY wake_at, created_at, id FOR UPDATE",
                    (NOW + 10,),
                )
                assert len(await cur.fetchall()) == 5
            try:
                started = await asyncio.wait_for(
                    two.create_run(NewRun("late", "wf", b"", NOW + 1)), 10
                )
                assert started[1]
            finally:
                await conn.rollback()

    async def test_a_lease_is_fenced_across_backends(
        self, pair: tuple[MySQLBackend, MySQLBackend]
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
        current = Checkpoint(
            "r", "b", second.token, NOW + TTL + 2, NOW + 2 * TTL, entries=[step(0)]
        )
        [result] = await two.checkpoint([current])
        assert result.applied
        assert await one.read_journal("r") == [step(0)]

    async def test_writers_meeting_runs_in_opposite_orders_do_not_deadlock(
        self, pair: tuple[MySQLBackend, MySQLBackend], caplog: pytest.LogCaptureFixture
    ) -> None:
        """A worker's checkpoint batch, its heartbeat and a sender's messages all write
        the same runs at once, each listing them in its own order. None of them may end
        up waiting for another in a cycle (InnoDB would abort one as a deadlock)."""
        one, two = pair
        ids = [f"r{i:02d}" for i in range(30)]
        for run_id in ids:
            await one.create_run(NewRun(run_id, "wf", b"", NOW))
        claims = await one.claim_runs("w", 100, NOW, NOW + TTL, ["wf"])
        tokens = {c.run.id: c.token for c in claims}
        assert set(tokens) == set(ids)
        caplog.set_level(logging.WARNING, logger="perdure.backends.mysql")

        async def commit(round_: int, order: list[str]) -> None:
            batch = [
                Checkpoint(
                    r, "w", tokens[r], NOW, NOW + TTL, entries=[step(round_)], events={"k": b"v"}
                )
                for r in order
            ]
            results = await one.checkpoint(batch)
            assert all(result.applied for result in results)

        async def heartbeat(order: list[str]) -> None:
            held = await two.extend_leases("w", {r: tokens[r] for r in order}, NOW + TTL)
            assert set(held) == set(ids)

        async def send(order: list[str]) -> None:
            await asyncio.gather(
                *(
                    two.deliver(NewInboxItem(r, InboxKind.SIGNAL, NOW, topic="t"), NOW)
                    for r in order
                )
            )

        for round_ in range(12):
            backwards = list(reversed(ids)) if round_ % 2 else ids
            await asyncio.gather(
                commit(round_, backwards), heartbeat(ids), send(list(reversed(backwards)))
            )
        for run_id in ids:
            assert [e.seq for e in await two.read_journal(run_id)] == list(range(12))
        assert not [r for r in caplog.records if "retrying" in r.getMessage()]

    async def test_two_backends_admitting_at_once_never_exceed_a_limit(
        self, pair: tuple[MySQLBackend, MySQLBackend]
    ) -> None:
        """Admissions to a queue lock its row in the queues table: processes admitting
        at once wait for each other, and each counts the runs the others let in."""
        one, two = pair
        runs = [f"r{i:02d}" for i in range(12)]
        for i, run_id in enumerate(runs):
            await one.create_run(
                NewRun(run_id, "wf", b"", NOW + i / 100, queue="q", queued=True, key=f"k{i % 2}")
            )
        limits = QueueLimits("q", concurrency=3, per_key=2)
        admitted: list[str] = []
        now = NOW + 1
        while len(admitted) < len(runs):
            rounds = await asyncio.gather(*(b.admit_runs(limits, now) for b in (one, two) * 4))
            fresh = [run_id for batch in rounds for run_id in batch]
            assert sorted(fresh) == runs[len(admitted) : len(admitted) + 3]
            admitted += fresh
            # They end, and give their places back for the next round.
            for c in await two.claim_runs("w", 10, now, now + TTL, ["wf"], None, None, ["q"]):
                done = Checkpoint(c.run.id, "w", c.token, now, now + TTL, outcome=Outcome.COMPLETED)
                [result] = await two.checkpoint([done])
                assert result.applied
            now += 1

    async def test_two_backends_starting_one_dedup_key_at_once_make_one_run(
        self, pair: tuple[MySQLBackend, MySQLBackend]
    ) -> None:
        one, two = pair
        outcomes = await asyncio.gather(
            *(
                backend.create_run(NewRun(f"r{i}", "wf", b"", NOW, queue="q", dedup_key="d"))
                for i, backend in enumerate((one, two) * 5)
            ),
            return_exceptions=True,
        )
        made = [o[0].id for o in outcomes if isinstance(o, tuple) and o[1]]
        refused = [o for o in outcomes if isinstance(o, RunDeduplicated)]
        assert len(made) == 1 and len(refused) == 9, outcomes
        assert {r.holder for r in refused} == set(made)
        assert [r.id for r in (await one.list_runs(RunFilter(), 20, None)).runs] == made


class TestBatches:
    @pytest.mark.parametrize("sender_first", [True, False], ids=["sender-first", "parker-first"])
    async def test_a_message_from_the_same_batch_wakes_a_run_parking_in_it(
        self, backend: MySQLBackend, sender_first: bool
    ) -> None:
        """The committer batches checkpoints of many runs: one run may send to another
        that parks in the same batch, unaware of the message. It must not stay parked."""
        for run_id in ("sender", "waiter"):
            await backend.create_run(NewRun(run_id, "wf", b"", NOW))
        claims = {c.run.id: c for c in await backend.claim_runs("w", 9, NOW, NOW + 30, ["wf"])}
        sender, waiter = claims["sender"], claims["waiter"]
        message = NewInboxItem("waiter", InboxKind.SIGNAL, NOW, topic="t", payload=b"hi")
        send = Checkpoint("sender", "w", sender.token, NOW, NOW + TTL, inbox=[message])
        park = Checkpoint("waiter", "w", waiter.token, NOW, NOW + TTL, release=True, mailbox_seen=0)
        results = await backend.checkpoint([send, park] if sender_first else [park, send])
        assert all(r.applied for r in results)
        rec = await backend.get_run("waiter")
        assert rec is not None
        assert (rec.owner, rec.mailbox, rec.wake_at) == (None, 1, NOW)
        [again] = await backend.claim_runs("w2", 9, NOW, NOW + TTL, ["wf"])
        assert again.run.id == "waiter"
        assert [i.payload for i in again.inbox] == [b"hi"]

    async def test_concurrent_writes_share_a_transaction_but_fail_alone(
        self, backend: MySQLBackend
    ) -> None:
        await backend.create_run(NewRun("target", "wf", b"", NOW))
        outcomes = await asyncio.gather(
            *(backend.create_run(NewRun(f"r{i}", "wf", b"", NOW)) for i in range(50)),
            backend.deliver(NewInboxItem("missing", InboxKind.SIGNAL, NOW), NOW),
            backend.deliver(NewInboxItem("target", InboxKind.SIGNAL, NOW, key="k"), NOW),
            backend.deliver(NewInboxItem("target", InboxKind.SIGNAL, NOW, key="k"), NOW),
            backend.create_run(NewRun("r0", "other", b"", NOW)),
            # A workflow name longer than its column: strict mode refuses it, in the
            # same batch, instead of cutting it short.
            backend.create_run(NewRun("long", "w" * 2000, b"", NOW)),
            return_exceptions=True,
        )
        created = outcomes[:50]
        missing, first, again, duplicate, refused = outcomes[50:]
        assert isinstance(refused, asyncmy.errors.MySQLError), refused
        assert refused.args[0] == 1406  # data too long
        assert all(isinstance(o, tuple) and o[1] for o in created)
        assert isinstance(missing, RunNotFound)
        assert (first, again) == (True, False)
        assert isinstance(duplicate, tuple)
        assert (duplicate[0].workflow, duplicate[1]) == ("wf", False)
        assert len(await backend.read_inbox("target", NOW)) == 1
        assert len((await backend.list_runs(RunFilter(), 100, None)).runs) == 51
        rec = await backend.get_run("target")
        assert rec is not None and rec.mailbox == 1

    async def test_a_duplicate_journal_entry_aborts_only_its_checkpoint(
        self, backend: MySQLBackend, prefix: str
    ) -> None:
        for run_id in ("a", "b"):
            await backend.create_run(NewRun(run_id, "wf", b"", NOW))
        claims = {c.run.id: c for c in await backend.claim_runs("w", 9, NOW, NOW + 30, ["wf"])}
        # A journal row the run's length does not count (as a bad restore would
        # leave): the fence passes, the primary key refuses the entry.
        store.query(
            f"INSERT INTO `{prefix}journal` (run_id, seq, pos, kind, name, at) "
            "VALUES ('a', 0, 0, 'step', 'old', 0)"
        )
        batch = [
            Checkpoint(r, "w", claims[r].token, NOW, NOW + TTL, entries=[step(0)])
            for r in ("a", "b")
        ]
        results = await backend.checkpoint(batch)
        assert [r.applied for r in results] == [False, True]
        assert [e.name for e in await backend.read_journal("a")] == ["old"]
        assert await backend.read_journal("b") == [step(0)]
        rec = await backend.get_run("a")
        assert rec is not None and rec.journal_len == 0

    async def test_a_large_batch_is_written_in_pieces(self, backend: MySQLBackend) -> None:
        """Statements over many rows are cut to stay under max_allowed_packet."""
        ids = [f"r{i:03d}" for i in range(40)]
        for run_id in ids:
            await backend.create_run(NewRun(run_id, "wf", b"", NOW))
        claims = await backend.claim_runs("w", 100, NOW, NOW + TTL, ["wf"])
        big = bytes(random.getrandbits(8) for _ in range(256 * 1024))
        batch = [
            Checkpoint(
                c.run.id,
                "w",
                c.token,
                NOW,
                NOW + TTL,
                entries=[JournalEntry(0, 0, EntryKind.STEP, "s", big, NOW)],
                outcome=Outcome.COMPLETED,
                result=big,
            )
            for c in claims
        ]
        results = await backend.checkpoint(batch)
        assert all(r.applied for r in results)
        for run_id in ids[::13]:
            rec = await backend.get_run(run_id)
            assert rec is not None and (rec.status, rec.result) == (RunStatus.COMPLETED, big)
            assert [e.payload for e in await backend.read_journal(run_id)] == [big]


async def test_one_backend_serves_several_event_loops(url: str) -> None:
    """The sync surface runs its own loop on a thread: the same backend object must
    work there, here, and here again after being closed from there."""
    backend = MySQLBackend.from_url(url)
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
