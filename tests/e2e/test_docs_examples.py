"""The documentation's examples run and print what the documentation says they print.

Each example in ``docs/examples`` runs as a reader runs it: a script in a process of
its own, on a fresh SQLite file (``PERDURE_DATABASE_URL``), with the worker started
through the ``perdure`` command where the docs do. Every ```python block in the README
and ``docs/`` must be a verbatim excerpt of one of those files, so the prose cannot
drift away from code that runs; the reference must name every public name and every
CLI option.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

import perdure

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "examples"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
TIMEOUT = 60


def example_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PERDURE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'perdure.db'}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(EXAMPLES), env.get("PYTHONPATH")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # keep docs/examples free of __pycache__
    return env


def run_example(name: str, tmp_path: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=tmp_path,
        env=example_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    assert done.stderr == "", f"{name} wrote to stderr:\n{done.stderr}"  # warnings, leaks
    return done.stdout


def perdure_command() -> list[str]:
    """The installed ``perdure`` script next to this interpreter, as a reader runs it."""
    script = Path(sys.executable).parent / "perdure"
    return [str(script)] if script.exists() else [sys.executable, "-m", "perdure.cli"]


@dataclass
class Service:
    """A process started in the background; ``output`` and ``returncode`` once stopped."""

    proc: subprocess.Popen[str]
    output: str = ""
    returncode: int | None = None


@contextmanager
def background(command: list[str], tmp_path: Path) -> Iterator[Service]:
    """A worker process for the duration; stopped with SIGTERM, as a service manager does."""
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=example_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    service = Service(proc)
    try:
        yield service
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            service.output, _ = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            service.output, _ = proc.communicate()
        service.returncode = proc.returncode


# -- the examples, and what the docs tell readers they print ----------------------------


def test_readme_example_prints_the_event_and_the_result_and_replays_by_id(
    tmp_path: Path,
) -> None:
    expected = (
        "charged\n"
        "{'order': 'o-1', 'receipt': 'receipt-o-1-1999', 'stock': ['north:o-1', 'south:o-1']}\n"
    )
    assert run_example("shop.py", tmp_path) == expected
    # Same id, same database: the recorded run answers again.
    assert run_example("shop.py", tmp_path) == expected


def test_readme_worker_process_runs_what_another_process_starts(tmp_path: Path) -> None:
    with background([*perdure_command(), "worker", "shop:app"], tmp_path) as worker_process:
        out = run_example("shop_client.py", tmp_path)
    assert worker_process.returncode == 0, worker_process.output
    assert out == (
        "{'order': 'o-2', 'receipt': 'receipt-o-2-2500', 'stock': ['north:o-2', 'south:o-2']}\n"
    )
    assert worker_process.output.startswith("perdure worker: 1 workflow(s) on sqlite:///")


def test_quickstart_runs_the_first_workflow_embedded(tmp_path: Path) -> None:
    assert run_example("welcome.py", tmp_path).splitlines() == [
        "creating an account for ada@example.com",
        "sending 'Welcome!' to ada@example.com",
        "sending 'How is it going?' to ada@example.com",
        "result: 42",
    ]


def test_quickstart_run_sync_script(tmp_path: Path) -> None:
    assert run_example("welcome_script.py", tmp_path).splitlines()[-1] == "result: 42"


@pytest.mark.parametrize(
    "worker",
    [
        ["perdure", "worker", "welcome:app"],
        [sys.executable, str(EXAMPLES / "worker_process.py")],
    ],
    ids=["cli", "run_worker"],
)
def test_quickstart_starters_are_served_by_a_separate_worker_process(
    tmp_path: Path, worker: list[str]
) -> None:
    command = perdure_command() + worker[1:] if worker[0] == "perdure" else worker
    with background(command, tmp_path) as worker_process:
        started = run_example("start_welcome.py", tmp_path)
        views = run_example("welcome_views.py", tmp_path)
    assert worker_process.returncode == 0, worker_process.output
    assert started.splitlines() == ["started onboard-grace", "result: 42"]
    lines = views.splitlines()
    assert lines[0] == "{'run_id': 'onboard-edsger@example.com'}"
    # The worker may pick the run up before the view looks: either status is right.
    assert lines[1] in (
        "{'run_id': 'onboard-edsger@example.com', 'status': 'pending'}",
        "{'run_id': 'onboard-edsger@example.com', 'status': 'running'}",
    )
    assert lines[2:] == ["result: 42"]
    # The steps ran in the worker, not in the processes that started the runs.
    assert "creating an account for grace@example.com" in worker_process.output
    assert "sending 'How is it going?' to edsger@example.com" in worker_process.output


EXPECTED: dict[str, list[str]] = {
    "signup_fsm.py": [
        "stateDiagram-v2",
        "    [*] --> CREATED",
        "    CREATED --> VERIFIED: verify",
        "    CREATED --> REJECTED: verify",
        "    VERIFIED --> CHARGED: callback on_payment",
        "    VERIFIED --> REJECTED: timeout after 600s",
        "    CHARGED --> DONE: send_receipts",
        "    DONE --> [*]",
        "    REJECTED --> [*]",
        "user-42 already has an active run",
        "user-42 ended in DONE",
        "email='ann@example.com' verified=True paid_cents=1999 reminders=3",
        "user-43 ended in REJECTED",
        "user-43: REJECTED",
    ],
    "webhooks.py": [
        "started run '72d3162e' of workflow 'deploy'",
        "deploying 9f2c1e0 of acme/shop",
        "run '72d3162e' exists already (a repeated delivery); nothing started",
        "401: bad signature: X-Hub-Signature-256 is not the HMAC-SHA256 of the body with "
        "this hook's secret",
        "no parser matched this request (webhook 'github' has 1 parser(s)); nothing was started",
        "ann@example.com subscribed (pro)",
        "message sent to run 'expense-1'",
        "120 approved",
    ],
    "order_dag.py": [
        "1 items shipped, charged 5",
        "task 'charge' of DAG 'order-processing' failed after 1 attempt(s): "
        "perdure.errors.NonRetryableError: card declined",
        "['order 2: card declined']",
        "[('order-processing.validate', 'completed'), "
        "('order-processing.check_inventory', 'completed'), "
        "('order-processing.charge', 'failed'), ('order-processing.refund', 'completed')]",
        "bad arguments for DAG 'order-processing': missing a required argument: 'order'",
        "24",
        '[{"from": "fetch", "to": "size", "kind": "after"}]',
        "flowchart TD",
        "    %% DAG order-processing",
        '    validate["validate"]',
        '    check_inventory["check_inventory<br/>up to 3 attempts"]',
        '    charge["charge<br/>timeout 30s"]',
        '    refund("refund")',
        '    ship["ship"]',
        "    validate --> check_inventory",
        "    validate --> charge",
        "    check_inventory --> ship",
        "    charge --> ship",
        "    charge -. on failure .-> refund",
    ],
    "queues.py": [
        "refused: welcome:cid is held by another run",
        "FRAME OF SUNSET",
        "ann got: ['password reset -> ann', 'monthly news -> ann']",
        "runs for ann: 2",
    ],
    "steps.py": [
        "rate 1.25",
        "charge failed after 1 attempt(s): __main__.CardDeclined: card declined for 1999 cents",
        "reserve failed after 1 attempt(s): __main__.OutOfStock: no widget left",
        "slow_report failed: step 'slow_report' timed out after 0.2 s",
        "total 1999",
    ],
    "messages.py": [
        "waiting for approval",
        "sent: True",
        "sent again: False",
        "{'approved': True, 'comments': ['receipt attached', 'within budget']}",
        "decided: approve",
        "None",
    ],
    "children.py": [
        "{'sizes': ['cat.png@200', 'cat.png@1200'], "
        "'failure': 'publish-cat-2: ValueError: 9000 px is too wide', 'cancelled': True}",
        "publish-cat-3 waits_forever cancelled",
        "publish-cat-2 thumbnail failed",
        "publish-cat-1 thumbnail completed",
        "cat.png-small thumbnail completed",
    ],
    "concurrency.py": [
        "{'cheapest': ['acme', 40], 'first': 'fast', 'timed_out': 'sluggish', 'no_offer': True}",
    ],
    "cancellation.py": [
        "room for ada",
        "cancel accepted: True",
        "released room for ada",
        "cancelled: guest called off the trip",
        "cancelled",
        "timed out: workflow timed out after 0.5 s",
    ],
    "configuration.py": [
        "sqlite:///data/shop.db",
        "sqlite:////var/lib/shop/shop.db",
        "sqlite:///shop.db?synchronous=normal",
        "memory://",
        "sqlite:///shop.db",
    ],
    "continue_as_new.py": [
        "{'total': 1128, 'generation': 3}",
        "generation 3, 3 journal entries",
    ],
    "errors.py": [
        "__main__.InvalidAddress | the address is empty",
        "InvalidAddress: the address is empty",
        "__main__.InvalidAddress: the address is empty",
        "held: __main__.InvalidAddress (the address is empty)",
        "['1 MAIN ST', 'many-1 failed: the address is empty']",
        "run 'many' already exists as workflow 'ship_many'; cannot start it as 'ship_or_hold' "
        "(choose another id)",
        "no run with id 'no-such-run'",
    ],
    "payloads.py": [
        "2026-05-03 12:00:00 [Item(sku='rug', size=<Size.LARGE: 'l'>)] b'\\x89PNG'",
        "{'sku': 'gift-wrap', 'size': 's'}",
        "refused: argument 'order' of fulfil: cannot encode object as JSON (Unable to "
        "serialize unknown type: <class 'object'>); use JSON-compatible values, "
        "dataclasses or pydantic models",
    ],
    "idempotency.py": ["ch_1", "2 calls, 1 charge"],
    "operating.py": [
        "charging for lamp",
        "failed: the warehouse is closed",
        "paid lamp, reserved lamp",
        "0 charge completed: ok",
        "1 reserve completed: RuntimeError: the warehouse is closed, "
        "RuntimeError: the warehouse is closed, ok",
        "3 lines logged",
        "paid lamp, reserved lamp",
        "paused",
        "charging for laptop (approved)",
        "paid laptop (approved)",
        "paused",
        "published HELLO",
        "terminated: terminated by support: duplicate request",
        "completed: post-1",
        "completed: approval-1",
        "completed: order-1-again",
        "completed: order-1",
        "deleted 5 runs",
    ],
    "schedules.py": [
        "eu-report report 0 9 * * mon-fri Europe/Paris",
        "eu-report@2026-01-05T08:00:00Z and 4 more",
        "eu report for Mon 05 Jan 09:00",
        "again: True",
        "us-often@2026-01-05T18:30:00Z -> us report for Mon 05 Jan 19:30",
        "[('eu-report', False), ('us-often', True)]",
        "bad cron '0 9 * * mon-fry'",
    ],
    "worker_embedded.py": [
        "creating an account for barbara@example.com",
        "sending 'Welcome!' to barbara@example.com",
        "sending 'How is it going?' to barbara@example.com",
        "result: 42",
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_guide_example_prints_what_the_guide_shows(name: str, tmp_path: Path) -> None:
    assert run_example(name, tmp_path).splitlines() == EXPECTED[name]


def test_determinism_example_returns_recorded_values(tmp_path: Path) -> None:
    out = run_example("determinism.py", tmp_path)
    assert "'token_length': 16, 'local_is_datetime': True" in out
    assert re.search(
        r"'lines': \['invoice INV-[0-9a-f]{8} sent to ada', 'receipt sent to ada'\]", out
    )


def test_logging_example_tags_records_with_the_run_id(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "logging_example.py")],
        cwd=tmp_path,
        env=example_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[200, 200]\n"
    run_lines = [line for line in done.stderr.splitlines() if " perdure.run " in line]
    assert len(run_lines) == 3
    assert run_lines[0].endswith("] crawling 2 pages")
    assert run_lines[2].endswith("] fetching https://example.com/b")
    run_ids = {line.split("[", 1)[1].split("]", 1)[0] for line in run_lines}
    assert len(run_ids) == 1 and "-" not in run_ids


def test_every_example_is_run_by_this_file() -> None:
    covered = {
        *EXPECTED,
        "shop.py",
        "shop_client.py",
        "welcome.py",
        "welcome_script.py",
        "start_welcome.py",
        "welcome_views.py",
        "worker_process.py",
        "determinism.py",
        "logging_example.py",
        "reminders.py",  # with test_reminders.py, run by tests/e2e/test_testing_kit.py
        "test_reminders.py",
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} == covered


# -- the pages cannot drift from the examples, the API or the CLI -----------------------

FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def excerpt_of(block: str, source: str) -> bool:
    want = textwrap.dedent(block).strip("\n").splitlines()
    lines = source.splitlines()
    for start in range(len(lines) - len(want) + 1):
        window = "\n".join(lines[start : start + len(want)])
        if textwrap.dedent(window).splitlines() == want:
            return True
    return False


def test_python_blocks_in_the_docs_are_excerpts_of_examples_that_run() -> None:
    sources = {p.name: p.read_text() for p in EXAMPLES.glob("*.py")}
    blocks = [(page, m.group(1)) for page in PAGES for m in FENCE.finditer(page.read_text())]
    assert len(blocks) > 20
    stray = [
        f"{page.relative_to(REPO)}:\n{block}"
        for page, block in blocks
        if not any(excerpt_of(block, source) for source in sources.values())
    ]
    assert not stray, "python blocks not found in docs/examples:\n\n" + "\n\n".join(stray)


def test_reference_names_every_public_name() -> None:
    reference = (REPO / "docs" / "reference.md").read_text()
    missing = [
        name
        for name in perdure.__all__
        if not re.search(rf"`(await )?(perdure\.)?{re.escape(name)}\b", reference)
    ]
    assert not missing, f"docs/reference.md does not describe {missing}"
    for status in perdure.RunStatus:
        assert f"`{status.value}`" in reference


def test_reference_lists_every_cli_command_and_option(tmp_path: Path) -> None:
    reference = (REPO / "docs" / "reference.md").read_text()
    missing = []
    for command in ([], ["worker"], ["demo"]):
        done = subprocess.run(
            [*perdure_command(), *command, "--help"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert done.returncode == 0, done.stderr
        if command and f"perdure {command[0]}" not in reference:
            missing.append(f"perdure {command[0]}")
        options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", done.stdout)) - {"--help"}
        missing += sorted(o for o in options if f"`{o}" not in reference)
    assert not missing, f"docs/reference.md does not mention {missing}"
