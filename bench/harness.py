"""What the engine modules share: result reporting, process measurements, database
plumbing, the W5 crash-recovery driver and W6's group of worker processes.

Each workload runs in a fresh process started by ``run.py``; the process prints one
``@@RESULT {json}`` line with its figures and exits. Nothing here imports an engine,
so both engine modules can use it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

RESULT_MARK = "@@RESULT "
BENCH_DIR = Path(__file__).resolve().parent
MIB = 1024 * 1024


def emit(figures: dict[str, Any], **extra: Any) -> None:
    """Hand this process's figures to the orchestrator and leave at once: tearing down
    thousands of sleeping workflows is not what is measured, and may take long."""
    print(RESULT_MARK + json.dumps({"figures": figures, **extra}), flush=True)
    sys.stderr.flush()
    os._exit(0)


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size (VmRSS) of a process, in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS line")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% at or below it."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats
    return ordered[int(rank) - 1]


def latency_figures(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms),
    }


# -- databases ------------------------------------------------------------------------------


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///`` URL as both engines read it (``sqlite:////abs``
    is absolute); the query string (``?synchronous=...``) is not part of it."""
    parts = urlsplit(url)
    path = parts.path
    if path.startswith("//"):
        return path[1:]
    return path[1:] if path.startswith("/") else path


def sqlite_size_mib(path: str) -> float:
    """The database file plus its WAL or rollback journal, as they are on disk now."""
    total = 0
    for suffix in ("", "-wal", "-journal"):
        p = Path(path + suffix)
        if p.exists():
            total += p.stat().st_size
    return total / MIB


def sqlite_journal_mode(path: str) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


def pg_connect(url: str) -> Any:
    import psycopg  # installed with DBOS, in the benchmark's own environment

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def pg_size_mib(url: str) -> float:
    """Tables, indexes and TOAST of every non-system schema: the engine's data, without
    the ~7 MiB an empty PostgreSQL database takes."""
    with pg_connect(url) as conn:
        row = conn.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%'"
        ).fetchone()
        return float(row[0]) / MIB


def pg_settings(url: str) -> dict[str, str]:
    with pg_connect(url) as conn:
        names = ("fsync", "synchronous_commit", "wal_sync_method", "full_page_writes")
        return {n: str(conn.execute(f"SHOW {n}").fetchone()[0]) for n in names}


def mysql_query(url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """One statement on a fresh autocommit connection to the MySQL/MariaDB server of
    ``url`` (its database, if the URL names one); the rows. asyncmy is the driver
    perdure[mysql] brings; this runs it on a loop and thread of its own."""
    import asyncmy

    # asyncmy logs the server's notes as warnings (e.g. DROP DATABASE IF EXISTS of a
    # database that is not there): expected here, and noise in the benchmark's output.
    logging.getLogger("asyncmy").setLevel(logging.ERROR)
    parts = urlsplit(url)

    async def run() -> list[tuple[Any, ...]]:
        conn = await asyncmy.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=parts.path.lstrip("/") or None,
            autocommit=True,
            connect_timeout=10,
        )
        try:
            async with conn.cursor() as cur:
                await cur.execute(sql, tuple(params))
                return list(await cur.fetchall())
        finally:
            conn.close()

    # On a thread of its own: callers may be inside an event loop (W4's size).
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, run()).result()


def mysql_settings(url: str) -> dict[str, str]:
    names = ("version", "innodb_flush_log_at_trx_commit", "sync_binlog", "log_bin")
    row = mysql_query(url, "SELECT " + ", ".join(f"@@{n}" for n in names))[0]
    return {
        n: str(v.decode() if isinstance(v, bytes) else v) for n, v in zip(names, row, strict=True)
    }


def mysql_size_mib(url: str) -> float:
    """Data and indexes of the URL's database, after ANALYZE TABLE refreshed InnoDB's
    statistics (information_schema shows them as of the last refresh)."""
    tables = [
        str(name.decode() if isinstance(name, bytes) else name)
        for (name,) in mysql_query(
            url,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
        )
    ]
    if tables:
        mysql_query(url, "ANALYZE TABLE " + ", ".join(f"`{t}`" for t in tables))
    row = mysql_query(
        url,
        "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
        "WHERE table_schema = DATABASE()",
    )[0]
    return float(row[0]) / MIB


def redis_prefix(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query)).get("prefix", "perdure:")


def redis_client(url: str) -> Any:
    import redis  # installed with perdure[redis]

    return redis.Redis.from_url(url.split("?", 1)[0], socket_connect_timeout=10)


def redis_keys(url: str) -> list[bytes]:
    client = redis_client(url)
    return list(client.scan_iter(match=redis_prefix(url) + "*", count=1000))


def redis_settings(url: str) -> dict[str, str]:
    client = redis_client(url)
    out = {"version": str(client.info("server")["redis_version"])}
    for name in ("appendonly", "appendfsync", "save"):
        out[name] = str(client.config_get(name).get(name, "?"))
    return out


def redis_size_mib(url: str) -> float:
    """Memory the prefix's keys take (MEMORY USAGE): Redis keeps the data in memory."""
    client = redis_client(url)
    return sum(client.memory_usage(key) or 0 for key in redis_keys(url)) / MIB


def redis_durability(settings: dict[str, str]) -> str:
    """What a Redis server with these settings keeps on disk, said plainly."""
    head = f"Redis {settings['version']}: appendonly={settings['appendonly']}, "
    head += f"appendfsync={settings['appendfsync']}, save={settings['save']!r}"
    if settings["appendonly"] == "yes":
        kept = {
            "always": "the AOF is fsynced at every write: a checkpoint survives a crash",
            "everysec": "the AOF is fsynced once a second: a crash may lose the last second",
        }.get(settings["appendfsync"], "the AOF is flushed when the OS decides")
    elif settings["save"].strip():
        kept = "RDB snapshots only: a crash loses everything since the last snapshot"
    else:
        kept = "NOTHING is kept on disk: a restart of the Redis server loses every run"
    return f"{head}: {kept}"


def mysql_durability(settings: dict[str, str]) -> str:
    flush = {
        "1": "the redo log is written and fsynced at every commit",
        "2": "the redo log is written at every commit and fsynced about once a second "
        "(survives a server crash, not a power loss)",
        "0": "the redo log is written and fsynced about once a second",
    }.get(settings["innodb_flush_log_at_trx_commit"], "?")
    binlog = (
        f"binary log on, sync_binlog={settings['sync_binlog']}"
        if settings["log_bin"] in ("1", "ON")
        else "binary log off"
    )
    return (
        f"MariaDB/MySQL {settings['version']}: innodb_flush_log_at_trx_commit="
        f"{settings['innodb_flush_log_at_trx_commit']}: {flush}; {binlog}"
    )


def server_durability(url: str) -> str:
    """The durability settings of the server behind ``url``, as read from it."""
    if url.startswith("postgres"):
        return "PostgreSQL " + ", ".join(f"{k}={v}" for k, v in pg_settings(url).items())
    if url.startswith(("mysql", "mariadb")):
        return mysql_durability(mysql_settings(url))
    if url.startswith("redis"):
        return redis_durability(redis_settings(url))
    return url.split(":", 1)[0]


def db_size_mib(url: str) -> float:
    """The database's size once settled: a SQLite file after a WAL checkpoint (the WAL
    file keeps its high-water size until then), PostgreSQL's relations, MySQL's tables
    and indexes, the memory Redis uses for the prefix's keys."""
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        conn = sqlite3.connect(path, timeout=30)
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        return sqlite_size_mib(path)
    if url.startswith("postgres"):
        return pg_size_mib(url)
    if url.startswith(("mysql", "mariadb")):
        return mysql_size_mib(url)
    if url.startswith("redis"):
        return redis_size_mib(url)
    raise ValueError(f"no size for {url}")


# -- W5: crash and recover ------------------------------------------------------------------


class EffectLog:
    """One line per step execution, appended by whichever process runs the step:
    ``B <workflow> <step> <pid>`` when a step begins, ``E ...`` when its effect happens.
    Lines are single ``write`` calls on an O_APPEND file, so concurrent writers never
    interleave them."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._fd: int | None = None

    def _write(self, kind: str, workflow: int, step: int) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, f"{kind} {workflow} {step} {os.getpid()}\n".encode())

    def begin(self, workflow: int, step: int) -> None:
        self._write("B", workflow, step)

    def effect(self, workflow: int, step: int) -> None:
        self._write("E", workflow, step)

    def lines(self) -> list[tuple[str, int, int, int]]:
        if not os.path.exists(self.path):
            return []
        out = []
        with open(self.path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 4:
                    out.append((parts[0], int(parts[1]), int(parts[2]), int(parts[3])))
        return out

    def count_effects(self) -> int:
        return sum(1 for kind, *_ in self.lines() if kind == "E")


def run_recovery(
    *,
    workflows: int,
    steps: int,
    effects: EffectLog,
    spawn_worker: Callable[[bool], subprocess.Popen[bytes]],
    count_completed: Callable[[], int],
    kill_after: float = 1.0,
    step_seconds: float = 0.05,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """W5: start a worker, SIGKILL it about ``kill_after`` seconds after its first
    step effect (or once half the effects happened, if that comes first, so the kill
    always lands mid-run) plus a random fraction of a step, start a fresh worker, and
    time until every workflow has completed. The workflows exist before the first
    worker starts; ``spawn_worker(True)`` starts the first worker,
    ``spawn_worker(False)`` the replacement.

    Effects are duplicated only by a kill between a step's effect and the commit that
    records it; the random phase keeps the trigger (which fires right after a burst of
    effects) from always choosing that window, or always avoiding it."""
    total = workflows * steps
    phase = random.uniform(0, step_seconds)
    first = spawn_worker(True)
    try:
        deadline = time.monotonic() + timeout
        first_effect = None
        while True:
            if first.poll() is not None:
                raise RuntimeError(f"worker exited early with {first.returncode}")
            done = effects.count_effects()
            now = time.monotonic()
            if done and first_effect is None:
                first_effect = now
            if first_effect is not None and (
                now - first_effect >= kill_after or done >= total // 2
            ):
                break
            if now > deadline:
                raise RuntimeError("the first worker never got going")
            time.sleep(0.005)
        time.sleep(phase)
        first.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    effects_at_kill = effects.count_effects()
    completed_at_kill = count_completed()
    second = spawn_worker(False)
    try:
        while True:
            done = count_completed()
            if done >= workflows:
                break
            if second.poll() is not None:
                raise RuntimeError(f"replacement worker exited with {second.returncode}")
            if time.monotonic() - killed > timeout:
                raise RuntimeError(f"only {done}/{workflows} completed after the restart")
            time.sleep(0.01)
        recovered = time.monotonic()
    finally:
        second.send_signal(signal.SIGKILL)
        second.wait()

    lines = effects.lines()
    executions = Counter((w, s) for kind, w, s, _ in lines if kind == "E")
    lost = sum(1 for w in range(workflows) for s in range(steps) if executions[(w, s)] == 0)
    duplicated = sum(c - 1 for c in executions.values() if c > 1)
    pid = first.pid
    began = {(w, s) for kind, w, s, p in lines if kind == "B" and p == pid}
    ended = {(w, s) for kind, w, s, p in lines if kind == "E" and p == pid}
    return {
        "recovery_s": recovered - killed,
        "killed_after_first_effect_s": killed - (first_effect or killed),
        "kill_phase_ms": phase * 1000,
        "effects_before_kill": effects_at_kill,
        "completed_before_kill": completed_at_kill,
        # Steps run one after another, so at most one step per unfinished workflow
        # was in flight at the kill: the bound on duplicated effects.
        "inflight_bound": workflows - completed_at_kill,
        "interrupted_steps": len(began - ended),
        "lost": lost,
        "duplicated": duplicated,
        "effects": sum(executions.values()),
    }


# -- W6: a group of worker processes --------------------------------------------------------


def cpu_ticks() -> tuple[int, int]:
    """The machine's (busy, total) CPU time so far, all cores, in clock ticks."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_busy_since(start: tuple[int, int]) -> float:
    """The share of the machine's CPU time (all cores) that was busy since ``start``:
    near 1.0, every core was working, whatever ran on them."""
    busy, total = cpu_ticks()
    return (busy - start[0]) / max(1, total - start[1])


def w6_per_process(p: dict[str, Any]) -> int | None:
    """How many runs one W6 process may hold at once. ``"share"``: its even share of the
    runs, rounded up, the same limit on both engines (perdure's worker ``concurrency``,
    DBOS's queue ``worker_concurrency``). Without a limit the first DBOS process to
    poll dequeues the whole queue; with it each process takes its share and none needs
    a second poll for more. A number is that limit; None, each engine's default."""
    limit = p.get("per_process")
    if limit == "share":
        return -(-int(p["workflows"]) // int(p["processes"]))
    return None if limit is None else int(limit)


class WorkerGroup:
    """W6's worker processes on one database, told to start at the same moment.

    Each child prints ``@@READY`` once it is set up (code imported, database opened),
    starts working when a line arrives on its stdin, stops when stdin closes, and then
    prints ``@@REPORT {json}`` (what it ran). ``go`` returns the wall-clock time
    (``time.time()``) the word was given, which the coordinator compares with finish
    times the database recorded."""

    READY = "@@READY"
    REPORT = "@@REPORT "

    def __init__(
        self,
        cmd: list[str],
        count: int,
        cwd: Path | None = None,
        env_for: Callable[[int], dict[str, str]] | None = None,
    ) -> None:
        self.procs = [
            subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=cwd,
                env=env_for(i) if env_for else None,
            )
            for i in range(count)
        ]

    def _line(self, proc: subprocess.Popen[str], mark: str) -> str:
        assert proc.stdout is not None
        while True:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {proc.pid} exited ({proc.wait()}) before {mark!r}")
            if line.startswith(mark):
                return line[len(mark) :].strip()

    def wait_ready(self) -> None:
        for proc in self.procs:
            self._line(proc, self.READY)

    def go(self) -> float:
        t0 = time.time()
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        return t0

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"worker {proc.pid} exited with {proc.returncode}")

    def stop(self) -> list[dict[str, Any]]:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.close()
        reports = [json.loads(self._line(proc, self.REPORT)) for proc in self.procs]
        for proc in self.procs:
            proc.wait(timeout=60)
        return reports

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # The child's side.

    @classmethod
    def ready(cls) -> None:
        print(cls.READY, flush=True)

    @staticmethod
    def wait_for_go() -> None:
        sys.stdin.readline()

    @staticmethod
    def wait_for_stop() -> None:
        sys.stdin.read()

    @classmethod
    def report(cls, figures: dict[str, Any]) -> None:
        """Say what this process ran and leave at once (as ``emit`` does)."""
        print(cls.REPORT + json.dumps(figures), flush=True)
        sys.stderr.flush()
        os._exit(0)
