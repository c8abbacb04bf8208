"""SQLite only: what the conformance suite cannot see from one backend object.

Several processes share one database file, each with its own connection; here two
``SQLiteBackend`` objects on the same file stand in for two processes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import pytest

from perdure.backends import open_backend
from perdure.backends.sqlite import SQLiteBackend
from perdure.errors import ConfigurationError
from perdure.records import Checkpoint, EntryKind, JournalEntry, NewRun, RunStatus

NOW = 1000.0
TTL = 30.0


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[SQLiteBackend, SQLiteBackend]]:
    path = tmp_path / "shared.db"
    one, two = SQLiteBackend(path), SQLiteBackend(path)
    await one.open()
    await two.open()
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


class TestSQLiteSharedFile:
    async def test_two_backends_never_claim_the_same_run(
        self, pair: tuple[SQLiteBackend, SQLiteBackend]
    ) -> None:
        one, two = pair
        runs = {f"r{i:03d}" for i in range(300)}
        for run_id in sorted(runs):
            await one.create_run(NewRun(run_id, "wf", b"", NOW))

        async def drain(backend: SQLiteBackend, owner: str) -> list[str]:
            taken: list[str] = []
            while claims := await backend.claim_runs(owner, 3, NOW, NOW + TTL, ["wf"]):
                taken.extend(c.run.id for c in claims)
            return taken

        # Two owners on each connection, all claiming at once.
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

    async def test_a_lease_is_fenced_across_connections(
        self, pair: tuple[SQLiteBackend, SQLiteBackend]
    ) -> None:
        one, two = pair
        await one.create_run(NewRun("r", "wf", b"", NOW))
        [first] = await one.claim_runs("a", 10, NOW, NOW + TTL, ["wf"])
        assert await two.claim_runs("b", 10, NOW + 1, NOW + 1 + TTL, ["wf"]) == []
        [second] = await two.claim_runs("b", 10, NOW + TTL + 1, NOW + 2 * TTL, ["wf"])
        assert second.token == first.token + 1
        assert second.run.recoveries == 1
        step = JournalEntry(0, 0, EntryKind.STEP, "s", b"1", NOW)
        stale = Checkpoint("r", "a", first.token, NOW + TTL + 2, NOW + 2 * TTL, entries=[step])
        [result] = await one.checkpoint([stale])
        assert not result.applied
        assert await two.read_journal("r") == []
        current = Checkpoint("r", "b", second.token, NOW + TTL + 2, NOW + 2 * TTL, entries=[step])
        [result] = await two.checkpoint([current])
        assert result.applied
        assert await one.read_journal("r") == [step]


def schema_versions(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [v for (v,) in conn.execute("SELECT version FROM perdure_schema ORDER BY version")]
    finally:
        conn.close()


def shipped_versions() -> list[int]:
    folder = resources.files("perdure.backends.sqlite").joinpath("migrations")
    return sorted(int(f.name.split("_", 1)[0]) for f in folder.iterdir() if f.name.endswith(".sql"))


class TestSQLiteMigrations:
    async def test_migrations_are_recorded_and_reopening_is_idempotent(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "nested" / "dir" / "perdure.db"  # missing folders are created
        backend = SQLiteBackend(path)
        await backend.open()
        await backend.open()  # opening twice is harmless
        await backend.create_run(NewRun("r", "wf", b"kept", NOW))
        await backend.close()
        await backend.close()
        assert shipped_versions()
        assert schema_versions(path) == shipped_versions()

        for _ in range(2):
            again = SQLiteBackend(path)
            await again.open()
            try:
                rec = await again.get_run("r")
                assert rec is not None
                assert (rec.input, rec.status) == (b"kept", RunStatus.PENDING)
            finally:
                await again.close()
        assert schema_versions(path) == shipped_versions()

    async def test_the_file_is_in_wal_mode(self, tmp_path: Path) -> None:
        # WAL lets readers in other processes work while a worker writes.
        path = tmp_path / "perdure.db"
        backend = SQLiteBackend(path)
        await backend.open()
        await backend.close()
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            conn.close()


class TestSQLiteURL:
    @pytest.mark.parametrize(
        ("url", "path"),
        [
            ("sqlite:///rel.db", "rel.db"),
            ("sqlite:///data/rel.db", "data/rel.db"),
            ("sqlite:////abs/x.db", "/abs/x.db"),
            ("sqlite://relative/path.db", "relative/path.db"),
        ],
    )
    def test_paths(self, url: str, path: str) -> None:
        backend = SQLiteBackend.from_url(url)
        assert backend.path == path
        assert backend.synchronous == "full"  # survives power loss unless asked otherwise
        assert SQLiteBackend.from_url(backend.url).path == path

    def test_synchronous_option(self) -> None:
        backend = SQLiteBackend.from_url("sqlite:///rel.db?synchronous=normal")
        assert (backend.path, backend.synchronous) == ("rel.db", "normal")
        upper = SQLiteBackend.from_url("sqlite:////abs/x.db?synchronous=OFF")
        assert (upper.path, upper.synchronous) == ("/abs/x.db", "off")

    @pytest.mark.parametrize(
        "url", ["sqlite:///rel.db?synchronous=sometimes", "sqlite://", "sqlite:///"]
    )
    def test_bad_urls_are_configuration_errors(self, url: str) -> None:
        with pytest.raises(ConfigurationError):
            SQLiteBackend.from_url(url)

    def test_open_backend_picks_sqlite(self, tmp_path: Path) -> None:
        backend = open_backend(f"sqlite:///{tmp_path / 'x.db'}?synchronous=normal")
        assert isinstance(backend, SQLiteBackend)
        assert backend.path == str(tmp_path / "x.db")
        assert backend.synchronous == "normal"
        with pytest.raises(ConfigurationError):
            open_backend("sqlite:///x.db?synchronous=bogus")


def test_processes_opening_a_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    """Turning a fresh file to WAL needs it to itself; openers racing for it must wait
    their turn, not fail with 'database is locked'."""
    import subprocess
    import sys

    script = (
        "import asyncio, sys\n"
        "from perdure.backends.sqlite import SQLiteBackend\n"
        "async def main():\n"
        "    backend = SQLiteBackend(sys.argv[1])\n"
        "    await backend.open()\n"
        "    await backend.close()\n"
        "asyncio.run(main())\n"
    )
    for round_ in range(8):
        path = tmp_path / f"race{round_}.db"
        procs = [
            subprocess.Popen([sys.executable, "-c", script, str(path)], stderr=subprocess.PIPE)
            for _ in range(6)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode()


async def test_a_call_cancelled_in_the_queue_strands_no_other_call(tmp_path: Path) -> None:
    """Calls that queue up behind a write share the next transaction. One of them
    cancelled meanwhile (a stopping worker cancels its loops) is skipped, and the
    others are still answered (they once waited forever)."""
    backend = SQLiteBackend.from_url(f"sqlite:///{tmp_path / 'p.db'}")
    await backend.open()
    gate = threading.Event()
    try:
        busy = asyncio.ensure_future(backend._transaction(lambda c: gate.wait(10)))
        await asyncio.sleep(0.05)  # the writer is inside that transaction
        first = asyncio.ensure_future(backend.create_run(NewRun("a", "wf", b"", NOW)))
        second = asyncio.ensure_future(backend.create_run(NewRun("b", "wf", b"", NOW)))
        await asyncio.sleep(0.05)
        first.cancel()
        gate.set()
        await busy
        _, created = await asyncio.wait_for(second, 10)
        assert created
        assert await backend.get_run("a") is None  # cancelled before it ran
    finally:
        gate.set()
        await backend.close()
