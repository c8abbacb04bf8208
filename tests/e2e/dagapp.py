"""A DAG that the DAG crash test runs in ``perdure worker`` subprocesses, and plain
functions that the loading tests name by import path.

A worker loads ``tests.e2e.dagapp:app`` (with ``--database``); the test process builds
its own App on the same database with :func:`build`. Each task of the ``orders`` DAG
appends ``<task> <pid>`` to ``$DAGAPP_DIR/tasks.log`` (fsynced, so a kill right after
leaves it), and ``charge`` waits until the file ``$DAGAPP_DIR/charge-gate`` exists.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import perdure

LOG_NAME = "tasks.log"
GATE = "charge-gate"


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


def build(url: str) -> perdure.App:
    app = perdure.App(url, lease_ttl=1.0, poll_interval=0.05)
    orders = app.dag("orders")
    orders.task()(validate)
    orders.task(after="validate")(reserve)
    orders.task(after="validate")(charge)
    orders.task(after=["reserve", "charge"])(ship)
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
