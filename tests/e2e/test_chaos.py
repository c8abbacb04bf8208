"""Chaos on the server databases, with real worker processes (scenarios C7 and C8).

C8: three workers share a database; one is killed with SIGKILL mid-run; every run
completes with the right result, each step recorded exactly once, and only steps the
kill interrupted ran twice. C7: the database server itself restarts mid-run; workers
reconnect with backoff and the same holds.

These restart the machine's PostgreSQL and MariaDB services (with the commands this
machine starts them with); for Redis they crash a private server that keeps an
append-only file synced at every write (the durable configuration the docs describe).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from crashkit import Cluster, Line, eventually, starts

import perdure
from stores import BACKENDS, SHARED

SERVERS = [name for name in BACKENDS if name in ("postgres", "mysql", "redis")]
RESTARTS = {
    "postgres": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main restart",
    # Shut down, wait for the server process to be gone (a new one started before
    # would find the port and files still held), then start it as this machine does.
    "mysql": (
        "pid=$(pidof mariadbd); mariadb-admin -h 127.0.0.1 -u root shutdown; "
        "while kill -0 $pid 2>/dev/null; do sleep 0.1; done; "
        "start-stop-daemon --start --background --exec /usr/sbin/mariadbd && "
        "for i in $(seq 1 300); do mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1 "
        "&& exit 0; sleep 0.1; done; exit 1"
    ),
}


def chain_result(x: int, n: int) -> int:
    for i in range(n):
        x = x * 3 + i
    return x


@pytest.fixture
def server_url(backend_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store; for Redis a private server on its own port that keeps an
    append-only file synced at every write, so that a crash of it loses nothing."""
    if backend_name != "redis":
        yield str(request.getfixturevalue("url"))
        return
    request.getfixturevalue("url")  # the shared server answers, or the test fails in CI
    yield start_redis(tmp_path)
    subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "shutdown", "nosave"], check=False)


REDIS_PORT = 6391


def start_redis(directory: Path) -> str:
    subprocess.run(
        [
            "redis-server",
            "--port",
            str(REDIS_PORT),
            "--bind",
            "127.0.0.1",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--dir",
            str(directory),
            "--pidfile",
            str(directory / "redis.pid"),
            "--daemonize",
            "yes",
        ],
        check=True,
    )
    for _ in range(100):
        ping = subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "ping"], capture_output=True)
        if ping.stdout.strip() == b"PONG":
            break
        time.sleep(0.05)
    return f"redis://127.0.0.1:{REDIS_PORT}/0?prefix=chaos:"


def crash_redis(directory: Path) -> None:
    """SIGKILL the private Redis (no chance to flush anything), then start it again."""
    pid = int((directory / "redis.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    start_redis(directory)


@pytest.fixture
async def cluster(tmp_path: Path, server_url: str) -> AsyncIterator[Cluster]:
    procs = Cluster(tmp_path, server_url)
    yield procs
    await procs.close()


async def all_results(cluster: Cluster, handles: list[perdure.Handle[int]], n: int) -> None:
    for i, handle in enumerate(handles):
        assert await handle.result(timeout=120) == chain_result(i, n), handle.id
        positions = await cluster.step_positions(handle.id)
        assert len(positions) == len(set(positions)) == n, (handle.id, positions)


def in_flight(lines: list[Line], pid: int) -> set[tuple[str, int]]:
    begun = {(line.run_id, line.pos) for line in lines if line.pid == pid and line.event == "start"}
    ended = {(line.run_id, line.pos) for line in lines if line.pid == pid and line.event == "end"}
    return begun - ended


@pytest.mark.parametrize("backend_name", SHARED)
async def test_c8_a_killed_worker_of_three_loses_nothing(cluster: Cluster) -> None:
    runs, length = 100, 6
    handles = [await cluster.app.start("chain", i, length, id=f"c8-{i}") for i in range(runs)]
    workers = [cluster.spawn("--concurrency", "10") for _ in range(3)]
    victim = workers[0]

    def victim_busy() -> bool:
        lines = cluster.log()
        return len(starts(lines)) >= 60 and bool(in_flight(lines, victim.pid))

    await eventually(victim_busy, timeout=60, what="the victim mid-step")
    cluster.kill(victim)
    # A step the victim ran may run again: its checkpoint may not have been committed
    # before the kill, even when the step had finished.
    victims = {(line.run_id, line.pos) for line in starts(cluster.log()) if line.pid == victim.pid}
    await all_results(cluster, handles, length)
    for survivor in workers[1:]:
        cluster.assert_alive(survivor)
    executions = Counter((line.run_id, line.pos) for line in starts(cluster.log()))
    for key, n in executions.items():
        assert n == 1 or (n == 2 and key in victims), (key, n)


@pytest.mark.parametrize("backend_name", SERVERS)
async def test_c7_a_database_restart_mid_run_loses_nothing(
    cluster: Cluster, backend_name: str, tmp_path: Path
) -> None:
    runs, length = 40, 6
    handles = [await cluster.app.start("chain", i, length, id=f"c7-{i}") for i in range(runs)]
    workers = [cluster.spawn("--concurrency", "10") for _ in range(2)]
    await eventually(lambda: len(starts(cluster.log())) >= 40, timeout=60, what="work going")
    if backend_name == "redis":
        await asyncio.to_thread(crash_redis, tmp_path)
    else:
        restart = await asyncio.to_thread(
            subprocess.run, RESTARTS[backend_name], shell=True, capture_output=True, text=True
        )
        assert restart.returncode == 0, restart.stderr
    restarted = time.time()
    await all_results(cluster, handles, length)
    for worker in workers:
        cluster.assert_alive(worker)
    # The restart landed mid-run: work went on after it.
    assert any(line.at > restarted for line in starts(cluster.log()))
    # Steps ran twice only where a write was lost to the restart: never more than twice,
    # and each recorded once (checked above).
    executions = Counter((line.run_id, line.pos) for line in starts(cluster.log()))
    assert max(executions.values()) <= 2
