"""Queue limits across real worker processes (scenarios C1, C6 and C8's "queue limits
hold during recovery"), on every backend several processes can share."""

from __future__ import annotations

import pytest
from crashkit import Cluster, Line, eventually, starts

from stores import SHARED

pytestmark = pytest.mark.parametrize("backend_name", SHARED)


def spans(lines: list[Line], step: str, cut_at: dict[int, float]) -> list[tuple[str, float, float]]:
    """(run id, began, ended) of each execution of ``step``; one a kill cut short ends
    at the kill."""
    ends = {(x.run_id, x.pos, x.attempt, x.pid): x.at for x in lines if x.event == "end"}
    out = []
    for line in starts(lines):
        if line.step != step:
            continue
        end = ends.get((line.run_id, line.pos, line.attempt, line.pid), cut_at.get(line.pid))
        assert end is not None, f"{line} never ended and its worker was not killed"
        out.append((line.run_id, line.at, end))
    return out


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


async def test_c1_concurrency_one_holds_across_two_worker_processes(cluster: Cluster) -> None:
    handles = [await cluster.app.start("one_at_a_time", 0.05) for _ in range(8)]
    workers = [cluster.spawn() for _ in range(2)]
    pids = {await h.result(timeout=60) for h in handles}
    assert pids <= {w.pid for w in workers}
    executed = spans(cluster.log(), "hold", {})
    assert len(executed) == 8
    assert most_at_once([(a, b) for _, a, b in executed]) == 1


async def test_c6_a_routed_step_runs_only_on_the_worker_serving_its_queue(
    cluster: Cluster,
) -> None:
    plain = cluster.spawn("--queues", "default")
    gpu = cluster.spawn("--queues", "gpu")
    handles = [await cluster.app.start("film", f"scene{i}") for i in range(4)]
    for i, handle in enumerate(handles):
        assert await handle.result(timeout=60) == f"scene{i}@{gpu.pid}/{plain.pid}"
    for worker in (plain, gpu):
        cluster.assert_alive(worker)


async def test_c8_queue_limits_hold_while_a_killed_workers_runs_are_taken_over(
    cluster: Cluster,
) -> None:
    # concurrency 3 and one run per key at a time, 4 keys, 3 runs per key.
    handles = [
        await cluster.app.start("keyed", 0.15, id=f"k{key}-{i}", key=f"k{key}")
        for key in range(4)
        for i in range(3)
    ]
    workers = [cluster.spawn("--concurrency", "10") for _ in range(3)]

    def busy() -> bool:
        return len(starts(cluster.log())) >= 4

    await eventually(busy, timeout=60, what="runs going")
    victim = next((w for w in workers if any(x.pid == w.pid for x in cluster.log())), workers[0])
    cluster.kill(victim)
    assert victim.killed_at is not None
    for handle in handles:
        await handle.result(timeout=120)
    executed = spans(cluster.log(), "hold", {victim.pid: victim.killed_at})
    assert most_at_once([(a, b) for _, a, b in executed]) <= 3
    for key in range(4):
        mine = [(a, b) for run_id, a, b in executed if run_id.startswith(f"k{key}-")]
        assert most_at_once(mine) == 1, key
