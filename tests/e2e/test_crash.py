"""The headline crash test: SIGKILL a worker process over and over while many runs are
in flight, and check that every run still completes with the right result, each step
recorded exactly once, and no step body rerun unless a kill interrupted it."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from crashkit import Cluster, Line, starts

RUNS = 30
KILLS = 20
HELD = 4  # --concurrency: runs one worker holds at once
WIDEST_GATHER = 3  # crash_flow never has more than three steps in flight
STEPS_PER_RUN = 8


def expected(seed: int) -> int:
    a = seed + 1
    b, c = a * 2, a * 3
    d = b + c
    return d * 5 + (d + 7) + d * 11


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    procs = Cluster(tmp_path)
    yield procs
    await procs.close()


def unfinished(cluster: Cluster) -> int:
    rows = cluster.query(
        "SELECT COUNT(*) FROM perdure_runs WHERE status NOT IN ('completed', 'failed')"
    )
    return int(rows[0][0])


@pytest.mark.slow
async def test_repeated_sigkill_loses_nothing_and_reruns_only_interrupted_steps(
    cluster: Cluster,
) -> None:
    rng = random.Random(20260101)
    app = cluster.app
    # Runs come due over ~12 s so that every kill below finds work in progress.
    handles = [
        await app.start("crash_flow", seed, id=f"crash-{seed}", delay=seed * 0.4)
        for seed in range(RUNS)
    ]

    interrupted = 0  # kills that found unfinished runs
    for _ in range(KILLS):
        worker = cluster.spawn("--concurrency", str(HELD))
        await asyncio.sleep(rng.uniform(0.3, 1.3))
        cluster.assert_alive(worker)
        cluster.kill(worker)
        interrupted += unfinished(cluster) > 0
    final = cluster.spawn("--concurrency", str(HELD))

    for seed, handle in enumerate(handles):
        assert await handle.result(timeout=60) == expected(seed), f"run crash-{seed}"
    cluster.assert_alive(final)
    assert interrupted == KILLS  # the test did what it claims: every kill hit live work

    # The journal: exactly one recorded result per step position, the same positions
    # in every run.
    recorded: dict[str, list[int]] = {}
    for seed in range(RUNS):
        positions = await cluster.step_positions(f"crash-{seed}")
        assert len(positions) == len(set(positions)) == STEPS_PER_RUN, (seed, positions)
        recorded[f"crash-{seed}"] = sorted(positions)
    assert len({tuple(p) for p in recorded.values()}) == 1

    # The side effects: every recorded step ran, and nothing else did.
    runs: dict[tuple[str, int], list[Line]] = defaultdict(list)
    for line in starts(cluster.log()):
        runs[(line.run_id, line.pos)].append(line)
    assert set(runs) == {(run, pos) for run, ps in recorded.items() for pos in ps}

    # A body ran again only because a kill interrupted it: every execution but the
    # last was by a worker that was then killed, a worker never ran one twice, and
    # each kill cost at most the steps one worker can have in flight.
    killed = cluster.killed_pids()
    superseded: Counter[int] = Counter()
    for key, executions in runs.items():
        pids = [line.pid for line in executions]
        assert len(pids) == len(set(pids)), (key, pids)
        assert all(pid in killed for pid in pids[:-1]), (key, pids, killed)
        superseded.update(pids[:-1])
    assert all(n <= HELD * WIDEST_GATHER for n in superseded.values()), superseded
    assert sum(superseded.values()) <= KILLS * HELD * WIDEST_GATHER
