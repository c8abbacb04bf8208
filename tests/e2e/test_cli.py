"""The ``perdure`` command as operators use it: a real subprocess against a real database
(a SQLite file, and PostgreSQL where the suite has it), directly and through a real
``perdure serve`` server, with the same output either way (scenario F5)."""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import perdure

MODULE = """
    import enum
    import os

    import perdure

    app = perdure.App()  # $PERDURE_DATABASE_URL

    @app.step(retry=perdure.Retry(max_attempts=2, initial_interval=0.01))
    async def charge(n: int) -> int:
        perdure.logger.info("charging %s", n)
        if not os.path.exists("fixed"):
            raise RuntimeError("card service down")
        return n * 100

    @app.workflow()
    async def order(n: int) -> int:
        return await charge(n)

    @app.workflow()
    async def greet(name: str, times: int = 1) -> str:
        return " ".join([f"hello {name}"] * times)

    @app.workflow()
    async def approval(order_id: str) -> str:
        decision = await perdure.receive("decision")
        return f"{order_id}: {decision}"

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

    signup = app.state_machine("signup", Status, record=dict)

    @signup.step(Status.NEW, to=[Status.DONE])
    async def finish(r: perdure.Record[dict]) -> Status:
        return Status.DONE
"""
ADMIN, READER = "admin-token-for-tests", "read-token-for-tests"


def perdure_command() -> list[str]:
    """The installed ``perdure`` script next to this interpreter, as an operator runs it."""
    script = Path(sys.executable).parent / "perdure"
    return [str(script)] if script.exists() else [sys.executable, "-m", "perdure.cli"]


@dataclass
class Shell:
    """Runs ``perdure`` in ``cwd`` (where the app module and the flag file live)."""

    cwd: Path
    url: str
    extra: list[str] = field(default_factory=list)  # e.g. --server URL --token T

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PERDURE_DATABASE_URL"] = self.url
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.cwd), env.get("PYTHONPATH")) if p)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        for name in ("PERDURE_SERVER", "PERDURE_TOKEN", "NO_COLOR"):
            env.pop(name, None)
        return env

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*perdure_command(), *args]
        if self.extra and args[0] not in ("worker", "serve", "demo"):
            command += self.extra
        return subprocess.run(
            command, cwd=self.cwd, env=self.env(), capture_output=True, text=True, timeout=120
        )

    def json(self, *args: str) -> object:
        done = self(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture
def shell(tmp_path: Path, shared_url: str) -> Shell:
    (tmp_path / "cli_shop.py").write_text(textwrap.dedent(MODULE))
    return Shell(tmp_path, shared_url)


@contextmanager
def process(shell: Shell, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running ``perdure`` command (worker, serve), stopped with SIGTERM; what it
    prints goes to ``<command>.log`` beside the app."""
    with open(shell.cwd / f"{args[0]}.log", "ab") as log:
        proc = subprocess.Popen(
            [*perdure_command(), *args],
            cwd=shell.cwd,
            env=shell.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(shell: Shell) -> Iterator[str]:
    """``perdure serve`` on a free loopback port, with an admin and a read token; its
    base URL once it answers."""
    tokens = shell.cwd / "tokens"
    tokens.write_text(f"# tokens for the tests\nadmin {ADMIN}\nread {READER}\n")
    port = free_port()
    serve = ["serve", "cli_shop:app", "--port", str(port), "--tokens-file", str(tokens)]
    with process(shell, *serve) as proc:
        base = f"http://127.0.0.1:{port}"
        while True:  # until it answers (or dies: then say why)
            if proc.poll() is not None:
                output = (shell.cwd / "serve.log").read_text()
                raise AssertionError(f"perdure serve exited {proc.returncode}:\n{output}")
            try:
                with urllib.request.urlopen(f"{base}/api/v1/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                select.select([], [], [], 0.05)  # not listening yet
        yield base


async def ended(url: str, run_id: str) -> perdure.RunStatus:
    """Wait (by the client's own polling) until a run has ended; its status."""
    app = perdure.App(url)
    try:
        with suppress(perdure.RunFailed):
            await app.handle(run_id).result(timeout=60)
        return await app.handle(run_id).status()
    finally:
        await app.close()


# -- F5: find a failed run, see why, fix the cause, retry it ------------------------------


async def test_f5_find_inspect_and_retry_a_failed_run(shell: Shell) -> None:
    with process(shell, "worker", "cli_shop:app"):
        waited = shell("start", "cli_shop:app", "order", "--args", "[3]", "--id", "o-1", "--wait")
        assert waited.returncode == 1  # the run failed: the outcome is a failure
        assert "perdure: run 'o-1' failed: RuntimeError: card service down" in waited.stderr
        assert (
            shell(
                "start",
                "cli_shop:app",
                "greet",
                "--kwargs",
                '{"name": "ann"}',
                "--key",
                "ann",
                "--wait",
            ).stdout
            == '"hello ann"\n'
        )

        listed = shell("runs", "list", "--status", "failed")
        assert listed.returncode == 0, listed.stderr
        header, row, *more = listed.stdout.splitlines()
        assert header.split() == ["ID", "WORKFLOW", "STATUS", "CREATED", "NOTE"]
        assert row.split()[:3] == ["o-1", "order", "failed"]
        assert row.endswith("RuntimeError: card service down") and not more
        assert "\x1b[" not in listed.stdout  # not a terminal: no colours

        page = shell.json("runs", "list", "--status", "failed")
        assert isinstance(page, dict) and page["next_cursor"] is None
        (run,) = page["runs"]
        assert (run["id"], run["workflow"], run["status"]) == ("o-1", "order", "failed")
        assert run["error"]["type"] == "RuntimeError"
        assert run["error"]["message"] == "card service down"
        everything = shell.json("runs", "list", "--limit", "1")
        assert isinstance(everything, dict) and len(everything["runs"]) == 1
        rest = shell.json("runs", "list", "--limit", "1", "--cursor", everything["next_cursor"])
        assert isinstance(rest, dict)
        assert [r["id"] for r in everything["runs"] + rest["runs"]][1] == "o-1"

        shown = shell("runs", "show", "o-1")
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert lines[0].split() == ["run", "o-1", "order", "failed"]
        assert '  input     {"args": [3], "kwargs": {}}' in lines
        assert "  error     RuntimeError: card service down" in lines
        step = next(line for line in lines if line.lstrip().startswith("0 "))
        assert step.split()[:4] == ["0", "charge", "failed", "2"]  # two attempts
        assert "RuntimeError: card service down" in step
        assert "charging 3" in shown.stdout and "traceback" in lines
        detail = shell.json("runs", "show", "o-1")
        assert isinstance(detail, dict)
        assert detail["input"] == {"args": [3], "kwargs": {}} and detail["result"] is None
        assert [(s["name"], s["status"], s["attempts"]) for s in detail["steps"]] == [
            ("charge", "failed", 2)
        ]
        assert [line["message"] for line in detail["logs"]] == ["charging 3", "charging 3"]

        # What cannot be done says so, with an exit status a script can branch on.
        missing = shell("runs", "show", "no-such-run")
        assert (missing.returncode, missing.stdout) == (3, "")
        assert missing.stderr == "perdure: no run with id 'no-such-run'\n"
        refused = shell("runs", "pause", "o-1")
        assert refused.returncode == 4
        assert refused.stderr.startswith("perdure: cannot pause run 'o-1': it is failed")
        wrong = shell("runs", "list", "--status", "broken")
        assert wrong.returncode == 2 and "use one of: pending, running" in wrong.stderr
        moved = shell("retry", "o-1")
        assert moved.returncode == 2
        assert (
            moved.stderr
            == "perdure: `perdure retry` is now `perdure runs retry` (see `perdure runs --help`)\n"
        )

        (shell.cwd / "fixed").touch()  # the card service is back
        retried = shell("runs", "retry", "o-1", "--reason", "card service back", "--by", "ops")
        assert retried.returncode == 0, retried.stderr
        assert retried.stdout == "o-1: running\n"
        assert await ended(shell.url, "o-1") is perdure.RunStatus.COMPLETED

    done = shell.json("runs", "show", "o-1")
    assert isinstance(done, dict)
    assert (done["status"], done["result"], done["error"]) == ("completed", 300, None)
    assert [(s["status"], s["attempts"], s["output"]) for s in done["steps"]] == [
        ("completed", 3, 300)
    ]
    again = shell("runs", "retry", "o-1")
    assert again.returncode == 4 and "fork it to run it again" in again.stderr


def test_graph_draws_dags_and_state_machines(shell: Shell) -> None:
    dag = shell("graph", "cli_shop:app", "orders")
    assert dag.returncode == 0, dag.stderr
    assert dag.stdout.splitlines()[0] == "flowchart TD"
    assert "    validate --> ship" in dag.stdout.splitlines()
    machine = shell("graph", "cli_shop:app", "signup")
    assert machine.stdout.splitlines()[:2] == ["stateDiagram-v2", "    [*] --> NEW"]
    assert shell.json("graph", "cli_shop:app", "orders") == {
        "name": "orders",
        "kind": "dag",
        "mermaid": dag.stdout,
    }
    code_first = shell("graph", "cli_shop:app", "greet")
    assert code_first.returncode == 2
    assert "'greet' is a code-first workflow" in code_first.stderr
    assert "(those are: orders, signup)" in code_first.stderr
    unknown = shell("graph", "cli_shop:app", "nothing")
    assert unknown.returncode == 3
    assert "no workflow, DAG or state machine named 'nothing'" in unknown.stderr
    no_app = shell("graph", "orders")
    assert no_app.returncode == 2 and "MODULE:APP NAME" in no_app.stderr

    listed = shell("definitions", "cli_shop:app")
    assert [line.split()[:2] for line in listed.stdout.splitlines()] == [
        ["NAME", "KIND"],
        ["order", "workflow"],
        ["greet", "workflow"],
        ["approval", "workflow"],
        ["orders", "dag"],
        ["signup", "state_machine"],
    ]
    assert "(name, times)" in listed.stdout
    as_json = shell.json("definitions", "cli_shop:app")
    assert isinstance(as_json, dict)
    assert [d["kind"] for d in as_json["definitions"]][-2:] == ["dag", "state_machine"]


async def test_start_send_fork_and_the_conflicts_of_an_id(shell: Shell) -> None:
    started = shell("start", "cli_shop:app", "approval", "--args", '["po-7"]', "--id", "po-7")
    assert (started.returncode, started.stdout) == (0, "po-7\n")
    again = shell.json("start", "cli_shop:app", "approval", "--args", '["po-7"]', "--id", "po-7")
    assert isinstance(again, dict) and again["id"] == "po-7"  # idempotent by id
    taken = shell(
        "start",
        "cli_shop:app",
        "approval",
        "--args",
        '["x"]',
        "--id",
        "po-7",
        "--id-policy",
        "reject",
    )
    assert taken.returncode == 4 and "already exists" in taken.stderr
    other = shell("start", "cli_shop:app", "greet", "--args", '["x"]', "--id", "po-7")
    assert other.returncode == 4 and "already exists as workflow 'approval'" in other.stderr
    bad = shell("start", "cli_shop:app", "order", "--args", '["three"]')
    assert bad.returncode == 2 and "parameter 'n'" in bad.stderr
    not_json = shell("start", "cli_shop:app", "order", "--args", "[3")
    assert not_json.returncode == 2 and "--args is not JSON" in not_json.stderr
    unknown = shell("start", "cli_shop:app", "refund")
    assert unknown.returncode == 3
    assert "no workflow, DAG or state machine named 'refund'" in unknown.stderr
    machine = shell.json(
        "start",
        "cli_shop:app",
        "signup",
        "--key",
        "u-1",
        "--kwargs",
        '{"record": {"email": "ann@example.com"}}',
        "--id",
        "signup-u-1",
    )
    assert isinstance(machine, dict)
    assert (machine["id"], machine["workflow"], machine["key"]) == ("signup-u-1", "signup", "u-1")
    keyless = shell("start", "cli_shop:app", "signup", "--kwargs", '{"record": {}}')
    assert keyless.returncode == 2 and "--key is required" in keyless.stderr
    not_a_record = shell("start", "cli_shop:app", "signup", "--key", "u-2", "--args", "[7]")
    assert not_a_record.returncode == 2
    assert "bad record for state machine 'signup'" in not_a_record.stderr

    sent = shell("send", "po-7", "decision", '"approved"', "--key", "d-1")
    assert (sent.returncode, sent.stdout) == (0, "po-7: message sent on 'decision'\n")
    assert shell.json("send", "po-7", "decision", '"approved"', "--key", "d-1") == {
        "accepted": False
    }
    nowhere = shell("send", "nobody", "decision", "true")
    assert nowhere.returncode == 3
    with process(shell, "worker", "cli_shop:app"):
        assert await ended(shell.url, "po-7") is perdure.RunStatus.COMPLETED
        assert shell.json("runs", "show", "po-7")["result"] == "po-7: approved"  # type: ignore[index]
        forked = shell("runs", "fork", "po-7", "--from-step", "0", "--id", "po-7b")
        assert (forked.returncode, forked.stdout) == (0, "po-7b\n")
        shell("send", "po-7b", "decision", '"declined"')
        assert await ended(shell.url, "po-7b") is perdure.RunStatus.COMPLETED
    assert shell.json("runs", "show", "po-7b")["result"] == "po-7: declined"  # type: ignore[index]
    twice = shell("runs", "fork", "po-7", "--from-step", "0", "--id", "po-7b")
    assert twice.returncode == 4


async def test_bulk_actions_act_on_every_match_and_ask_before_destroying(shell: Shell) -> None:
    for n in range(3):
        shell("start", "cli_shop:app", "order", "--args", f"[{n}]", "--id", f"bulk-{n}")
    shell("start", "cli_shop:app", "greet", "--args", '["bo"]', "--id", "hello-1")
    with process(shell, "worker", "cli_shop:app"):
        for run_id in ("bulk-0", "bulk-1", "bulk-2", "hello-1"):
            await ended(shell.url, run_id)
        (shell.cwd / "fixed").touch()
        retried = shell("runs", "retry", "--status", "failed", "--workflow", "order")
        assert retried.returncode == 0, retried.stderr
        assert retried.stdout == "retried 3 of 3 run(s)\n"
        for n in range(3):
            assert await ended(shell.url, f"bulk-{n}") is perdure.RunStatus.COMPLETED
    nothing = shell("runs", "retry", "--status", "failed")
    assert nothing.stdout == "no runs match status failed; nothing done\n"
    both = shell("runs", "cancel", "bulk-0", "--status", "running")
    assert both.returncode == 2 and "not both" in both.stderr

    unasked = shell("runs", "delete", "--workflow", "order")
    assert unasked.returncode == 2
    assert "this would delete 3 run(s) that match workflow order; add --yes" in unasked.stderr
    assert len(shell.json("runs", "list")["runs"]) == 4  # type: ignore[index]
    deleted = shell.json("runs", "delete", "--workflow", "order", "--yes")
    assert isinstance(deleted, dict)
    assert (deleted["changed"], deleted["refused"]) == (3, 0)
    assert sorted(r["id"] for r in deleted["results"]) == ["bulk-0", "bulk-1", "bulk-2"]
    mixed = shell("runs", "cancel", "hello-1", "ghost")
    assert mixed.returncode == 3  # one of them does not exist
    assert mixed.stdout == "cancelled 0 of 2 run(s); 1 had nothing to cancel; 1 refused\n"
    assert mixed.stderr == "perdure: no run with id 'ghost'\n"

    refused = shell("runs", "purge", "--older-than", "0")
    assert refused.returncode == 2 and "add --yes" in refused.stderr
    purged = shell("runs", "purge", "--older-than", "0", "--yes")
    assert (purged.returncode, purged.stdout) == (0, "deleted 1 runs\n")
    assert shell("runs", "list").stdout == "no runs\n"


def test_a_terminal_gets_colours_a_progress_bar_and_a_question(shell: Shell) -> None:
    for n in range(2):
        shell("start", "cli_shop:app", "greet", "--args", f'["t{n}"]', "--id", f"t-{n}")

    listed = on_terminal(shell, ["runs", "list"])
    assert "\x1b[2mpending\x1b[0m" in listed  # statuses in colour
    assert "\x1b[" not in on_terminal(shell, ["runs", "list"], env={"NO_COLOR": "1"})
    assert "\x1b[" not in on_terminal(shell, ["runs", "list", "--no-color"])

    declined = on_terminal(shell, ["runs", "cancel", "--status", "pending"], answer="n\n")
    assert "cancel 2 run(s) that match status pending? [y/N]" in declined
    assert "perdure: nothing done" in declined
    assert {r["status"] for r in shell.json("runs", "list")["runs"]} == {"pending"}  # type: ignore[index]
    accepted = on_terminal(shell, ["runs", "terminate", "--status", "pending"], answer="y\n")
    assert "terminated [" in accepted  # the progress bar
    assert "terminated 2 of 2 run(s)" in accepted
    assert {r["status"] for r in shell.json("runs", "list")["runs"]} == {"terminated"}  # type: ignore[index]


def on_terminal(
    shell: Shell, args: list[str], *, answer: str = "", env: dict[str, str] | None = None
) -> str:
    """Run ``perdure`` on a pseudo-terminal (typing ``answer``); everything it showed."""
    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [*perdure_command(), *args],
        cwd=shell.cwd,
        env={**shell.env(), **(env or {})},
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    shown = b""
    typed = False
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal closed: the command has ended
            break
        if not chunk:
            break
        shown += chunk
        if answer and not typed and b"[y/N]" in shown:
            os.write(main, answer.encode())
            typed = True
    os.close(main)
    assert proc.wait(timeout=120) in (0, 1), shown.decode()
    return shown.decode().replace("\r\n", "\n")


# -- through a server: the same commands, the same output ---------------------------------


async def test_through_a_server_the_commands_print_the_same(shell: Shell) -> None:
    with process(shell, "worker", "cli_shop:app"):
        shell("start", "cli_shop:app", "order", "--args", "[4]", "--id", "o-4", "--wait")
    with server(shell) as base:
        remote = Shell(shell.cwd, shell.url, ["--server", base, "--token", ADMIN])
        for args in (
            ["runs", "list", "--status", "failed", "--json"],
            ["runs", "show", "o-4", "--json"],
            ["runs", "show", "o-4", "--journal", "--json"],
            ["definitions", "--json"],
            ["queues", "--json"],
        ):
            direct_args = (
                ["definitions", "cli_shop:app", "--json"] if args[0] == "definitions" else args
            )
            if args[0] == "queues":
                direct_args = [*args, "--app", "cli_shop:app"]
            here, there = shell(*direct_args), remote(*args)
            assert there.returncode == 0, there.stderr
            assert json.loads(there.stdout) == json.loads(here.stdout), args
        human = [
            line for line in remote("runs", "show", "o-4").stdout.splitlines() if "ago" not in line
        ]
        assert human == [
            line for line in shell("runs", "show", "o-4").stdout.splitlines() if "ago" not in line
        ]
        assert remote("graph", "orders").stdout == shell("graph", "cli_shop:app", "orders").stdout

        assert remote("runs", "show", "nothing-here").returncode == 3
        assert remote("runs", "pause", "o-4").returncode == 4
        assert remote("graph", "greet").returncode == 2
        assert remote("graph", "nothing").returncode == 3
        code = remote("graph", "cli_shop:app", "orders")
        assert code.returncode == 2 and "name only the DAG or state machine" in code.stderr
        direct_only = remote("runs", "export", "o-4")
        assert (
            direct_only.returncode == 2 and "works on the database directly" in direct_only.stderr
        )

        (shell.cwd / "fixed").touch()
        retried = remote("runs", "retry", "o-4")
        assert (retried.returncode, retried.stdout) == (0, "o-4: running\n"), retried.stderr
        finished = remote("start", "order", "--args", "[5]", "--id", "o-5", "--wait")
        assert (finished.returncode, finished.stdout) == (0, "500\n"), finished.stderr
        assert await ended(shell.url, "o-4") is perdure.RunStatus.COMPLETED

        reader = Shell(shell.cwd, shell.url, ["--server", base, "--token", READER])
        assert reader("runs", "show", "o-4").returncode == 0
        forbidden = reader("runs", "delete", "o-4")
        assert forbidden.returncode == 5 and "admin token" in forbidden.stderr
        stranger = Shell(shell.cwd, shell.url, ["--server", base, "--token", "wrong"])
        refused = stranger("runs", "list")
        assert refused.returncode == 5 and "--token" in refused.stderr
        deleted = remote("runs", "delete", "o-4")
        assert (deleted.returncode, deleted.stdout) == (0, "o-4: deleted\n"), deleted.stderr

    gone = Shell(shell.cwd, shell.url, ["--server", base, "--token", ADMIN])("runs", "list")
    assert gone.returncode == 5
    assert gone.stderr.startswith(f"perdure: cannot reach the server at {base}")


def test_schedules_are_created_and_operated_directly_and_through_a_server(
    shell: Shell,
) -> None:
    create = ["schedules", "create", "cli_shop:app", "greet", "--id", "morning"]
    made = shell.json(*create, "--cron", "0 9 * * *", "--args", '["ada"]', "--tz", "Asia/Tokyo")
    assert isinstance(made, dict)
    assert (made["id"], made["cron"], made["tz"], made["paused"]) == (
        "morning",
        "0 9 * * *",
        "Asia/Tokyo",
        False,
    )
    for extra, words in (
        (["--cron", "0 25 * * *", "--args", '["x"]'], "bad cron"),
        (["--cron", "@every 1w", "--args", '["x"]'], "'@every <positive integer><unit>'"),
        (["--cron", "@daily", "--tz", "Asia/Atlantis", "--args", '["x"]'], "unknown time zone"),
        (["--cron", "@daily", "--args", "[1]"], "bad arguments for greet"),
    ):
        bad = shell("schedules", "create", "cli_shop:app", "greet", "--id", "other", *extra)
        assert bad.returncode == 2 and words in bad.stderr, bad.stderr
    unknown = shell("schedules", "create", "cli_shop:app", "nope", "--cron", "@daily")
    assert unknown.returncode == 2 and "no workflow named 'nope'" in unknown.stderr
    no_code = shell("schedules", "create", "greet", "--cron", "@daily")
    assert no_code.returncode == 2 and "MODULE:APP NAME" in no_code.stderr
    taken = shell(*create, "--cron", "@daily", "--args", '["ada"]')
    assert taken.returncode == 4 and "delete it first" in taken.stderr
    listed = shell.json("schedules", "list")
    assert [s["id"] for s in listed["schedules"]] == ["morning"]  # type: ignore[index]
    assert shell("schedules", "show", "nothing").returncode == 3

    assert shell("schedules", "pause", "morning").stdout == "morning: paused\n"
    assert shell("schedules", "pause", "morning").stdout == "morning: already paused\n"
    codeless = shell("schedules", "trigger", "morning")
    assert codeless.returncode == 2 and "--app MODULE:APP" in codeless.stderr
    at = ["--at", "2026-02-02T00:00:00Z"]
    triggered = shell("schedules", "trigger", "morning", *at, "--app", "cli_shop:app")
    assert (triggered.returncode, triggered.stdout) == (0, "morning@2026-02-02T00:00:00Z\n")
    window = ["--start", "2026-02-01", "--end", "2026-02-03T08:00:00+09:00"]
    filled = shell("schedules", "backfill", "morning", *window, "--app", "cli_shop:app")
    days = ["morning@2026-02-01T00:00:00Z", "morning@2026-02-02T00:00:00Z"]
    assert (filled.returncode, filled.stdout.split()) == (0, days), filled.stderr

    with server(shell) as base:
        remote = Shell(shell.cwd, shell.url, ["--server", base, "--token", ADMIN])
        there = remote("schedules", "create", "greet", "--cron", "@every 1s", "--args", '["b"]')
        assert there.returncode == 0, there.stderr
        assert "schedule greet" in there.stdout and "@every 1s (UTC)" in there.stdout
        fired = settled(lambda: remote.json("schedules", "show", "greet")["last_run"])
        assert fired.startswith("greet@")
        assert remote("schedules", "pause", "greet").stdout == "greet: paused\n"
        assert remote("schedules", "resume", "morning").stdout == "morning: resumed\n"
        settled(lambda: remote.json("schedules", "show", "morning")["next_at"])
        for args in (["schedules", "show", "morning"], ["schedules", "list"]):
            far = settled(lambda args=args: remote.json(*args))
            assert shell.json(*args) == far, args
        assert remote.json("schedules", "trigger", "morning", *at)["id"] == days[1]
        assert remote.json("schedules", "backfill", "morning", *window) == {"runs": days}
        assert remote("schedules", "show", "nothing").returncode == 3
        reader = Shell(shell.cwd, shell.url, ["--server", base, "--token", READER])
        assert reader("schedules", "pause", "greet").returncode == 5
        deleted = remote("schedules", "delete", "greet")
        assert (deleted.returncode, deleted.stdout) == (
            0,
            "greet: deleted (the runs it started are kept)\n",
        )
    assert shell("schedules", "delete", "morning").returncode == 0
    assert shell("schedules", "list").stdout == "no schedules\n"
    assert shell("schedules", "show", "morning").returncode == 3


def settled(read: Callable[[], Any]) -> Any:
    """Read until the answer is set and the same twice in a row (a worker may still be
    moving things); that answer."""
    previous = None
    for _ in range(1200):  # a bound (a minute), not a timing assertion
        current = read()
        if current and current == previous:
            return current
        previous = current
        select.select([], [], [], 0.05)
    raise AssertionError(f"never settled; last read {previous!r}")


def test_usage_errors_say_what_to_do(shell: Shell, tmp_path: Path) -> None:
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    lost = Shell(empty, shell.url)
    env_free = subprocess.run(
        [*perdure_command(), "runs", "list"],
        cwd=empty,
        env={k: v for k, v in lost.env().items() if k != "PERDURE_DATABASE_URL"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert env_free.returncode == 2 and "no database: pass --database URL" in env_free.stderr
    assert not (empty / "perdure.db").exists()
    both = shell("runs", "list", "--server", "http://127.0.0.1:1", "--database", shell.url)
    assert both.returncode == 2 and "choose one" in both.stderr
    not_url = shell("runs", "list", "--server", "localhost:8080")
    assert not_url.returncode == 2 and "not an http:// or https:// URL" in not_url.stderr
    bad_app = shell("definitions", "nowhere:app")
    assert bad_app.returncode == 2 and "cannot import 'nowhere'" in bad_app.stderr
    bad_option = shell("runs", "list", "--limit", "many")
    assert bad_option.returncode == 2
    assert bad_option.stderr.startswith("perdure: argument --limit: invalid int value")
    assert bad_option.stderr.endswith("(see `perdure runs list --help`)\n")
    assert shell("runs", "list", "--limit", "501").returncode == 2
    bad_time = shell("runs", "list", "--created-after", "last week")
    assert bad_time.returncode == 2 and "how long ago (90s, 15m, 6h, 7d)" in bad_time.stderr


def test_every_command_teaches_with_an_example() -> None:
    from perdure.cli.parser import build

    for path, parser in commands(build()):
        text = parser.format_help()
        assert "examples:\n  perdure " in text, f"perdure {' '.join(path)} --help has no example"
        assert parser.description, f"perdure {' '.join(path)} --help does not say what it does"
    done = subprocess.run(
        [*perdure_command(), "runs", "retry", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "perdure runs retry --status failed" in done.stdout


def test_docs_cli_md_describes_every_command_and_option() -> None:
    from perdure.cli.parser import build

    page = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    missing = []
    for path, parser in commands(build()):
        name = " ".join(["perdure", *path])
        if f"`{name}" not in page:
            missing.append(name)
        for action in parser._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help" and f"`{option}" not in page:
                    missing.append(f"{name} {option}")
    assert not missing, f"docs/cli.md does not describe {sorted(set(missing))}"
    for status in range(6):
        assert re.search(rf"^\| `{status}` \|", page, re.MULTILINE), f"exit status {status}"


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command and sub-command's parser, by its words after ``perdure``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for word, sub in action.choices.items():
                yield (*path, word), sub
                yield from commands(sub, (*path, word))
