"""What the engine modules share: result reporting, process measurements, database
plumbing and the W5 crash-recovery driver.

Each workload runs in a fresh process started by ``run.py``; the process prints one
``@@RESULT {json}`` line with its figures and exits. Nothing here imports an engine,
so both engine modules can use it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


def db_size_mib(url: str) -> float:
    """The database's size once settled: a SQLite file after a WAL checkpoint (the WAL
    file keeps its high-water size until then), PostgreSQL's relations."""
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
