"""What an app can run, as data: ``app.definitions()`` and ``perdure definitions``."""

from __future__ import annotations

import enum
import json
import textwrap
from pathlib import Path

from test_replayer import cli

import perdure

MODULE = """
    import enum
    import perdure

    app = perdure.App()

    @app.workflow()
    async def greet(name: str, times: int = 1) -> str:
        return name * times

    orders = app.dag("orders")

    @orders.task()
    async def validate(order: dict) -> dict:
        return order

    @orders.task(after=[validate])
    async def ship(validate: dict) -> str:
        return "shipped"

    class Status(enum.IntEnum):
        NEW = 1
        DONE = 2

    machine = app.state_machine("signup", Status, record=dict)

    @machine.step(Status.NEW, to=[Status.DONE])
    async def finish(r: perdure.Record[dict]) -> Status:
        return Status.DONE
"""


def test_definitions_list_workflows_dags_and_state_machines() -> None:
    app = perdure.App("memory://")

    @app.workflow()
    async def greet(name: str) -> str:
        return name

    @app.step(queue="gpu")  # routed: its runner workflow is not a definition of the user's
    async def render(x: int) -> int:
        return x

    dag = app.dag("orders")

    @dag.task()
    async def validate(order: dict) -> dict:
        return order

    class Status(enum.IntEnum):
        NEW = 1
        DONE = 2

    machine = app.state_machine("signup", Status, record=dict, resume_after=60)

    @machine.step(Status.NEW, to=[Status.DONE], on_failure="pause")
    async def finish(r: perdure.Record[dict]) -> Status:
        return Status.DONE

    found = {d["name"]: d for d in app.definitions()}
    assert sorted(found) == ["greet", "orders", "signup"]  # one entry per definition
    assert found["greet"] == {
        "kind": "workflow",
        "name": "greet",
        "queue": None,
        "timeout": None,
        "parameters": ["name"],
    }
    assert found["orders"] == {"kind": "dag", **dag.describe()}
    assert found["signup"] == {"kind": "state_machine", **machine.describe()}
    json.dumps(app.definitions())  # JSON-ready


def test_the_cli_lists_and_draws_definitions(tmp_path: Path) -> None:
    (tmp_path / "defs_app.py").write_text(textwrap.dedent(MODULE))
    listed = cli(tmp_path, "definitions", "defs_app:app")
    assert listed.returncode == 0, listed.stderr
    assert [line.split() for line in listed.stdout.splitlines()] == [
        ["NAME", "KIND", "QUEUE", "SHAPE"],
        ["greet", "workflow", "-", "(name,", "times)"],
        ["orders", "dag", "-", "2", "tasks"],
        ["signup", "state_machine", "-", "2", "statuses"],
    ]
    as_json = cli(tmp_path, "definitions", "defs_app:app", "--json")
    kinds = [d["kind"] for d in json.loads(as_json.stdout)["definitions"]]
    assert kinds == ["workflow", "dag", "state_machine"]
    drawn = cli(tmp_path, "graph", "defs_app:app", "orders")
    assert drawn.returncode == 0 and drawn.stdout.startswith("flowchart TD")
    assert "validate --> ship" in drawn.stdout
    code_first = cli(tmp_path, "graph", "defs_app:app", "greet")
    assert code_first.returncode == 2
    assert "'greet' is a code-first workflow, not a DAG or a state machine" in code_first.stderr
    assert "those are: orders, signup" in code_first.stderr
