"""perdure's benchmark suite, side by side with DBOS.

    python bench/run.py            # W1-W6, every target, 3 repetitions
    python bench/run.py --quick    # 1 repetition, small sizes
    python bench/run.py --help     # choose workloads, targets, repetitions

The first run creates ``bench/.venv`` with perdure (editable, from this repository,
with its PostgreSQL, MySQL and Redis drivers), DBOS and pyinstrument, then re-runs
itself there. Every workload runs in a fresh process per (target, repetition) on a
fresh SQLite file, a freshly created PostgreSQL or MySQL database, or a fresh Redis key
prefix; repetitions alternate between targets. Results go to
``bench/results/<timestamp>.jsonl`` (one line per run, then one per summarised
figure) and ``.md`` (the table); children's stderr goes to ``.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness  # bench/harness.py: stdlib only at import time

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv"
RESULTS = BENCH / "results"
# DBOS is the peer measured, pinned so results stay comparable; not a perdure dependency.
REQUIREMENTS = ["dbos==3.4.0", "pyinstrument>=4.6"]
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MYSQL_ADMIN_URL = "mysql://root@127.0.0.1:3306/"
REDIS_URL = "redis://127.0.0.1:6379/0"
PERDURE = f"{REPO}[postgres,mysql,redis]"
# Server backends DBOS does not support: their rows are compared with DBOS on PostgreSQL.
NO_DBOS_PEER = ("mysql", "redis")
DBOS_FALLBACK = "dbos postgres"


# -- the benchmark's own environment ---------------------------------------------------------


def ensure_venv() -> None:
    """Create bench/.venv when needed and re-run this script with its interpreter."""
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    stamp = VENV / ".bench-requirements"
    wanted = json.dumps([PERDURE, *REQUIREMENTS])
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        print(f"bench: preparing {VENV} (perdure from {REPO}, {', '.join(REQUIREMENTS)})")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "-e", PERDURE, *REQUIREMENTS], check=True)
        stamp.write_text(wanted)
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


# -- what is measured -------------------------------------------------------------------------

FULL = {
    "w1": {"workflows": 200, "steps": 10},
    "w2": {"iterations": 200},
    "w3": {"width": 200},
    "w4": {"workflows": 5000, "chunk": 200},
    "w5": {"workflows": 100, "steps": 10, "kill_after": 1.0},
    "w6": {"workflows": 600, "steps": 10, "processes": [1, 2, 4], "per_process": "share"},
}
QUICK = {
    "w1": {"workflows": 50, "steps": 10},
    "w2": {"iterations": 50},
    "w3": {"width": 50},
    "w4": {"workflows": 500, "chunk": 200},
    "w5": {"workflows": 20, "steps": 10, "kill_after": 1.0},
    "w6": {"workflows": 100, "steps": 10, "processes": [1, 2, 4], "per_process": "share"},
}
# W6 needs a database several processes share over the network.
W6_KINDS = ("postgres", "mysql", "redis")
TITLES = {
    "w1": "W1 sequential ({workflows} workflows x {steps} no-op steps, started at once)",
    "w2": "W2 latency ({iterations} x start a 1-step workflow and wait for its result)",
    "w3": "W3 fan-out (one workflow gathers {width} parallel no-op steps)",
    "w4": "W4 sleepers ({workflows} workflows that each sleep an hour)",
    "w5": "W5 recovery ({workflows} workflows x {steps} steps of 50 ms, worker SIGKILLed)",
    "w6": "W6 scale-out ({workflows} workflows x {steps} no-op steps, run by 1, 2 and 4 "
    "worker processes on one database)",
}


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool | None  # None: a count, not compared as a ratio
    compared: bool = True  # False: shown with its arrow, but no ratio to DBOS


METRICS: dict[str, list[Metric]] = {
    "w1": [
        Metric("steps_per_s", "steps/s", True),
        Metric("workflows_per_s", "workflows/s", True),
    ],
    "w2": [
        Metric("p50_ms", "p50 ms", False),
        Metric("p90_ms", "p90 ms", False),
        Metric("p99_ms", "p99 ms", False),
    ],
    "w3": [Metric("wall_s", "wall s", False)],
    "w4": [
        Metric("start_s", "start all s", False),
        Metric("rss_mib", "RSS MiB", False),
        Metric("db_mib", "database MiB", False),
    ],
    "w5": [
        Metric("recovery_s", "kill to all done s", False),
        Metric("lost", "lost effects", None),
        Metric("duplicated", "duplicated effects", None),
        Metric("inflight_bound", "unfinished at kill", None),
    ],
    "w6": [
        Metric("steps_per_s_1p", "steps/s, 1 process", True),
        Metric("steps_per_s_2p", "steps/s, 2 processes", True),
        Metric("steps_per_s_4p", "steps/s, 4 processes", True),
        Metric("speedup_2p", "speed-up, 2 processes", True, compared=False),
        Metric("speedup_4p", "speed-up, 4 processes", True, compared=False),
    ],
}


@dataclass
class Target:
    """An engine on a kind of database. ``prepare`` makes a fresh database for one run
    and returns its URL; ``cleanup`` removes it."""

    name: str
    engine: str
    kind: str  # sqlite | postgres | mysql | redis
    durability: str
    prepare: Callable[[str], str]
    cleanup: Callable[[str], None] = lambda url: None
    note: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)


def sqlite_target(
    name: str, engine: str, durability: str, data: Path, query: str = "", wal: bool = False
) -> Target:
    def prepare(run_id: str) -> str:
        folder = data / run_id
        folder.mkdir(parents=True)
        path = folder / ("bench.db" if engine == "perdure" else "bench.sqlite")
        if wal:
            import sqlite3

            # journal_mode is stored in the file: every DBOS connection then uses WAL.
            conn = sqlite3.connect(path)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.close()
        return f"sqlite:///{path}{query}"

    def cleanup(url: str) -> None:
        shutil.rmtree(Path(url.split("?")[0][len("sqlite:///") :]).parent, ignore_errors=True)

    return Target(name, engine, "sqlite", durability, prepare, cleanup)


def postgres_target(name: str, engine: str, admin_url: str) -> Target:
    import psycopg

    base = admin_url.rsplit("/", 1)[0]

    def prepare(run_id: str) -> str:
        db = f"bench_{engine}_{run_id.replace('-', '_')}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{db}"')
        return f"{base}/{db}"

    def cleanup(url: str) -> None:
        db = url.rsplit("/", 1)[1]
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    with psycopg.connect(admin_url, autocommit=True) as conn:
        settings = {
            n: conn.execute(f"SHOW {n}").fetchone()[0]  # type: ignore[index]
            for n in ("server_version", "fsync", "synchronous_commit", "wal_sync_method")
        }
    durability = (
        f"PostgreSQL {settings['server_version']}: fsync={settings['fsync']}, "
        f"synchronous_commit={settings['synchronous_commit']}, "
        f"wal_sync_method={settings['wal_sync_method']} (server defaults)"
    )
    return Target(name, engine, "postgres", durability, prepare, cleanup)


def mysql_target(name: str, engine: str, admin_url: str) -> Target:
    """A fresh database per run on the MySQL/MariaDB server (perdure's tables get their
    default ``perdure_`` prefix inside it), dropped after the run."""
    base = admin_url.rstrip("/")

    def prepare(run_id: str) -> str:
        db = f"bench_{engine}_{run_id.replace('-', '_')}"
        harness.mysql_query(admin_url, f"DROP DATABASE IF EXISTS `{db}`")
        harness.mysql_query(admin_url, f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
        return f"{base}/{db}"

    def cleanup(url: str) -> None:
        db = url.rsplit("/", 1)[1].split("?")[0]
        harness.mysql_query(admin_url, f"DROP DATABASE IF EXISTS `{db}`")

    durability = harness.mysql_durability(harness.mysql_settings(admin_url))
    return Target(name, engine, "mysql", durability + " (server settings)", prepare, cleanup)


def redis_target(name: str, engine: str, server_url: str) -> Target:
    """A fresh key prefix per run on the Redis server; its keys are deleted after."""

    def prepare(run_id: str) -> str:
        url = f"{server_url}?prefix=bench_{engine}_{run_id.replace('-', '_')}:"
        delete_keys(url)
        return url

    def delete_keys(url: str) -> None:
        keys = harness.redis_keys(url)
        client = harness.redis_client(url)
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start : start + 1000])

    durability = harness.redis_durability(harness.redis_settings(server_url))
    return Target(name, engine, "redis", durability, prepare, delete_keys)


def perdure_supports(url: str) -> bool:
    from perdure.backends import open_backend
    from perdure.errors import ConfigurationError

    try:
        open_backend(url)
    except ConfigurationError:
        return False
    return True


def perdure_cannot_open(url: str) -> str | None:
    """Why perdure's backend for ``url`` cannot be created here, or None if it can."""
    try:
        if perdure_supports(url):
            return None
        return "no such backend in this version"
    except Exception as exc:  # a backend that does not load: skip its target, say why
        return f"{type(exc).__name__}: {exc}"


def build_targets(
    data: Path, pg_admin: str | None, mysql_admin: str | None, redis_url: str | None
) -> tuple[list[Target], list[str]]:
    notes: list[str] = []
    targets = [
        sqlite_target(
            "perdure sqlite-normal",
            "perdure",
            "SQLite WAL, synchronous=NORMAL: no fsync per commit; survives a process "
            "crash, a power loss may drop the last commits",
            data,
            "?synchronous=normal",
        ),
        sqlite_target(
            "perdure sqlite-full",
            "perdure",
            "SQLite WAL, synchronous=FULL: the WAL is fsynced at every commit",
            data,
            "?synchronous=full",
        ),
        sqlite_target(
            "dbos sqlite",
            "dbos",
            "DBOS default: SQLite rollback journal (journal_mode=DELETE), "
            "synchronous=FULL (SQLite's default; DBOS sets none)",
            data,
        ),
        sqlite_target(
            "dbos sqlite-wal",
            "dbos",
            "SQLite WAL (set on the file before DBOS opens it), synchronous=FULL: "
            "the same durability as perdure sqlite-full",
            data,
            wal=True,
        ),
    ]
    servers: list[Target] = []
    if pg_admin is None:
        notes.append("PostgreSQL targets skipped (--no-postgres)")
    else:
        try:
            dbos_pg = postgres_target("dbos postgres", "dbos", pg_admin)
            probe = pg_admin.rsplit("/", 1)[0] + "/bench_probe"
            if perdure_supports(probe):
                servers.append(postgres_target("perdure postgres", "perdure", pg_admin))
            else:
                notes.append(
                    "perdure has no PostgreSQL backend in this version: DBOS on PostgreSQL "
                    "is a reference row"
                )
            servers.append(dbos_pg)
        except Exception as exc:
            notes.append(f"PostgreSQL unreachable at {pg_admin} ({exc}); its targets skipped")
    # DBOS runs on SQLite and PostgreSQL only: these have a perdure row alone.
    for url, kind, make, flag in (
        (mysql_admin, "mysql", mysql_target, "--no-mysql"),
        (redis_url, "redis", redis_target, "--no-redis"),
    ):
        if url is None:
            notes.append(f"the {kind} target skipped ({flag})")
            continue
        probe = url.rstrip("/") + ("/bench_probe" if kind == "mysql" else "")
        why = perdure_cannot_open(probe)
        if why is not None:
            notes.append(f"perdure {kind} skipped: its backend cannot be created ({why})")
            continue
        try:
            servers.append(make(f"perdure {kind}", "perdure", url))
        except Exception as exc:
            notes.append(f"{kind} unreachable at {url} ({exc}); its target skipped")
    # Keep perdure's rows together, DBOS's after them, as the table reads best.
    targets[2:2] = [t for t in servers if t.engine == "perdure"]
    targets += [t for t in servers if t.engine == "dbos"]
    if any(t.kind in NO_DBOS_PEER for t in targets):
        notes.append(
            "DBOS supports neither MySQL nor Redis: the perdure mysql and perdure redis "
            f"rows are compared with {DBOS_FALLBACK} only (ratios marked †)"
        )
    return targets, notes


# -- running ----------------------------------------------------------------------------------


def runs_workload(target: Target, workload: str) -> bool:
    return workload != "w6" or target.kind in W6_KINDS


def run_w6(
    target: Target,
    params: dict[str, Any],
    run_id: str,
    data: Path,
    log: Any,
    timeout: float,
    rep: int,
) -> dict[str, Any]:
    """W6 for one target: one child (on a fresh database) per process count, the counts
    in rotated order from one repetition to the next; one record with every figure."""
    counts = list(params["processes"])
    counts = counts[rep % len(counts) :] + counts[: rep % len(counts)]
    record: dict[str, Any] = {
        "kind": "run",
        "target": target.name,
        "engine": target.engine,
        "backend": target.kind,
        "workload": "w6",
        "params": params,
        "elapsed_s": 0.0,
        "by_processes": {},
    }
    figures: dict[str, Any] = {}
    for k in counts:
        sub = run_child(
            target, "w6", dict(params, processes=k), f"{run_id}-p{k}", data, log, timeout
        )
        record["elapsed_s"] += sub["elapsed_s"]
        record["by_processes"][str(k)] = sub.get("figures") or {"error": sub.get("error")}
        for key in ("durability", "version"):
            if key in sub:
                record[key] = sub[key]
        if "error" in sub:
            record["error"] = f"{k} processes: {sub['error']}"
            return record
        figures[f"steps_per_s_{k}p"] = sub["figures"]["steps_per_s"]
    for k in counts:
        if k != 1 and "steps_per_s_1p" in figures:
            figures[f"speedup_{k}p"] = figures[f"steps_per_s_{k}p"] / figures["steps_per_s_1p"]
    record["figures"] = figures
    return record


def run_child(
    target: Target,
    workload: str,
    params: dict[str, Any],
    run_id: str,
    data: Path,
    log: Any,
    timeout: float,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kind": "run",
        "target": target.name,
        "engine": target.engine,
        "backend": target.kind,
        "workload": workload,
        "params": params,
    }
    try:
        url = target.prepare(run_id)
    except Exception as exc:  # the server went away: this run fails, the suite goes on
        log.write(f"==== {run_id} {target.name} {workload}: no database: {exc!r}\n")
        return dict(record, elapsed_s=0.0, error=f"preparing its database failed: {exc}")
    workdir = data / f"{run_id}-work"
    workdir.mkdir(parents=True, exist_ok=True)
    script = BENCH / f"{target.engine}_bench.py"
    cmd = [
        sys.executable,
        str(script),
        workload,
        "--url",
        url,
        "--params",
        json.dumps(params),
        "--workdir",
        str(workdir),
    ]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=BENCH)
        out, err, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        code = None
    finally:
        record["elapsed_s"] = time.monotonic() - t0
        try:
            target.cleanup(url)
        except Exception as exc:
            log.write(f"==== {run_id} {target.name}: removing {url} failed: {exc!r}\n")
        shutil.rmtree(workdir, ignore_errors=True)
    log.write(f"==== {run_id} {target.name} {workload} exit={code}\n{err}{out}\n")
    log.flush()
    result = next((line for line in out.splitlines() if line.startswith("@@RESULT ")), None)
    if result is None:
        tail = (err or out).strip().splitlines()[-3:]
        record["error"] = f"exit {code}: " + " | ".join(tail) if code is not None else "timeout"
    else:
        record.update(json.loads(result[len("@@RESULT ") :]))
    return record


def summarise(
    records: list[dict[str, Any]], targets: list[Target], workloads: list[str]
) -> list[dict[str, Any]]:
    rows = []
    dbos = [t.name for t in targets if t.engine == "dbos"]
    for w in workloads:
        for m in METRICS[w]:
            medians: dict[str, float] = {}
            for t in targets:
                if not runs_workload(t, w):
                    continue
                values = [
                    r["figures"][m.key]
                    for r in records
                    if r["target"] == t.name and r["workload"] == w and "figures" in r
                ]
                errors = sum(
                    1
                    for r in records
                    if r["target"] == t.name and r["workload"] == w and "error" in r
                )
                row: dict[str, Any] = {
                    "kind": "summary",
                    "workload": w,
                    "metric": m.key,
                    "label": m.label,
                    "target": t.name,
                    "n": len(values),
                    "errors": errors,
                }
                if values:
                    row.update(min=min(values), median=statistics.median(values), max=max(values))
                    medians[t.name] = row["median"]
                rows.append(row)
            kinds = {t.name: t.kind for t in targets}
            for row in rows:
                if row["workload"] != w or row["metric"] != m.key:
                    continue
                if m.higher_is_better is None or not m.compared:
                    continue
                if not row["target"].startswith("perdure") or row["target"] not in medians:
                    continue
                peers = dbos
                if kinds[row["target"]] in NO_DBOS_PEER:
                    # No DBOS on this database: the ratio is to DBOS on PostgreSQL.
                    peers = [DBOS_FALLBACK] if DBOS_FALLBACK in dbos else []
                    if peers:
                        row["ratio_note"] = f"no DBOS on {kinds[row['target']]}: vs {DBOS_FALLBACK}"
                for peer in peers:
                    if medians.get(peer):
                        row[f"ratio_vs_{peer}"] = medians[row["target"]] / medians[peer]
    return rows


def fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int) or (
        isinstance(value, float) and value.is_integer() and abs(value) >= 10
    ):
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"


def table(
    summary: list[dict[str, Any]],
    targets: list[Target],
    workloads: list[str],
    sizes: dict[str, dict[str, Any]],
) -> str:
    lines = []
    for w in workloads:
        # Only the DBOS targets that ran this workload get a ratio column.
        dbos = [
            t.name
            for t in targets
            if t.engine == "dbos"
            and any(r["target"] == t.name and r["workload"] == w and r["n"] for r in summary)
        ]
        head = ["figure", "target", "min", "median", "max"] + [f"perdure ÷ {d}" for d in dbos]
        lines.append(f"\n**{TITLES[w].format(**sizes[w])}**\n")
        if not any(r["workload"] == w for r in summary):
            lines.append("No target here runs it (W6: server targets only).")
            continue
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for m in METRICS[w]:
            arrow = {True: " (↑)", False: " (↓)", None: ""}[m.higher_is_better]
            for row in summary:
                if row["workload"] != w or row["metric"] != m.key:
                    continue
                if not row["n"]:
                    cells = ["error" if row["errors"] else "—"] * 3
                else:
                    cells = [fmt(row["min"]), fmt(row["median"]), fmt(row["max"])]
                mark = "x†" if "ratio_note" in row else "x"
                ratios = [
                    fmt(row.get(f"ratio_vs_{d}")) + (mark if f"ratio_vs_{d}" in row else "")
                    for d in dbos
                ]
                lines.append(
                    "| " + " | ".join([m.label + arrow, row["target"], *cells, *ratios]) + " |"
                )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    import sqlite3

    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    from importlib.metadata import version

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "perdure": version("perdure"),
        "perdure_commit": commit,
        "dbos": version("dbos"),
    }


def fsync_ms(folder: Path) -> float:
    """What one fsync costs on the disk the SQLite files live on."""
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        t0 = time.perf_counter()
        for _ in range(200):
            os.write(fd, b"x" * 512)
            os.fsync(fd)
        return (time.perf_counter() - t0) / 200 * 1000
    finally:
        os.close(fd)
        path.unlink()


def profile_w1(targets: list[Target], sizes: dict[str, Any], stamp: str) -> None:
    """Profile perdure's W1: cProfile (top functions by own time, event-loop thread),
    a pyinstrument call tree, and the SQLite thread's time by backend method at the W1
    size and at ten times as many workflows. Files go under results/."""
    import itertools
    import pstats

    runs = itertools.count(1)

    def child(t: Target, params: dict[str, Any], *extra: str) -> dict[str, Any]:
        url = t.prepare(f"profile-{next(runs)}")
        cmd = [
            sys.executable,
            str(BENCH / "perdure_bench.py"),
            "w1",
            "--url",
            url,
            "--params",
            json.dumps(params),
            *extra,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=BENCH)
        t.cleanup(url)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("@@RESULT ")), None)
        if line is None:
            raise RuntimeError(f"profiling run failed: {proc.stderr[-2000:]}")
        return dict(json.loads(line[len("@@RESULT ") :])["figures"])

    for t in targets:
        if t.engine != "perdure":
            continue
        slug = t.name.replace(" ", "-")
        prof = RESULTS / f"{stamp}-w1-{slug}.prof"
        tree = RESULTS / f"{stamp}-w1-{slug}.pyinstrument.txt"
        print(f"\n## {t.name}: W1 {sizes['w1']}")
        figures = child(t, sizes["w1"], "--profile", str(prof))
        print(f"under cProfile: {figures['steps_per_s']:.0f} steps/s -> {prof.relative_to(REPO)}")
        pstats.Stats(str(prof)).sort_stats("tottime").print_stats(25)
        figures = child(t, sizes["w1"], "--profile", str(tree))
        print(
            f"under pyinstrument: {figures['steps_per_s']:.0f} steps/s -> {tree.relative_to(REPO)}"
        )
        for scale in (1, 10):
            params = dict(
                sizes["w1"], workflows=sizes["w1"]["workflows"] * scale, sql_breakdown=True
            )
            figures = child(t, params)
            print(
                f"\nSQLite thread, {params['workflows']} workflows: "
                f"{figures['steps_per_s']:.0f} steps/s, wall {figures['wall_s']:.2f} s"
            )
            for name, row in figures["sqlite_thread"].items():
                print(
                    f"  {name:16s} {row['calls']:7d} calls {row['ms']:9.1f} ms "
                    f"({row['share_of_wall']:.0%} of wall)"
                )


def main() -> None:
    parser = argparse.ArgumentParser(
        description="perdure vs DBOS: W1-W6 on SQLite, PostgreSQL, MySQL/MariaDB and Redis.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="1 repetition, small sizes")
    parser.add_argument("--reps", type=int, help="repetitions (default 3; 1 with --quick)")
    parser.add_argument("--workloads", default="w1,w2,w3,w4,w5,w6", help="e.g. w1,w3")
    parser.add_argument("--targets", help="comma-separated target names (default: all)")
    parser.add_argument(
        "--pg-admin-url",
        default=PG_ADMIN_URL,
        help="PostgreSQL URL used to create and drop one database per run",
    )
    parser.add_argument(
        "--mysql-admin-url",
        default=MYSQL_ADMIN_URL,
        help="MySQL/MariaDB server URL used to create and drop one database per run",
    )
    parser.add_argument(
        "--redis-url", default=REDIS_URL, help="Redis database that gets one key prefix per run"
    )
    parser.add_argument("--no-postgres", action="store_true", help="no PostgreSQL targets")
    parser.add_argument("--no-mysql", action="store_true", help="no MySQL/MariaDB target")
    parser.add_argument("--no-redis", action="store_true", help="no Redis target")
    parser.add_argument(
        "--sqlite-only", action="store_true", help="SQLite targets only (no servers needed)"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile perdure's W1 (cProfile + pyinstrument) instead",
    )
    args = parser.parse_args()

    reps = args.reps or (1 if args.quick else 3)
    sizes = QUICK if args.quick else FULL
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    data = Path(tempfile.mkdtemp(prefix="perdure-bench-"))
    try:
        targets, notes = build_targets(
            data,
            None if args.no_postgres or args.sqlite_only else args.pg_admin_url,
            None if args.no_mysql or args.sqlite_only else args.mysql_admin_url,
            None if args.no_redis or args.sqlite_only else args.redis_url,
        )
        if args.targets:
            wanted = [n.strip() for n in args.targets.split(",")]
            unknown = set(wanted) - {t.name for t in targets}
            if unknown:
                parser.error(f"unknown targets {sorted(unknown)}; have {[t.name for t in targets]}")
            targets = [t for t in targets if t.name in wanted]
        if args.profile:
            profile_w1(targets, sizes, stamp)
            return
        run_all(targets, notes, workloads, sizes, reps, data, stamp, args)
    finally:
        shutil.rmtree(data, ignore_errors=True)


W6_NOTE = (
    "- W6: the worker processes start and warm up (10 1-step workflows each), every run "
    "is created from a client process with no worker (perdure: app.start; DBOS: a "
    "DBOSClient enqueues on queue 'w6'), then all processes are told to go at the same "
    "moment; the time runs from then to the last run's finish time as the database "
    "recorded it. perdure: `App.worker()` in each process (what `perdure worker` runs). "
    "DBOS: each process launches with its own executor id and dequeues from 'w6' "
    "(polled every 0.2 s, as in W5); the queue's worker_concurrency is 0 until the go. "
    "Each process may hold at most its share of the runs, ceil(workflows / processes), "
    "on both engines (perdure concurrency, DBOS worker_concurrency): without a limit "
    "DBOS's first process to poll dequeues the whole queue. Only server targets run W6."
)


def observed(records: list[dict[str, Any]], t: Target) -> str:
    """What the benchmark processes themselves read from the database they used."""
    seen = sorted({r["durability"] for r in records if r["target"] == t.name and "durability" in r})
    return f" [observed: {'; '.join(seen)}]" if seen else ""


def run_all(
    targets: list[Target],
    notes: list[str],
    workloads: list[str],
    sizes: dict[str, dict[str, Any]],
    reps: int,
    data: Path,
    stamp: str,
    args: argparse.Namespace,
) -> None:
    meta = {
        "kind": "meta",
        "started": stamp,
        "machine": machine(),
        "fsync_ms": round(fsync_ms(data), 3),
        "data_dir": str(data),
        "reps": reps,
        "quick": args.quick,
        "sizes": {w: sizes[w] for w in workloads},
        "targets": {t.name: t.durability for t in targets},
        "notes": notes,
    }
    jsonl_path = RESULTS / f"{stamp}.jsonl"
    log_path = RESULTS / f"{stamp}.log"
    print(
        f"bench: {len(targets)} targets x {len(workloads)} workloads x {reps} repetitions; "
        f"results in {jsonl_path.relative_to(REPO)}"
    )
    for note in notes:
        print(f"bench: {note}")
    records: list[dict[str, Any]] = []
    t_start = time.monotonic()
    with jsonl_path.open("w") as jsonl, log_path.open("w") as log:
        jsonl.write(json.dumps(meta) + "\n")
        n = 0
        for rep in range(reps):
            for w in workloads:
                # Rotate the order each repetition so no target always runs first.
                order = targets[rep % len(targets) :] + targets[: rep % len(targets)]
                for t in order:
                    if not runs_workload(t, w):
                        continue
                    n += 1
                    if w == "w6":
                        record = run_w6(t, sizes[w], f"r{n}", data, log, args.timeout, rep)
                    else:
                        record = run_child(t, w, sizes[w], f"r{n}", data, log, args.timeout)
                    record["rep"] = rep + 1
                    records.append(record)
                    jsonl.write(json.dumps(record) + "\n")
                    jsonl.flush()
                    shown = record.get("error") or ", ".join(
                        f"{k}={fmt(v)}"
                        for k, v in record["figures"].items()
                        if isinstance(v, int | float)
                    )
                    print(
                        f"  rep {rep + 1} {w} {t.name:22s} {record['elapsed_s']:6.1f}s  {shown}",
                        flush=True,
                    )
        summary = summarise(records, targets, workloads)
        for row in summary:
            jsonl.write(json.dumps(row) + "\n")
    elapsed = time.monotonic() - t_start
    m = meta["machine"]
    header = [
        f"# perdure vs DBOS, {stamp}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux "
        f"{m['kernel']}; fsync ≈ {meta['fsync_ms']} ms. Python {m['python']}, SQLite "
        f"{m['sqlite']}, perdure {m['perdure']} ({m['perdure_commit']}), DBOS {m['dbos']}.",
        f"{reps} repetition(s){' (--quick sizes)' if args.quick else ''}, min / median / max; "
        "ratios are perdure's median ÷ the DBOS target's median (↑: higher is better, "
        f"↓: lower is better). Total time {elapsed / 60:.1f} min.",
        "",
        "Durability:",
        *[
            f"- {t.name}: {t.durability}{observed(records, t)}"
            for t in targets
            if any(runs_workload(t, w) for w in workloads)
        ],
        *[f"- note: {n}" for n in notes],
        "- W5: perdure workers run with lease_ttl=2 s (a dead worker's runs are taken over "
        "when its leases expire); DBOS workflows are enqueued by a DBOSClient on a queue "
        "polled every 0.2 s and recovered by the new process (same executor id).",
        *([W6_NOTE] if "w6" in workloads else []),
    ]
    text = "\n".join(header) + "\n" + table(summary, targets, workloads, sizes) + "\n"
    (RESULTS / f"{stamp}.md").write_text(text)
    print("\n" + text)
    print(
        f"bench: wrote {jsonl_path.relative_to(REPO)} and "
        f"{(RESULTS / f'{stamp}.md').relative_to(REPO)}"
    )


if __name__ == "__main__":
    ensure_venv()
    main()
