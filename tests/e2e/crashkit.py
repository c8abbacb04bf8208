"""Real worker processes on a real database (a SQLite file unless told otherwise), for
the crash tests.

:class:`Cluster` starts ``perdure worker tests.e2e.crashapp:app`` subprocesses, kills,
stops and resumes them, and reads what they left behind: the side-effect log the
steps write (see ``crashapp``) and the store, through the backend contract, so that
every check means the same on each backend several processes can share.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import crashapp

import perdure
from perdure.records import EntryKind, InboxKind, RunFilter, RunRecord, RunStatus

REPO = Path(__file__).resolve().parents[2]
APP_SPEC = "tests.e2e.crashapp:app"
FAR_OFF = 10 * 365 * 86400.0  # seconds: beyond any timer these tests set


def perdure_command() -> list[str]:
    """The installed ``perdure`` script next to this interpreter, as a user runs it."""
    script = Path(sys.executable).parent / "perdure"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "perdure.cli"]


def child_env(directory: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["CRASHAPP_DIR"] = str(directory)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.pop("PERDURE_DATABASE_URL", None)
    return env


@dataclass(frozen=True)
class Line:
    """One line of the side-effect log: a step body began (``start``) or returned."""

    event: str
    run_id: str
    pos: int
    attempt: int
    pid: int
    at: float
    step: str


def read_log(directory: Path) -> list[Line]:
    path = directory / crashapp.LOG_NAME
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text().splitlines():
        parts = raw.split()
        if len(parts) < 7:  # a write torn by a kill is not an execution we can use
            continue
        event, run_id, pos, attempt, pid, at, step = parts[:7]
        lines.append(Line(event, run_id, int(pos), int(attempt), int(pid), float(at), step))
    return lines


def starts(lines: list[Line]) -> list[Line]:
    return [line for line in lines if line.event == "start"]


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    output: Path
    killed_at: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS for worker {self.pid}")


@dataclass
class Cluster:
    """Worker subprocesses on one database, plus a client App with no worker."""

    directory: Path
    url: str = ""  # default: a SQLite file in ``directory``
    db_path: Path = field(init=False)
    app: perdure.App = field(init=False)
    workers: list[Worker] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.db_path = self.directory / "perdure.db"
        self.url = self.url or f"sqlite:///{self.db_path}"
        self.app = crashapp.build(self.url)

    # -- processes ------------------------------------------------------------------------

    def spawn(self, *options: str, env: dict[str, str] | None = None) -> Worker:
        n = len(self.workers)
        output = self.directory / f"worker-{n}.out"
        with output.open("wb") as out:
            proc = subprocess.Popen(
                [
                    *perdure_command(),
                    "worker",
                    APP_SPEC,
                    "--database",
                    self.url,
                    "--lease-ttl",
                    "1",
                    "--poll-interval",
                    "0.05",
                    *options,
                ],
                cwd=REPO,
                env={**child_env(self.directory), **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        worker = Worker(proc, output)
        self.workers.append(worker)
        return worker

    def kill(self, worker: Worker) -> None:
        """SIGKILL: no cleanup, no last checkpoint, leases left to expire."""
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(timeout=10)
        worker.killed_at = time.time()

    def terminate(self, worker: Worker, timeout: float = 30) -> int:
        worker.proc.send_signal(signal.SIGTERM)
        return worker.proc.wait(timeout=timeout)

    def killed_pids(self) -> set[int]:
        return {w.pid for w in self.workers if w.killed_at is not None}

    def output_of(self, worker: Worker) -> str:
        return worker.output.read_text(errors="replace")

    async def close(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGCONT)
                worker.proc.send_signal(signal.SIGKILL)
                worker.proc.wait(timeout=10)
        await self.app.close()

    def assert_alive(self, worker: Worker) -> None:
        code = worker.proc.poll()
        assert code is None, f"worker {worker.pid} exited ({code}):\n{self.output_of(worker)}"

    # -- what they left behind ------------------------------------------------------------

    def log(self) -> list[Line]:
        return read_log(self.directory)

    async def runs(self, workflow: str | None = None) -> list[RunRecord]:
        """Every run (of ``workflow``) as the store holds it, lease owner and wake time
        included, which the public ``RunInfo`` leaves out."""
        await self.app.open()
        found: list[RunRecord] = []
        cursor: str | None = None
        while True:
            page = await self.app.backend.list_runs(RunFilter(workflow=workflow), 1000, cursor)
            found.extend(page.runs)
            if page.cursor is None:
                return found
            cursor = page.cursor

    async def record(self, run_id: str) -> RunRecord:
        """One run as the store holds it."""
        await self.app.open()
        record = await self.app.backend.get_run(run_id)
        assert record is not None, f"no run {run_id!r}"
        return record

    async def owned(self) -> int:
        """How many runs a worker holds a lease on (live or expired)."""
        return sum(record.owner is not None for record in await self.runs())

    async def asleep(self, workflow: str | None = None) -> int:
        """Runs parked on a durable timer with no worker holding them: running, no
        owner, and due at a time still to come (these workflows wait for no other
        time; a run handed back with work to do is due at once)."""
        now = time.time()
        return sum(
            record.status is RunStatus.RUNNING
            and record.owner is None
            and record.wake_at is not None
            and record.wake_at > now
            for record in await self.runs(workflow)
        )

    async def timers(self, run_id: str) -> list[float]:
        """The deadlines of the run's durable timers that have not fired (been consumed)
        yet, however far off."""
        await self.app.open()
        inbox = await self.app.backend.read_inbox(run_id, time.time() + FAR_OFF)
        return [item.visible_at for item in inbox if item.kind is InboxKind.TIMER]

    def gate(self, name: str) -> None:
        (self.directory / name).touch()

    async def step_positions(self, run_id: str) -> list[int]:
        """Positions of the run's recorded step results, one entry per STEP record."""
        journal = await self.app.backend.read_journal(run_id)
        return [e.pos for e in journal if e.kind is EntryKind.STEP]


async def eventually(
    check: Callable[[], Awaitable[bool] | bool],
    timeout: float = 30.0,
    what: str = "condition",
    interval: float = 0.02,
) -> None:
    """Poll ``check`` until it holds; fail after a generous ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)
