"""PostgreSQL only: what the conformance suite cannot see from one backend object.

Several processes share one database, each with connections of its own; here two
``PostgresBackend`` objects on one schema stand in for two processes. Each test gets
a fresh schema in the test database (the shared ``url`` fixture).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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

psycopg = pytest.importorskip("psycopg")
from perdure.backends.postgres import PostgresBackend  # noqa: E402

NOW = 1000.0
TTL = 30.0
TABLES = {
    "perdure_runs",
    "perdure_journal",
    "perdure_inbox",
    "perdure_events",
    "perdure_workers",
    "perdure_schema",
}


@pytest.fixture
def backend_name() -> str:
    return "postgres"


def schema_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["schema"]


def without_schema(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.fixture
def sql(url: str) -> Iterator[Any]:
    """A plain connection to the test database, to look at what the backend wrote."""
    conn = psycopg.connect(without_schema(url), autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
async def pair(url: str) -> AsyncIterator[tuple[PostgresBackend, PostgresBackend]]:
    one, two = PostgresBackend.from_url(url), PostgresBackend.from_url(url)
    await one.open()
    await two.open()
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


def tables_in(conn: Any, schema: str) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
    ).fetchall()
    return {name for (name,) in rows}


def schema_versions(conn: Any, schema: str) -> list[int]:
    rows = conn.execute(f'SELECT version FROM "{schema}".perdure_schema ORDER BY version')
    return [v for (v,) in rows.fetchall()]


def shipped_versions() -> list[int]:
    folder = resources.files("perdure.backends.postgres").joinpath("migrations")
    return sorted(int(f.name.split("_", 1)[0]) for f in folder.iterdir() if f.name.endswith(".sql"))


def step(seq: int) -> JournalEntry:
    return JournalEntry(seq, seq, EntryKind.STEP, "s", b"1", NOW)


class TestURL:
    def test_parameters(self) -> None:
        backend = PostgresBackend.from_url(
            "postgresql://app:s3cret@db.example:6543/shop?schema=orders&pool_size=3&sslmode=require"
        )
        assert (backend.schema, backend.pool_size) == ("orders", 3)
        # Everything perdure does not know is libpq's; the password stays out of logs.
        assert "sslmode=require" in backend.conninfo
        assert "schema" not in backend.conninfo and "pool_size" not in backend.conninfo
        assert "s3cret" in backend.conninfo
        assert "s3cret" not in backend.url
        assert "db.example:6543/shop" in backend.url

    def test_defaults(self) -> None:
        backend = open_backend("postgres://localhost/shop")
        assert isinstance(backend, PostgresBackend)
        assert (backend.schema, backend.pool_size) == ("perdure", 10)
        assert backend.conninfo.startswith("postgresql://localhost/shop")

    @pytest.mark.parametrize(
        "url",
        [
            "postgresql://localhost/shop?schema=my-app",
            "postgresql://localhost/shop?schema=1st",
            "postgresql://localhost/shop?schema=" + "x" * 64,
            "postgresql://localhost/shop?schema=",
            "postgresql://localhost/shop?pool_size=0",
            "postgresql://localhost/shop?pool_size=many",
        ],
    )
    def test_bad_parameters_are_configuration_errors(self, url: str) -> None:
        with pytest.raises(ConfigurationError):
            open_backend(url)


def test_without_psycopg_the_error_names_the_extra() -> None:
    script = (
        "import sys\n"
        "sys.modules['psycopg'] = None  # as if it were not installed\n"
        "import perdure\n"
        "from perdure.errors import ConfigurationError\n"
        "perdure.App('memory://')\n"
        "try:\n"
        "    perdure.App('postgresql://localhost/db')\n"
        "except ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'perdure[postgres]'" in out.stdout


class TestSchema:
    async def test_tables_live_in_the_configured_schema(self, url: str, sql: Any) -> None:
        schema = schema_of(url)
        assert tables_in(sql, schema) == set()
        backend = PostgresBackend.from_url(url)
        await backend.open()  # creates the schema
        try:
            await backend.create_run(NewRun("r", "wf", b"", NOW))
        finally:
            await backend.close()
        assert tables_in(sql, schema) == TABLES
        assert sql.execute(f'SELECT id FROM "{schema}".perdure_runs').fetchall() == [("r",)]
        assert not TABLES & tables_in(sql, "public")

    async def test_two_schemas_in_one_database_are_separate_stores(
        self, url: str, sql: Any
    ) -> None:
        schema = schema_of(url)
        other = url.replace(f"schema={schema}", f"schema={schema}_b")
        try:
            one, two = PostgresBackend.from_url(url), PostgresBackend.from_url(other)
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
            sql.execute(f'DROP SCHEMA IF EXISTS "{schema_of(other)}" CASCADE')

    async def test_an_existing_schema_is_used_as_it_is(self, url: str, sql: Any) -> None:
        # An application may create the schema (and own other tables in it) first.
        schema = schema_of(url)
        sql.execute(f'CREATE SCHEMA "{schema}"')
        sql.execute(f'CREATE TABLE "{schema}".orders (id INT)')
        backend = PostgresBackend.from_url(url)
        await backend.open()
        await backend.close()
        assert tables_in(sql, schema) == TABLES | {"orders"}


class TestMigrations:
    async def test_migrations_are_recorded_and_reopening_is_idempotent(
        self, url: str, sql: Any
    ) -> None:
        schema = schema_of(url)
        backend = PostgresBackend.from_url(url)
        await backend.open()
        await backend.open()  # opening twice is harmless
        await backend.create_run(NewRun("r", "wf", b"kept", NOW))
        await backend.close()
        await backend.close()
        assert shipped_versions()
        assert schema_versions(sql, schema) == shipped_versions()

        for _ in range(2):
            again = PostgresBackend.from_url(url)
            await again.open()
            try:
                rec = await again.get_run("r")
                assert rec is not None
                assert (rec.input, rec.status) == (b"kept", RunStatus.PENDING)
            finally:
                await again.close()
        assert schema_versions(sql, schema) == shipped_versions()

    def test_processes_opening_a_new_schema_at_once_all_succeed(
        self, url: str, sql: Any, tmp_path: Path
    ) -> None:
        """Migrations are serialized: processes racing to set up a fresh schema all
        succeed, and each migration is applied once."""
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
        schema = schema_of(url)
        assert schema_versions(sql, schema) == shipped_versions()
        rows = sql.execute(f'SELECT id FROM "{schema}".perdure_runs ORDER BY id').fetchall()
        assert [r for (r,) in rows] == names


class TestSharedDatabase:
    async def test_two_backends_never_claim_the_same_run(
        self, pair: tuple[PostgresBackend, PostgresBackend]
    ) -> None:
        one, two = pair
        runs = {f"r{i:03d}" for i in range(300)}
        await asyncio.gather(*(one.create_run(NewRun(r, "wf", b"", NOW)) for r in runs))

        async def drain(backend: PostgresBackend, owner: str) -> list[str]:
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

    async def test_a_lease_is_fenced_across_backends(
        self, pair: tuple[PostgresBackend, PostgresBackend]
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

    async def test_two_backends_admitting_at_once_never_exceed_a_limit(
        self, pair: tuple[PostgresBackend, PostgresBackend], sql: Any, url: str
    ) -> None:
        """Admissions are serialized per queue across processes: however many admit at
        once, each counts the places the others filled, round after round."""
        one, two = pair
        runs = [f"r{i:02d}" for i in range(20)]
        for i, run_id in enumerate(runs):
            await one.create_run(NewRun(run_id, "wf", b"", NOW + i, queue="q", queued=True))
        three = QueueLimits("q", concurrency=3)
        admitted: list[str] = []
        now = NOW + 100
        while len(admitted) < len(runs):
            rounds = await asyncio.gather(*(b.admit_runs(three, now) for b in [one, two] * 4))
            got = [run_id for batch in rounds for run_id in batch]
            # Exactly the places the last round freed, oldest first.
            assert got == runs[len(admitted) : len(admitted) + 3]
            admitted += got
            occupying = sql.execute(
                f'SELECT count(*) FROM "{schema_of(url)}".perdure_runs '
                "WHERE admitted_at IS NOT NULL AND status IN ('pending', 'running')"
            ).fetchone()[0]
            assert occupying == len(got)
            # Those runs end, each on the other backend, freeing their places.
            claims = await two.claim_runs("w", 10, now, now + TTL, ["wf"], queues=["q"])
            assert sorted(c.run.id for c in claims) == sorted(got)
            done = [
                Checkpoint(c.run.id, "w", c.token, now, now + TTL, outcome=Outcome.COMPLETED)
                for c in claims
            ]
            assert all(r.applied for r in await one.checkpoint(done))
            now += 1
        assert admitted == runs

    async def test_starts_racing_for_a_dedup_key_in_two_backends_make_one_run(
        self, pair: tuple[PostgresBackend, PostgresBackend]
    ) -> None:
        """Each backend commits its starts in transactions of its own: the unique index
        refuses the losers, which name the winner."""
        one, two = pair
        starts = [
            backend.create_run(NewRun(f"{name}{i}", "wf", b"", NOW, queue="q", dedup_key="d"))
            for i in range(10)
            for backend, name in ((one, "a"), (two, "b"))
        ]
        outcomes = await asyncio.gather(*starts, return_exceptions=True)
        made = [o for o in outcomes if isinstance(o, tuple)]
        refused = [o for o in outcomes if isinstance(o, RunDeduplicated)]
        assert len(made) == 1 and len(refused) == 19
        [(winner, created)] = made
        assert created
        assert {e.holder for e in refused} == {winner.id}
        page = await one.list_runs(RunFilter(queue="q"), 100, None)
        assert [r.id for r in page.runs] == [winner.id]

    async def test_writers_meeting_runs_in_opposite_orders_do_not_deadlock(
        self, pair: tuple[PostgresBackend, PostgresBackend], caplog: pytest.LogCaptureFixture
    ) -> None:
        """A worker's checkpoint batch, its heartbeat and a sender's messages all write
        the same runs at once, each listing them in its own order. None of them may end
        up waiting for another in a cycle (PostgreSQL would abort one after a second)."""
        one, two = pair
        ids = [f"r{i:02d}" for i in range(30)]
        for run_id in ids:
            await one.create_run(NewRun(run_id, "wf", b"", NOW))
        claims = await one.claim_runs("w", 100, NOW, NOW + TTL, ["wf"])
        tokens = {c.run.id: c.token for c in claims}
        assert set(tokens) == set(ids)
        caplog.set_level(logging.WARNING, logger="perdure.backends.postgres")

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


class TestBatches:
    @pytest.mark.parametrize("sender_first", [True, False], ids=["sender-first", "parker-first"])
    async def test_a_message_from_the_same_batch_wakes_a_run_parking_in_it(
        self, url: str, sender_first: bool
    ) -> None:
        """The committer batches checkpoints of many runs: one run may send to another
        that parks in the same batch, unaware of the message. It must not stay parked."""
        backend = PostgresBackend.from_url(url)
        await backend.open()
        try:
            for run_id in ("sender", "waiter"):
                await backend.create_run(NewRun(run_id, "wf", b"", NOW))
            claims = {c.run.id: c for c in await backend.claim_runs("w", 9, NOW, NOW + 30, ["wf"])}
            sender, waiter = claims["sender"], claims["waiter"]
            message = NewInboxItem("waiter", InboxKind.SIGNAL, NOW, topic="t", payload=b"hi")
            send = Checkpoint("sender", "w", sender.token, NOW, NOW + TTL, inbox=[message])
            park = Checkpoint(
                "waiter", "w", waiter.token, NOW, NOW + TTL, release=True, mailbox_seen=0
            )
            results = await backend.checkpoint([send, park] if sender_first else [park, send])
            assert all(r.applied for r in results)
            rec = await backend.get_run("waiter")
            assert rec is not None
            assert (rec.owner, rec.mailbox, rec.wake_at) == (None, 1, NOW)
            [again] = await backend.claim_runs("w2", 9, NOW, NOW + TTL, ["wf"])
            assert again.run.id == "waiter"
            assert [i.payload for i in again.inbox] == [b"hi"]
        finally:
            await backend.close()

    async def test_concurrent_writes_share_a_transaction_but_fail_alone(self, url: str) -> None:
        backend = PostgresBackend.from_url(url)
        await backend.open()
        try:
            await backend.create_run(NewRun("target", "wf", b"", NOW))
            outcomes = await asyncio.gather(
                *(backend.create_run(NewRun(f"r{i}", "wf", b"", NOW)) for i in range(50)),
                backend.deliver(NewInboxItem("missing", InboxKind.SIGNAL, NOW), NOW),
                backend.deliver(NewInboxItem("target", InboxKind.SIGNAL, NOW, key="k"), NOW),
                backend.deliver(NewInboxItem("target", InboxKind.SIGNAL, NOW, key="k"), NOW),
                backend.create_run(NewRun("r0", "other", b"", NOW)),
                # PostgreSQL text cannot hold NUL: this one fails, in the same batch.
                backend.create_run(NewRun("nul\x00", "wf", b"", NOW)),
                return_exceptions=True,
            )
            created = outcomes[:50]
            missing, first, again, duplicate, refused = outcomes[50:]
            assert isinstance(refused, psycopg.DataError)
            assert all(isinstance(o, tuple) and o[1] for o in created)
            assert isinstance(missing, RunNotFound)
            assert (first, again) == (True, False)
            assert isinstance(duplicate, tuple)
            assert (duplicate[0].workflow, duplicate[1]) == ("wf", False)
            assert len(await backend.read_inbox("target", NOW)) == 1
            assert len((await backend.list_runs(RunFilter(), 100, None)).runs) == 51
            rec = await backend.get_run("target")
            assert rec is not None and rec.mailbox == 1
        finally:
            await backend.close()

    async def test_a_duplicate_journal_entry_aborts_only_its_checkpoint(
        self, url: str, sql: Any
    ) -> None:
        backend = PostgresBackend.from_url(url)
        await backend.open()
        try:
            for run_id in ("a", "b"):
                await backend.create_run(NewRun(run_id, "wf", b"", NOW))
            claims = {c.run.id: c for c in await backend.claim_runs("w", 9, NOW, NOW + 30, ["wf"])}
            # A journal row the run's length does not count (as a bad restore would
            # leave): the fence passes, the primary key refuses the entry.
            sql.execute(
                f'INSERT INTO "{schema_of(url)}".perdure_journal '
                "(run_id, seq, pos, kind, name, at) VALUES ('a', 0, 0, 'step', 'old', 0)"
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
        finally:
            await backend.close()


async def test_one_backend_serves_several_event_loops(url: str) -> None:
    """The sync surface runs its own loop on a thread: the same backend object must
    work there, here, and here again after being closed from there."""
    backend = PostgresBackend.from_url(url)
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


async def test_a_worker_hears_of_a_start_in_another_process_without_polling(url: str) -> None:
    """LISTEN/NOTIFY: the worker polls once a minute, yet a run another App starts (its
    own connections, as another process would have) is taken at once."""
    import perdure

    def build() -> perdure.App:
        app = perdure.App(url, poll_interval=60.0)

        @app.workflow()
        async def ping(n: int) -> int:
            return n + 1

        return app

    worker_app, client = build(), build()
    async with worker_app:
        await asyncio.sleep(0.5)  # the worker's first poll has found nothing
        handle = await client.start("ping", 41)
        assert await handle.result(timeout=20) == 42
        message_to = await client.start("ping", 1)
        assert await message_to.result(timeout=20) == 2
    await client.close()


async def test_a_burst_of_first_calls_migrates_and_connects_once(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many starts at once on a backend not yet opened: one migration connection and
    one pool, not a connection per caller (which ran out of server connections)."""
    connects = 0
    real = psycopg.AsyncConnection.connect

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal connects
        connects += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncConnection, "connect", counting)
    backend = PostgresBackend.from_url(url)
    try:
        found = await asyncio.gather(*(backend.get_run(f"r{i}") for i in range(60)))
        assert found == [None] * 60
        assert connects <= 1 + backend.pool_size
    finally:
        await backend.close()


async def test_connections_the_server_dropped_are_replaced_without_an_error(
    url: str, sql: Any
) -> None:
    """What a server restart does to the pool (every connection closed by the server)
    goes unnoticed by callers: reads and writes are made on fresh connections."""
    # Its connections carry a name of their own: only they are cut, not others'.
    name = f"perdure-test-{schema_of(url)}"
    backend = PostgresBackend.from_url(f"{url}&application_name={name}")
    try:
        await asyncio.gather(
            *(backend.create_run(NewRun(f"r{i}", "wf", b"", NOW)) for i in range(20))
        )
        await asyncio.gather(*(backend.get_run(f"r{i}") for i in range(20)))
        killed = sql.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (name,),
        ).fetchone()[0]
        assert killed >= 1
        runs = await asyncio.gather(*(backend.get_run(f"r{i}") for i in range(20)))
        assert all(r is not None for r in runs)
        _, created = await backend.create_run(NewRun("after", "wf", b"", NOW))
        assert created
        claims = await backend.claim_runs("w", 5, NOW, NOW + TTL, ["wf"])
        assert len(claims) == 5
    finally:
        await backend.close()


async def test_a_start_whose_one_statement_try_took_unseen_is_still_created(url: str) -> None:
    """A start alone is one autocommit statement; if its connection breaks, whether it
    took is unknown, and the batched path that follows must tell a start that took
    (created) from a run that held the id before (not created)."""
    backend = PostgresBackend.from_url(url)
    real_write = backend._db.write

    async def write_then_break(sql: str, params: Any = ()) -> Any:
        await real_write(sql, params)
        raise psycopg.OperationalError("connection lost after the statement was sent")

    try:
        await backend.create_run(NewRun("held", "wf", b"1", NOW))
        backend._db.write = write_then_break  # type: ignore[method-assign]
        rec, created = await backend.create_run(NewRun("mine", "wf", b"2", NOW + 1))
        assert created and rec.id == "mine" and rec.input == b"2"
        rec, created = await backend.create_run(NewRun("held", "wf", b"3", NOW + 2))
        assert not created and rec.input == b"1"
    finally:
        await backend.close()
