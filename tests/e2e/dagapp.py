"""A DAG and a state machine that the crash tests run in ``perdure worker``
subprocesses, and plain functions that the DAG loading tests name by import path.

A worker loads ``tests.e2e.dagapp:app`` (with ``--database``); the test process builds
its own App on the same database with :func:`build`. Each task of the ``orders`` DAG
appends ``<task> <pid>`` to ``$DAGAPP_DIR/tasks.log`` (fsynced, so a kill right after
leaves it), and ``charge`` waits until the file ``$DAGAPP_DIR/charge-gate`` exists.
The ``signup`` machine's steps log the same way; ``activate`` waits for
``$DAGAPP_DIR/activate-gate``.
"""

from __future__ import annotations

import asyncio
import enum
import os
import subprocess
from pathlib import Path

import perdure

LOG_NAME = "tasks.log"
GATE = "charge-gate"
ACTIVATE_GATE = "activate-gate"


def _dir() -> Path:
    return Path(os.environ["DAGAPP_DIR"])


def record(task: str) -> None:
    fd = os.open(_dir() / LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{task} {os.getpid()}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def ran(directory: Path) -> list[tuple[str, int]]:
    """(task, pid) for every task execution that began, in order."""
    path = directory / LOG_NAME
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines()]
    return [(parts[0], int(parts[1])) for parts in lines if len(parts) == 2]


# -- the orders DAG, run by worker processes -----------------------------------------------


async def validate(order: dict[str, int]) -> int:
    record("validate")
    return order["amount"]


async def reserve(validate: int) -> str:
    record("reserve")
    return f"reserved {validate}"


async def charge(validate: int) -> str:
    record("charge")
    while not (_dir() / GATE).exists():
        await asyncio.sleep(0.02)
    return f"charged {validate}"


async def ship(reserve: str, charge: str) -> str:
    record("ship")
    return f"{reserve}, {charge}, shipped"


# -- the signup state machine, run by worker processes --------------------------------------


class Stage(enum.IntEnum):
    NEW = 1
    VERIFIED = 2
    ACTIVE = 3


async def verify(r: perdure.Record[dict[str, str]]) -> Stage:
    record("verify")
    r.data["verified"] = "yes"
    return Stage.VERIFIED


async def activate(r: perdure.Record[dict[str, str]]) -> Stage:
    record("activate")
    while not (_dir() / ACTIVATE_GATE).exists():
        await asyncio.sleep(0.02)
    r.data["active"] = "yes"
    return Stage.ACTIVE


def spawn_worker(url: str, directory: Path) -> subprocess.Popen[bytes]:
    """Start ``perdure worker tests.e2e.dagapp:app`` on ``url`` (from a test process)."""
    from crashkit import REPO, perdure_command  # the tests' kit, not the worker's

    env = dict(os.environ, DAGAPP_DIR=str(directory))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.pop("PERDURE_DATABASE_URL", None)
    command = [*perdure_command(), "worker", "tests.e2e.dagapp:app", "--database", url]
    options = ["--lease-ttl", "1", "--poll-interval", "0.05"]
    out = (directory / "worker.out").open("ab")
    return subprocess.Popen([*command, *options], cwd=REPO, env=env, stdout=out, stderr=out)


def build(url: str) -> perdure.App:
    app = perdure.App(url, lease_ttl=1.0, poll_interval=0.05)
    orders = app.dag("orders")
    orders.task()(validate)
    orders.task(after="validate")(reserve)
    orders.task(after="validate")(charge)
    orders.task(after=["reserve", "charge"])(ship)
    signup = app.state_machine("signup", Stage, record=dict)
    signup.step(Stage.NEW, to=[Stage.VERIFIED])(verify)
    signup.step(Stage.VERIFIED, to=[Stage.ACTIVE])(activate)
    return app


app = build("memory://")


# -- plain functions for definitions loaded from data ---------------------------------------


def parse(text: str) -> int:
    return int(text)


async def square(parse: int) -> int:
    return parse * parse


async def negate(parse: int) -> int:
    return -parse


def total(square: int, negate: int) -> int:
    return square + negate
