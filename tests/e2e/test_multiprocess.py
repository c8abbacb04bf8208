"""Real worker processes on one store: kills, restarts, pauses, two workers; on every
backend several processes can share.

Workers are ``perdure worker`` subprocesses (see ``crashkit``); the test process only
starts runs and reads results, runs as the store holds them, journals, inboxes and the
steps' side-effect log.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections import Counter, defaultdict

import pytest
from crashkit import REPO, Cluster, Line, child_env, eventually, starts

import perdure
from perdure.records import EntryKind
from stores import SHARED

pytestmark = pytest.mark.parametrize("backend_name", SHARED)


async def test_killed_after_b_is_recorded_resumes_at_c(cluster: Cluster) -> None:
    """A1: A and B are recorded before the kill, so only C runs after the restart."""
    handle = await cluster.app.start("abc", 4, "gate-c", id="abc")
    first = cluster.spawn()
    await eventually(
        lambda: any(line.step == "step_c" for line in starts(cluster.log())),
        what="step C to start",
    )
    assert sorted(await cluster.step_positions("abc")) == [0, 1]  # A and B recorded
    cluster.kill(first)

    second = cluster.spawn()
    cluster.gate("gate-c")
    assert await handle.result(timeout=30) == (4 + 1) * 10 + 5

    ran = starts(cluster.log())
    assert Counter(line.step for line in ran) == {"step_a": 1, "step_b": 1, "step_c": 2}
    # C's first execution was cut short by the kill; the second is the one recorded.
    assert [line.pid for line in ran if line.step == "step_c"] == [first.pid, second.pid]
    assert sorted(await cluster.step_positions("abc")) == [0, 1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("workflow", ["sleeper", "waiter"])
async def test_a_wait_keeps_its_original_deadline_across_a_kill(
    cluster: Cluster, workflow: str
) -> None:
    """A6 (sleep) and A10 (receive with a timeout): the restarted worker wakes the run
    at the deadline set before the kill; the deadline is not recomputed on replay."""
    handle = await cluster.app.start(workflow, 2.0, id="wait")
    first = cluster.spawn()

    async def timer_set() -> bool:
        return len(await cluster.timers("wait")) == 1

    await eventually(timer_set, what="the timer")
    [deadline] = await cluster.timers("wait")
    await asyncio.sleep(0.5)
    assert await handle.status() is perdure.RunStatus.RUNNING
    cluster.kill(first)

    cluster.spawn()
    result = await handle.result(timeout=30)
    # Neither moved nor duplicated: the one timer that fired is the one set before the
    # kill (the workflow's clock moves to the deadline of the timer it takes), and no
    # other is left waiting.
    fired = [entry for entry in await handle.journal() if entry.kind is EntryKind.TIMER]
    assert [entry.at for entry in fired] == [pytest.approx(deadline, abs=1e-6)]
    assert await cluster.timers("wait") == []
    assert result["woke"] >= deadline
    # perdure.now() is a datetime: microsecond resolution.
    assert result["after"] >= deadline - 1e-6
    # Replay returns the recorded time, so the start of the wait is where it was.
    assert result["before"] + 2.0 == pytest.approx(deadline, abs=2e-6)
    if workflow == "waiter":
        assert result["message"] is None
    assert Counter(line.step for line in starts(cluster.log())) == {"wall_clock": 1}


@pytest.mark.slow
async def test_killed_midway_through_a_gather_of_100_reruns_no_recorded_step(
    cluster: Cluster,
) -> None:
    """A19: the steps recorded before the kill are not run again; the sum is right."""
    handle = await cluster.app.start("fan_out", 100, id="fan")
    first = cluster.spawn()

    async def some_recorded() -> bool:
        return len(await cluster.step_positions("fan")) >= 30

    await eventually(some_recorded, what="30 recorded steps")
    cluster.kill(first)
    before = set(await cluster.step_positions("fan"))
    assert 30 <= len(before) < 100

    second = cluster.spawn()
    assert await handle.result(timeout=30) == sum(i * i for i in range(100))
    positions = await cluster.step_positions("fan")
    assert sorted(positions) == list(range(100))
    rerun = {line.pos for line in starts(cluster.log()) if line.pid == second.pid}
    assert rerun == set(range(100)) - before


def chain_result(x: int, n: int) -> int:
    for i in range(n):
        x = x * 3 + i
    return x


def in_flight(lines: list[Line], pid: int) -> set[tuple[str, int]]:
    begun = {(line.run_id, line.pos) for line in lines if line.pid == pid and line.event == "start"}
    ended = {(line.run_id, line.pos) for line in lines if line.pid == pid and line.event == "end"}
    return begun - ended


@pytest.mark.slow
async def test_two_workers_never_run_one_run_at_once_and_take_over_after_a_kill(
    cluster: Cluster,
) -> None:
    """A24: two worker processes on one store. A run's steps never execute on
    both at the same time; when one is killed, the other finishes its runs once their
    leases expire."""
    runs, length = 30, 9
    handles = [await cluster.app.start("chain", i, length, id=f"chain-{i}") for i in range(runs)]
    # Each worker holds at most 8 runs, so neither can take all 30 at the first poll.
    victim = cluster.spawn("--concurrency", "8")
    survivor = cluster.spawn("--concurrency", "8")

    def ready() -> bool:
        lines = cluster.log()
        return (
            len(starts(lines)) >= 60
            and {victim.pid, survivor.pid} <= {line.pid for line in lines}
            and bool(in_flight(lines, victim.pid))
        )

    await eventually(ready, what="both workers busy, the victim mid-step")
    cluster.kill(victim)
    cut_short = {run for run, _ in in_flight(cluster.log(), victim.pid)}
    assert cut_short

    for i, handle in enumerate(handles):
        assert await handle.result(timeout=60) == chain_result(i, length)
        positions = await cluster.step_positions(f"chain-{i}")
        assert len(positions) == len(set(positions)) == length
    cluster.assert_alive(survivor)

    lines = cluster.log()
    # Each execution as an interval; a killed worker's open ones end at the kill.
    spans: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    begun: dict[tuple[str, int, int], float] = {}
    for line in lines:
        key = (line.run_id, line.pos, line.pid)
        if line.event == "start":
            begun[key] = line.at
        else:
            spans[line.run_id].append((begun.pop(key), line.at, line.pid))
    assert victim.killed_at is not None
    for (run_id, _, pid), at in begun.items():
        assert pid == victim.pid, f"{run_id}: a step on the survivor never finished"
        spans[run_id].append((at, victim.killed_at, pid))
    for run_id, intervals in spans.items():
        for a_start, a_end, a_pid in intervals:
            for b_start, b_end, b_pid in intervals:
                overlap = a_start < b_end and b_start < a_end
                assert a_pid == b_pid or not overlap, f"{run_id} ran on two workers at once"

    # The runs the victim held were taken over by the survivor (their recovery count
    # went back to 0 as they made progress there).
    for run_id in cut_short:
        assert (await cluster.app.handle(run_id).info()).recoveries == 0
        assert any(
            line.pid == survivor.pid and line.at > victim.killed_at
            for line in starts(lines)
            if line.run_id == run_id
        )
    # Only the kill made anything run twice: a step runs again only if the victim ran
    # it last before the kill (mid-step, or finished but its checkpoint not yet
    # committed) and the survivor ran it after the kill; never twice on one worker.
    executions: dict[tuple[str, int], list[Line]] = defaultdict(list)
    for line in starts(lines):
        executions[(line.run_id, line.pos)].append(line)
    for key, runs_of_step in executions.items():
        if len(runs_of_step) > 1:
            assert len(runs_of_step) == 2, (key, runs_of_step)
            first, again = sorted(runs_of_step, key=lambda line: line.at)
            assert first.pid == victim.pid and first.at < victim.killed_at, key
            assert again.pid == survivor.pid and again.at > victim.killed_at, key


@pytest.mark.slow
async def test_runs_that_sleep_often_all_complete_and_none_is_cancelled(cluster: Cluster) -> None:
    """Hundreds of runs that each take many short durable naps on one worker: every
    release and re-claim of a run must leave it intact. Nobody cancels these runs, so
    none may end cancelled."""
    handles = [await cluster.app.start("napper", 100, id=f"nap-{i}") for i in range(200)]
    worker = cluster.spawn()
    outcomes: Counter[str] = Counter()
    for handle in handles:
        try:
            outcomes[str(await handle.result(timeout=120))] += 1
        except perdure.RunCancelled as exc:
            outcomes[f"cancelled: {exc.error.message}"] += 1
    assert outcomes == {"100": 200}
    cluster.assert_alive(worker)


@pytest.mark.slow
async def test_a_paused_worker_cannot_write_after_another_took_its_run_over(
    cluster: Cluster,
) -> None:
    """A25: a worker frozen (SIGSTOP) mid-step past its lease; another takes the run over
    and reruns the step; the frozen one resumes (SIGCONT) while the other still holds
    the run. Its late result is rejected: each step is recorded once, the recorded
    values are the new owner's, and the old owner does not carry on with the run."""
    handle = await cluster.app.start("paused", 1.5, id="paused")
    frozen = cluster.spawn()

    def started(pid: int) -> bool:
        return any(line.pid == pid and line.step == "slow_pid" for line in starts(cluster.log()))

    await eventually(lambda: started(frozen.pid), what="the first worker's step")
    frozen.proc.send_signal(signal.SIGSTOP)
    taker = cluster.spawn()
    await eventually(lambda: started(taker.pid), what="the takeover")
    frozen.proc.send_signal(signal.SIGCONT)  # its step's sleep is over: it returns now

    assert await handle.result(timeout=30) == [taker.pid, taker.pid, taker.pid]
    journal = await handle.journal()
    steps = [entry.pos for entry in journal if entry.kind is EntryKind.STEP]
    assert sorted(steps) == [0, 1, 2]
    # The resumed worker finished its stale step but went no further with the run.
    await eventually(
        lambda: any(line.pid == frozen.pid and line.event == "end" for line in cluster.log()),
        what="the resumed worker to finish its stale step",
    )
    assert [(line.pos, line.pid) for line in starts(cluster.log())] == [
        (0, frozen.pid),
        (0, taker.pid),
        (1, taker.pid),
        (2, taker.pid),
    ]

    # It is healthy afterwards: with the other worker gone it runs new work.
    assert cluster.terminate(taker) == 0
    after = await cluster.app.start("single", 21, id="after")
    assert await after.result(timeout=30) == 42
    assert [line.pid for line in starts(cluster.log()) if line.run_id == "after"] == [frozen.pid]
    assert await handle.result(timeout=1) == [taker.pid, taker.pid, taker.pid]


STARTER = """
import asyncio, json, sys
from pathlib import Path
from tests.e2e import crashapp

async def main():
    app = crashapp.build(sys.argv[1])
    go = Path(sys.argv[2])
    while not go.exists():
        await asyncio.sleep(0.002)
    handles = await asyncio.gather(
        *(app.start("single", i, id=f"same-{i}") for i in range(int(sys.argv[3])))
    )
    print(json.dumps([await h.result(timeout=60) for h in handles]))
    await app.close()

asyncio.run(main())
"""


@pytest.mark.slow
async def test_two_processes_starting_the_same_ids_get_one_run_each(cluster: Cluster) -> None:
    """A4 across processes: both starters race on the same ids; each id is one run whose
    body runs once, and every handle, and a later start, sees the same result."""
    ids = 25
    go = cluster.directory / "go"
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, cluster.url, str(go), str(ids)],
            cwd=REPO,
            env=child_env(cluster.directory),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    cluster.spawn()
    try:
        await asyncio.sleep(0.5)  # both starters are waiting at the line
        go.touch()
        outputs = [await asyncio.to_thread(p.communicate, timeout=60) for p in starters]
    finally:
        for p in starters:
            if p.poll() is None:
                p.kill()
                p.wait()
    expected = [i * 2 for i in range(ids)]
    for (out, err), p in zip(outputs, starters, strict=True):
        assert p.returncode == 0, err.decode()
        assert json.loads(out) == expected

    ran = Counter(line.run_id for line in starts(cluster.log()))
    assert ran == {f"same-{i}": 1 for i in range(ids)}
    runs = [info async for info in cluster.app.list_runs(workflow="single")]
    assert len(runs) == ids
    again = await cluster.app.start("single", 3, id="same-3")
    assert await again.result(timeout=10) == 6
    assert Counter(line.run_id for line in starts(cluster.log()))["same-3"] == 1


async def all_asleep(cluster: Cluster, runs: int) -> bool:
    return await cluster.asleep() == runs


@pytest.mark.slow
async def test_ten_thousand_sleeping_runs_are_not_held_in_memory(cluster: Cluster) -> None:
    """A26: a worker's memory does not grow with the number of runs asleep on durable
    timers; SIGTERM then stops it cleanly, leaving every run unowned and asleep."""

    async def start(first: int, last: int) -> None:
        for lo in range(first, last, 500):
            await asyncio.gather(
                *(
                    cluster.app.start("hour_sleeper", id=f"sleeper-{i}")
                    for i in range(lo, min(lo + 500, last))
                )
            )

    await start(0, 1_000)
    worker = cluster.spawn()
    await eventually(lambda: all_asleep(cluster, 1_000), timeout=120, interval=0.2)
    rss_1k = worker.rss_kib()
    await start(1_000, 10_000)
    await eventually(lambda: all_asleep(cluster, 10_000), timeout=300, interval=0.2)
    rss_10k = worker.rss_kib()
    assert rss_10k < rss_1k + 60 * 1024, (rss_1k, rss_10k)

    assert cluster.terminate(worker) == 0
    runs = await cluster.runs()
    assert [run.owner for run in runs if run.owner is not None] == []
    assert Counter(run.status for run in runs) == {perdure.RunStatus.RUNNING: 10_000}
    assert await cluster.asleep() == 10_000


@pytest.mark.slow
async def test_sigterm_lets_the_step_in_flight_finish_and_hands_the_run_back(
    cluster: Cluster,
) -> None:
    """`perdure worker` on SIGTERM: the step in flight finishes and is recorded, no new
    step starts, the lease is handed back (no owner), the exit code is 0; the next
    worker carries on without running the recorded step again."""
    handle = await cluster.app.start("two_gated", "gate", id="graceful")
    worker = cluster.spawn()
    await eventually(lambda: len(starts(cluster.log())) == 1, what="the first step")
    worker.proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)  # let the worker act on the signal before the step returns
    assert worker.proc.poll() is None  # still waiting for its step
    cluster.gate("gate")
    assert await asyncio.to_thread(worker.proc.wait, 30) == 0, cluster.output_of(worker)

    run = await cluster.record("graceful")
    assert (run.owner, run.status) == (None, perdure.RunStatus.RUNNING)
    assert await cluster.step_positions("graceful") == [0]
    assert [line.pos for line in starts(cluster.log())] == [0]

    successor = cluster.spawn()
    assert await handle.result(timeout=20) == ["done", "done"]
    assert [(line.pos, line.pid) for line in starts(cluster.log())] == [
        (0, worker.pid),
        (1, successor.pid),
    ]


@pytest.mark.slow
async def test_a_worker_holds_no_more_runs_than_its_concurrency_when_resuming(
    cluster: Cluster,
) -> None:
    """`--concurrency 2` bounds the runs a worker holds, also when the runs it claims
    must first be replayed from their journals (as after any restart)."""
    runs = 10
    handles = [
        await cluster.app.start("nap_then_gate", "gate", id=f"held-{i}") for i in range(runs)
    ]
    first = cluster.spawn()
    # Every run records its first step and goes to sleep; then the worker is gone.
    await eventually(lambda: all_asleep(cluster, runs), what="all runs asleep")
    cluster.kill(first)

    second = cluster.spawn("--concurrency", "2")

    def gated_on_second() -> set[str]:
        return {
            line.run_id
            for line in starts(cluster.log())
            if line.step == "gated" and line.pid == second.pid
        }

    await eventually(lambda: len(gated_on_second()) >= 2, what="two runs at the gate")
    await asyncio.sleep(0.5)  # room for a third run to be (wrongly) taken
    assert await cluster.owned() == 2
    assert len(gated_on_second()) == 2

    cluster.gate("gate")
    for handle in handles:
        assert await handle.result(timeout=60) == "done"


async def test_b5_a_run_that_kills_its_worker_every_time_is_dead_lettered(
    cluster: Cluster,
) -> None:
    """After max_recoveries takeovers without progress the run is not dispatched again;
    once the cause is fixed, an operator's retry completes it."""
    handle = await cluster.app.start("poison", 1, id="poison")
    env = {"CRASHAPP_MAX_RECOVERIES": "2"}
    for _ in range(3):  # the first claim and two recoveries each die in the step
        worker = cluster.spawn(env=env)
        assert worker.proc.wait(timeout=60) == -signal.SIGKILL
    survivor = cluster.spawn(env=env)

    async def dead() -> bool:
        return await handle.status() is perdure.RunStatus.DEAD_LETTER

    await eventually(dead, what="the run to be dead-lettered")
    info = await handle.info()
    assert info.error is not None and info.error.type == "DeadLetter"
    assert len(starts(cluster.log())) == 3
    await asyncio.sleep(1.5)  # a lease's length: nobody picks it up again
    cluster.assert_alive(survivor)
    assert len(starts(cluster.log())) == 3

    cluster.gate("cured")
    await cluster.app.retry("poison", "fixed the crash", by="oncall")
    assert await handle.result(timeout=30) == 2
    assert len(starts(cluster.log())) == 4
