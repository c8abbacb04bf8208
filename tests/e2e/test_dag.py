"""DAG workflows (scenarios D1-D7): tasks with dependencies compiled onto one ordinary
workflow, on every backend; and a worker process killed in the middle of a DAG.

Concurrency is shown by events, not by timing: two tasks that each wait for the
other's event can only both complete if they run at the same time.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import dagapp
import pytest
from crashkit import eventually

import perdure
from perdure.dag import Dag

FAST = perdure.Retry(max_attempts=3, initial_interval=0.01, backoff=1.0)


async def rendezvous(mine: asyncio.Event, theirs: asyncio.Event) -> None:
    """Completes only if the other side runs meanwhile (or fails after 10 s)."""
    mine.set()
    await asyncio.wait_for(theirs.wait(), 10)


async def no_runs(app: perdure.App) -> bool:
    return [run async for run in app.list_runs()] == []


# -- D1: independent tasks overlap, each receives its upstream results -----------------------


async def test_independent_tasks_run_concurrently_and_receive_upstream_results(
    app: perdure.App,
) -> None:
    orders = app.dag("orders")
    inventory_up, payment_up = asyncio.Event(), asyncio.Event()
    email_up, stock_up = asyncio.Event(), asyncio.Event()

    @orders.task()
    async def validate(order: dict[str, Any]) -> dict[str, Any]:
        return {"id": order["id"], "items": order["items"]}

    @orders.task(after=[validate])
    async def check_inventory(validate: dict[str, Any]) -> int:
        await rendezvous(inventory_up, payment_up)
        return len(validate["items"])

    @orders.task(after=[validate])
    async def process_payment(validate: dict[str, Any]) -> str:
        await rendezvous(payment_up, inventory_up)
        return f"paid-{validate['id']}"

    @orders.task(after=[check_inventory, process_payment])
    def prepare_shipping(check_inventory: int, process_payment: str) -> str:
        return f"{check_inventory} items, {process_payment}"

    @orders.task(after=[prepare_shipping])
    async def send_email(prepare_shipping: str) -> str:
        await rendezvous(email_up, stock_up)
        return f"mailed: {prepare_shipping}"

    @orders.task(after=[prepare_shipping, check_inventory])
    async def update_inventory(prepare_shipping: str, check_inventory: int) -> int:
        await rendezvous(stock_up, email_up)
        return -check_inventory

    async with app:
        handle = await app.start(orders, {"id": 7, "items": ["a", "b"]})
        # Two tasks end the DAG: the result has both, by name.
        assert await handle.result(timeout=30) == {
            "send_email": "mailed: 2 items, paid-7",
            "update_inventory": -2,
        }
        steps = await handle.steps()
    assert [s.name for s in steps] == [
        "orders.validate",
        "orders.check_inventory",
        "orders.process_payment",
        "orders.prepare_shipping",
        "orders.send_email",
        "orders.update_inventory",
    ]
    assert all(s.status == "completed" for s in steps)


async def test_one_sink_is_the_result_and_the_dag_is_an_ordinary_workflow(
    app: perdure.App,
) -> None:
    pipeline = app.dag("pipeline")

    @pipeline.task()
    async def fetch(url: str, retries: int = 1) -> str:
        return f"{url}x{retries}"

    @pipeline.task(after=fetch)
    async def measure(fetch: str) -> int:
        return len(fetch)

    async with app:
        assert await (await app.start(pipeline, "abc")).result(timeout=30) == 5
        by_name = await app.start("pipeline", url="abcd", retries=22, id="by-name")
        assert await by_name.result(timeout=30) == 7
        listed = [run async for run in app.list_runs(workflow="pipeline", status="completed")]
        assert len(listed) == 2 and "by-name" in {run.id for run in listed}
    assert await pipeline.tasks["measure"]("four") == 4  # outside a run: the plain function


# -- D2: retries per task, attempts visible ------------------------------------------------


async def test_a_task_that_fails_twice_then_succeeds_shows_its_attempts(app: perdure.App) -> None:
    orders = app.dag("orders")
    calls: Counter[str] = Counter()

    @orders.task()
    async def validate(order: int) -> int:
        calls["validate"] += 1
        return order

    @orders.task(after=[validate], retry=FAST)
    async def check_inventory(validate: int) -> str:
        calls["check_inventory"] += 1
        if calls["check_inventory"] < 3:
            raise ConnectionError(f"inventory service down ({calls['check_inventory']})")
        return f"{validate} in stock"

    async with app:
        handle = await app.start(orders, 5)
        assert await handle.result(timeout=30) == "5 in stock"
        steps = {s.name: s for s in await handle.steps()}
    inventory = steps["orders.check_inventory"]
    assert inventory.status == "completed"
    assert [a.attempt for a in inventory.attempts] == [1, 2, 3]
    assert [a.error.message if a.error else None for a in inventory.attempts] == [
        "inventory service down (1)",
        "inventory service down (2)",
        None,
    ]
    assert len(steps["orders.validate"].attempts) == 1
    assert calls == {"validate": 1, "check_inventory": 3}


# -- D3: a timeout fails the run, naming the task; downstream never runs ----------------------


async def test_a_task_past_its_timeout_fails_the_run_and_downstream_never_runs(
    app: perdure.App,
) -> None:
    orders = app.dag("orders")
    never = asyncio.Event()
    ran: list[str] = []

    @orders.task()
    async def validate(order: int) -> int:
        return order

    @orders.task(after=[validate], retry=perdure.Retry(max_attempts=2, initial_interval=0.01))
    async def check_inventory(validate: int) -> bool:
        return True

    @orders.task(after=[validate], timeout=0.2, retry=perdure.Retry(2, initial_interval=0.01))
    async def process_payment(validate: int) -> str:
        ran.append("process_payment")
        await asyncio.wait_for(never.wait(), 30)
        return "paid"

    @orders.task(after=[check_inventory, process_payment])
    async def prepare_shipping(check_inventory: bool, process_payment: str) -> str:
        ran.append("prepare_shipping")
        return "shipped"

    async with app:
        handle = await app.start(orders, 1)
        with pytest.raises(perdure.RunFailed) as failed:
            await handle.result(timeout=30)
        steps = {s.name: s for s in await handle.steps()}
    assert failed.value.error.type == "perdure.errors.TaskFailed"
    assert failed.value.error.message.startswith(
        "task 'process_payment' of DAG 'orders' failed after 2 attempt(s): "
        "perdure.errors.StepTimeout: step 'orders.process_payment' timed out after 0.2 s"
    )
    assert ran == ["process_payment", "process_payment"]
    assert steps["orders.process_payment"].status == "failed"
    assert len(steps["orders.process_payment"].attempts) == 2
    assert "orders.prepare_shipping" not in steps


# -- D4 and the other definition checks ------------------------------------------------------


def test_a_cycle_through_names_is_rejected_naming_the_cycle(app: perdure.App) -> None:
    flow = app.dag("flow")

    @flow.task(after="c")
    async def a(c: int) -> int:
        return c

    @flow.task(after=a)
    async def b(a: int) -> int:
        return a

    with pytest.raises(perdure.DagError, match=r"DAG 'flow' has a cycle: a -> b -> c -> a"):

        @flow.task(after=b)
        async def c(b: int) -> int:
            return b

    assert list(flow.tasks) == ["a", "b"]  # the rejected task was not added
    assert "flow.c" not in app.steps

    with pytest.raises(perdure.DagError, match=r"cycle: d -> d"):

        @flow.task(name="d", after="d")
        async def itself(d: int) -> int:
            return d


def test_an_unknown_dependency_is_rejected_when_the_dag_is_used(app: perdure.App) -> None:
    flow = app.dag("flow")

    @flow.task()
    async def a(x: int) -> int:
        return x

    @flow.task(after=[a, "nowhere"])
    async def b(a: int) -> int:
        return a

    message = r"task 'b' of DAG 'flow' runs after 'nowhere', which is not a task of this DAG"
    with pytest.raises(perdure.DagError, match=message):
        flow.validate()
    with pytest.raises(perdure.DagError, match=message):
        flow.describe()


async def test_starting_a_dag_with_an_unknown_dependency_writes_nothing(app: perdure.App) -> None:
    flow = app.dag("flow")

    @flow.task(on_failure="undo")
    async def a(x: int) -> int:
        return x

    with pytest.raises(perdure.DagError, match=r"has the failure handler 'undo', which is not"):
        await app.start(flow, 1)
    assert await no_runs(app)


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        ("duplicate", r"DAG 'flow' already has a task named 'a'; pass name="),
        ("unknown_param", r"parameter 'b' of task 'c' of DAG 'flow' names none of the tasks it "),
        ("forgot_after", r"parameter 'a' of task 'c' .* runs after nothing, .* add after=\['a'\]"),
        ("handler_after", r"task 'undo' of DAG 'flow' handles the failure of 'b', .* cannot also"),
        ("after_handler", r"task 'c' of DAG 'flow' runs after 'undo', a failure handler"),
        ("handler_param", r"parameter 'total' of failure handler 'undo' of DAG 'flow' names no "),
        ("handler_ok", r"DAG 'flow' has no problem"),
        ("not_a_name", r"task name 'two words' of DAG 'flow' must be a Python identifier"),
        ("star_args", r"tasks take named parameters only"),
        ("other_dag", r"a task can only refer to tasks of its own DAG \('flow'\)"),
    ],
)
def test_definition_mistakes_are_rejected_with_a_clear_message(
    app: perdure.App, declare: str, message: str
) -> None:
    flow = app.dag("flow")

    @flow.task()
    async def a(x: int) -> int:
        return x

    async def c(a: int, b: int) -> int:
        return a + b

    async def b(a: int) -> int:
        return a

    async def undo(a: int, b: perdure.ErrorInfo) -> None:  # upstream result, error
        return None

    async def undo_after_a(a: int) -> None:
        return None

    async def after_undo(a: int, undo: None) -> None:
        return None

    with pytest.raises(perdure.DagError, match=message):
        if declare == "duplicate":
            flow.task(name="a")(c)
        elif declare == "unknown_param":
            flow.task(after=[a])(c)
        elif declare == "forgot_after":
            flow.task()(c)
            flow.validate()
        elif declare == "handler_after":
            flow.task(name="undo", after=[a])(undo_after_a)
            flow.task(after=[a], on_failure=["undo"])(b)
        elif declare == "after_handler":
            flow.task(after=[a], on_failure=["undo"])(b)
            flow.task()(undo)
            flow.task(name="c", after=[a, "undo"])(after_undo)
        elif declare in ("handler_param", "handler_ok"):

            async def bad_undo(b: perdure.ErrorInfo, total: int) -> None:
                return None

            flow.task(after=[a], on_failure=["undo"])(b)
            flow.task(name="undo")(undo if declare == "handler_ok" else bad_undo)
            flow.validate()
            raise perdure.DagError("DAG 'flow' has no problem")
        elif declare == "not_a_name":
            flow.task(name="two words")(c)
        elif declare == "star_args":

            async def star(*a: int) -> int:
                return 0

            flow.task(after=[a])(star)
        elif declare == "other_dag":
            other = app.dag("other")
            flow.task(after=[other.task(name="a")(a.fn)])(c)


# -- input check ---------------------------------------------------------------------------


async def test_input_the_root_tasks_cannot_take_is_refused_and_nothing_is_written(
    app: perdure.App,
) -> None:
    orders = app.dag("orders")

    @orders.task()
    async def validate(order: dict[str, int], strict: bool = False) -> int:
        return order["id"]

    @orders.task()
    async def audit(order: dict[str, int], who: str) -> str:
        return who

    @orders.task(after=[validate, audit])
    async def done(validate: int, audit: str) -> str:
        return f"{validate} by {audit}"

    with pytest.raises(TypeError, match=r"bad arguments for DAG 'orders': .*'who'"):
        await app.start(orders, {"id": 1})
    with pytest.raises(TypeError, match=r"bad arguments for DAG 'orders': .*'colour'"):
        await app.start(orders, {"id": 1}, who="ann", colour="red")
    assert await no_runs(app)
    async with app:
        handle = await app.start(orders, {"id": 3}, "ann")  # positionally, in root order
        assert await handle.result(timeout=30) == "3 by ann"


# -- D5: failure branch, success branch -------------------------------------------------------


@pytest.mark.parametrize("card", ["good", "declined"])
async def test_a_failure_handler_runs_only_when_its_task_fails_and_the_run_still_fails(
    app: perdure.App, card: str
) -> None:
    orders = app.dag("orders")
    ran: list[str] = []
    refunds: list[tuple[str, str, int]] = []

    @orders.task()
    async def validate(order: dict[str, Any]) -> int:
        return int(order["amount"])

    @orders.task(after=[validate], on_failure=["refund"])
    async def charge(validate: int) -> str:
        ran.append("charge")
        if card == "declined":
            raise perdure.NonRetryableError("card declined")
        return f"charged {validate}"

    @orders.task()
    async def refund(charge: perdure.ErrorInfo, validate: int) -> str:
        refunds.append((charge.type, charge.message, validate))
        return "refunded"

    @orders.task(after=[charge])
    async def ship(charge: str) -> str:
        ran.append("ship")
        return f"{charge}, shipped"

    async with app:
        handle = await app.start(orders, {"amount": 30})
        if card == "good":
            assert await handle.result(timeout=30) == "charged 30, shipped"
            assert ran == ["charge", "ship"] and refunds == []
            return
        with pytest.raises(perdure.RunFailed, match="task 'charge' of DAG 'orders' failed"):
            await handle.result(timeout=30)
        steps = [(s.name, s.status) for s in await handle.steps()]
    assert ran == ["charge"]
    assert refunds == [("perdure.errors.NonRetryableError", "card declined", 30)]
    assert steps == [
        ("orders.validate", "completed"),
        ("orders.charge", "failed"),
        ("orders.refund", "completed"),
    ]


async def test_a_failing_handler_is_named_too_and_its_own_handler_runs(app: perdure.App) -> None:
    flow = app.dag("flow")
    alerts: list[str] = []

    @flow.task(on_failure="undo")
    async def work(x: int) -> int:
        raise ValueError("broken")

    @flow.task(on_failure="alert")
    async def undo(work: perdure.ErrorInfo) -> None:
        raise RuntimeError("undo broken too")

    @flow.task()
    async def alert(undo: perdure.ErrorInfo) -> None:
        alerts.append(undo.message)

    async with app:
        handle = await app.start(flow, 1)
        with pytest.raises(perdure.RunFailed) as failed:
            await handle.result(timeout=30)
    assert failed.value.error.message == (
        "task 'work' of DAG 'flow' failed after 1 attempt(s): ValueError: broken; "
        "failure handler 'undo' failed too: RuntimeError: undo broken too"
    )
    assert alerts == ["undo broken too"]


# -- D7: retry from the failed task ----------------------------------------------------------


async def task_is(app: perdure.App, run_id: str, task: str, status: str) -> bool:
    """Whether the run's step for ``task`` (of the ``orders`` DAG) has ``status``."""
    steps = await app.handle(run_id).steps()
    return any(s.name == f"orders.{task}" and s.status == status for s in steps)


async def test_retrying_a_failed_dag_run_does_not_run_finished_tasks_again(
    app: perdure.App,
) -> None:
    orders = app.dag("orders")
    calls: Counter[str] = Counter()
    broken = True

    @orders.task()
    async def validate(order: int) -> int:
        calls["validate"] += 1
        return order

    @orders.task(after=[validate])
    async def reserve(validate: int) -> str:
        calls["reserve"] += 1
        return "reserved"

    @orders.task(after=[validate])
    async def charge(validate: int) -> str:
        calls["charge"] += 1
        if broken:
            # Fail only once reserve's result is recorded: it finished before the failure.
            run_id = perdure.info().run_id
            await eventually(lambda: task_is(app, run_id, "reserve", "completed"), what="reserve")
            raise ConnectionError("payment provider unreachable")
        return f"charged {validate}"

    @orders.task(after=[reserve, charge])
    async def ship(reserve: str, charge: str) -> str:
        calls["ship"] += 1
        return f"{reserve}, {charge}, shipped"

    async with app:
        handle = await app.start(orders, 9)
        with pytest.raises(perdure.RunFailed, match="task 'charge'"):
            await handle.result(timeout=30)
        broken = False  # the cause is fixed
        retried = await app.retry(handle.id)
        assert await retried.result(timeout=30) == "reserved, charged 9, shipped"
        steps = {s.name: s for s in await handle.steps()}
    assert calls == {"validate": 1, "reserve": 1, "charge": 2, "ship": 1}
    assert [a.error is None for a in steps["orders.charge"].attempts] == [False, True]


async def test_a_retry_keeps_tasks_that_were_running_when_another_failed(
    app: perdure.App,
) -> None:
    # charge fails while pack and label still run; pack finishes after the failure and
    # label fails after it: one retry brings charge and label back, and pack (done,
    # though recorded after the failure) does not run again.
    orders = app.dag("orders")
    calls: Counter[str] = Counter()
    broken = True

    @orders.task()
    async def charge(order: int) -> str:
        calls["charge"] += 1
        if broken:
            raise perdure.NonRetryableError("card declined")
        return "charged"

    @orders.task()
    async def pack(order: int) -> str:
        calls["pack"] += 1
        run_id = perdure.info().run_id
        await eventually(lambda: task_is(app, run_id, "charge", "failed"), what="charge failed")
        return "packed"

    @orders.task()
    async def label(order: int) -> str:
        calls["label"] += 1
        run_id = perdure.info().run_id
        if broken:
            await eventually(lambda: task_is(app, run_id, "pack", "completed"), what="pack done")
            raise perdure.NonRetryableError("printer offline")
        return "labelled"

    @orders.task(after=[charge, pack, label])
    async def ship(charge: str, pack: str, label: str) -> str:
        return f"{charge}, {pack}, {label}"

    async with app:
        handle = await app.start(orders, 1)
        with pytest.raises(perdure.RunFailed, match="task 'charge'"):
            await handle.result(timeout=30)
        broken = False
        retried = await app.retry(handle.id)
        assert await retried.result(timeout=30) == "charged, packed, labelled"
    assert calls == {"charge": 2, "pack": 1, "label": 2}


async def test_dag_runs_are_paused_resumed_forked_and_cancelled_like_any_run(
    app: perdure.App,
) -> None:
    orders = app.dag("orders")
    calls: Counter[str] = Counter()
    go = asyncio.Event()

    @orders.task()
    async def validate(order: int) -> int:
        calls["validate"] += 1
        return order

    @orders.task(after=[validate])
    async def pack(validate: int) -> str:
        calls["pack"] += 1
        await go.wait()
        return f"packed {validate}"

    @orders.task(after=[pack])
    async def ship(pack: str) -> str:
        calls["ship"] += 1
        return f"{pack}, shipped"

    async with app:
        handle = await app.start(orders, 1)
        await eventually(lambda: calls["pack"] == 1, what="pack to start")
        assert await app.pause(handle.id, "hold the truck")
        go.set()  # pack finishes while the run is paused: ship does not start
        await eventually(lambda: task_is(app, handle.id, "pack", "completed"), what="pack")
        assert (await handle.info()).status is perdure.RunStatus.PAUSED and calls["ship"] == 0
        assert await app.resume(handle.id)
        assert await handle.result(timeout=30) == "packed 1, shipped"

        # A fork from ship's position reuses validate and pack, and runs ship again.
        [ship_step] = [s for s in await handle.steps() if s.name == "orders.ship"]
        forked = await app.fork(handle.id, from_step=ship_step.position)
        assert await forked.result(timeout=30) == "packed 1, shipped"
        assert calls == {"validate": 1, "pack": 1, "ship": 2}

        go.clear()
        stuck = await app.start(orders, 2)
        await eventually(lambda: calls["pack"] == 2, what="the second pack to start")
        await stuck.cancel("customer called")
        with pytest.raises(perdure.RunCancelled):
            await stuck.result(timeout=30)
        go.set()
    assert calls["ship"] == 2  # the cancelled run shipped nothing


# -- definitions as data ---------------------------------------------------------------------


def numbers(app: perdure.App) -> Dag:
    numbers = app.dag("numbers")
    numbers.task()(dagapp.parse)
    numbers.task(after="parse", retry=FAST, timeout=5)(dagapp.square)
    numbers.task(after="parse")(dagapp.negate)
    numbers.task(after=["square", "negate"])(dagapp.total)
    return numbers


def test_describe_is_json_ready_data(app: perdure.App) -> None:
    described = numbers(app).describe()
    assert json.loads(json.dumps(described)) == described
    assert described == {
        "name": "numbers",
        "queue": None,
        "timeout": None,
        "tasks": [
            {
                "name": "parse",
                "function": "dagapp:parse",
                "after": [],
                "on_failure": [],
                "retry": None,
                "timeout": None,
            },
            {
                "name": "square",
                "function": "dagapp:square",
                "after": ["parse"],
                "on_failure": [],
                "retry": {
                    "max_attempts": 3,
                    "initial_interval": 0.01,
                    "backoff": 1.0,
                    "max_interval": 60.0,
                    "non_retryable": [],
                },
                "timeout": 5.0,
            },
            {
                "name": "negate",
                "function": "dagapp:negate",
                "after": ["parse"],
                "on_failure": [],
                "retry": None,
                "timeout": None,
            },
            {
                "name": "total",
                "function": "dagapp:total",
                "after": ["square", "negate"],
                "on_failure": [],
                "retry": None,
                "timeout": None,
            },
        ],
        "edges": [
            {"from": "parse", "to": "square", "kind": "after"},
            {"from": "parse", "to": "negate", "kind": "after"},
            {"from": "square", "to": "total", "kind": "after"},
            {"from": "negate", "to": "total", "kind": "after"},
        ],
        "inputs": ["text"],
        "sinks": ["total"],
    }


def test_mermaid_draws_the_dag(app: perdure.App) -> None:
    orders = app.dag("orders")

    @orders.task()
    async def validate(order: int) -> int:
        return order

    @orders.task(after=validate, retry=perdure.Retry(max_attempts=3))
    async def check_inventory(validate: int) -> bool:
        return True

    @orders.task(after=validate, on_failure=["refund"], timeout=30)
    async def process_payment(validate: int) -> str:
        return "paid"

    @orders.task()
    async def refund(process_payment: perdure.ErrorInfo) -> None:
        return None

    @orders.task(after=[check_inventory, process_payment])
    async def end(check_inventory: bool, process_payment: str) -> str:
        return "done"

    assert orders.mermaid() == (
        "flowchart TD\n"
        "    %% DAG orders\n"
        '    validate["validate"]\n'
        '    check_inventory["check_inventory<br/>up to 3 attempts"]\n'
        '    process_payment["process_payment<br/>timeout 30s"]\n'
        '    refund("refund")\n'
        '    end_["end"]\n'
        "    validate --> check_inventory\n"
        "    validate --> process_payment\n"
        "    check_inventory --> end_\n"
        "    process_payment --> end_\n"
        "    process_payment -. on failure .-> refund\n"
    )


NUMBERS = {
    "name": "numbers",
    "tasks": [
        {"name": "parse", "function": "dagapp:parse"},
        {
            "name": "square",
            "function": "dagapp:square",
            "after": ["parse"],
            "retry": {"max_attempts": 3, "initial_interval": 0.01},
        },
        {"name": "negate", "function": "dagapp:negate", "after": ["parse"]},
        {"name": "total", "function": "dagapp:total", "after": ["square", "negate"]},
    ],
}

YAML = """
name: numbers
tasks:
  - name: parse
    function: dagapp:parse
  - name: square
    function: dagapp:square
    after: [parse]
    retry: {max_attempts: 3, initial_interval: 0.01}
  - name: negate
    function: dagapp:negate
    after: [parse]
  - name: total
    function: dagapp:total
    after: [square, negate]
"""


@pytest.mark.parametrize("form", ["dict", "described", "json", "yaml", "yaml_file"])
async def test_a_definition_loaded_from_data_runs(
    app: perdure.App, form: str, tmp_path: Path
) -> None:
    definition: Any = NUMBERS
    if form == "described":
        definition = numbers(perdure.App("memory://")).describe()
    elif form == "json":
        definition = json.dumps(NUMBERS)
    elif form.startswith("yaml"):
        yaml = pytest.importorskip("yaml")
        assert yaml.safe_load(YAML) == NUMBERS
        definition = YAML
        if form == "yaml_file":
            definition = tmp_path / "numbers.yaml"
            definition.write_text(YAML)
    loaded = Dag.load(app, definition)
    assert [t["after"] for t in loaded.describe()["tasks"]] == [
        [],
        ["parse"],
        ["parse"],
        ["square", "negate"],
    ]
    async with app:
        assert await (await app.start(loaded, "7")).result(timeout=30) == 49 - 7


async def test_a_definition_can_name_steps_registered_on_the_app(app: perdure.App) -> None:
    @app.step()
    async def fetch(url: str) -> str:
        return f"<{url}>"

    @app.step(name="size")
    def measure(fetch: str) -> int:
        return len(fetch)

    loaded = Dag.load(
        app,
        {
            "name": "crawl",
            "tasks": [
                {"name": "fetch"},
                {"name": "length", "function": "size", "after": ["fetch"]},
            ],
        },
    )
    async with app:
        assert await (await app.start(loaded, "ab")).result(timeout=30) == 4


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"name": "x"}, r"a DAG definition needs 'name' and 'tasks'"),
        ({"name": "x", "tasks": [], "steps": []}, r"unknown key\(s\) 'steps'"),
        ({"name": "x", "tasks": [{"name": "a", "function": "nowhere"}]}, r"no step of that name"),
        ({"name": "x", "tasks": [{"name": "a", "function": "dagapp:gone"}]}, r"cannot import"),
        (
            {
                "name": "x",
                "tasks": [
                    {"name": "parse", "function": "dagapp:parse", "after": ["total"]},
                    {"name": "total", "function": "dagapp:parse", "after": ["parse"]},
                ],
            },
            r"DAG 'x' has a cycle: parse -> total -> parse",
        ),
        (
            {"name": "x", "tasks": [{"name": "a", "function": "dagapp:parse", "after": ["b"]}]},
            r"runs after 'b', which is not a task",
        ),
        ("{not json", r"not valid JSON"),
    ],
)
def test_a_bad_definition_is_rejected_and_registers_nothing(
    app: perdure.App, definition: Any, message: str
) -> None:
    with pytest.raises(perdure.DagError, match=message):
        Dag.load(app, definition)
    assert app.workflows == {} and app.steps == {}


def test_yaml_without_pyyaml_names_the_extra(
    app: perdure.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if it were not installed
    with pytest.raises(perdure.ConfigurationError, match=r"pip install 'perdure\[yaml\]'"):
        Dag.load(app, YAML)


# -- D6: a worker process killed in the middle of a DAG ---------------------------------------


@pytest.mark.slow
async def test_a_worker_killed_mid_dag_leaves_finished_tasks_done(
    client: perdure.App, shared_url: str, tmp_path: Path
) -> None:
    """D6: validate and reserve are recorded, charge is running when the worker is
    killed (SIGKILL); the next worker runs charge again and then ship, and nothing else."""
    handle = await client.start("orders", {"amount": 12}, id="mid-dag")
    first = dagapp.spawn_worker(shared_url, tmp_path)
    workers = [first]
    try:

        async def reserve_recorded() -> bool:
            names = {s.name for s in await handle.steps() if s.status == "completed"}
            return {"orders.validate", "orders.reserve"} <= names

        await eventually(lambda: ("charge", first.pid) in dagapp.ran(tmp_path), what="charge")
        await eventually(reserve_recorded, what="validate and reserve to be recorded")
        first.kill()
        first.wait(timeout=10)

        second = dagapp.spawn_worker(shared_url, tmp_path)
        workers.append(second)
        (tmp_path / dagapp.GATE).touch()
        assert await handle.result(timeout=60) == "reserved 12, charged 12, shipped"
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=10)
    ran = dagapp.ran(tmp_path)
    assert Counter(task for task, _ in ran) == {"validate": 1, "reserve": 1, "charge": 2, "ship": 1}
    assert {pid for task, pid in ran if task in ("validate", "reserve")} == {first.pid}
    # charge was cut short by the kill; the second worker ran it again, then ship.
    assert [pid for task, pid in ran if task in ("charge", "ship")] == [
        first.pid,
        second.pid,
        second.pid,
    ]
