"""The HTTP API through a real server (scenario F1): definitions, starting, reading,
listing with filters and pages, messages, cancel, pause, resume, terminate, retry, fork,
journal, steps, logs and delete, each with its status codes; unknown runs are 404, bad
input is a 400 that says what is wrong, conflicts are 409s."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpkit import (
    CLOSED,
    SERVER_BACKENDS,
    build_app,
    client,
    run_path,
    running_server,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)

RUN_FIELDS = {
    "id",
    "workflow",
    "status",
    "created_at",
    "started_at",
    "finished_at",
    "parent_id",
    "key",
    "queue",
    "priority",
    "recoveries",
    "generation",
    "journal_len",
    "version",
    "waiting_for",
    "error",
}


@pytest.fixture(params=SERVER_BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def api(url: str, tmp_path: Path) -> Iterator[httpx.Client]:
    with running_server(build_app(url, tmp_path)) as base, client(base) as http:
        yield http


def start(api: httpx.Client, workflow: str, *args: Any, **options: Any) -> Any:
    answer = api.post("/runs", json={"workflow": workflow, "args": list(args), **options})
    assert answer.status_code == 201, answer.text
    return answer.json()


def refused(answer: httpx.Response, status: int, code: str, *words: str) -> str:
    """Assert the error answer; its message."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert error["code"] == code, error
    for word in words:
        assert word in error["message"], error["message"]
    return str(error["message"])


def poll(check: Any, within: float = 30.0) -> Any:
    """Call ``check`` until it returns something truthy; that value."""
    deadline = time.monotonic() + within
    while not (found := check()):
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.02)
    return found


# -- definitions ---------------------------------------------------------------------------


def test_definitions_are_listed_and_graphs_come_with_a_single_get(api: httpx.Client) -> None:
    answer = api.get("/definitions")
    assert answer.status_code == 200
    kinds = {d["name"]: d["kind"] for d in answer.json()["definitions"]}
    assert kinds == {
        "greet": "workflow",
        "ship": "workflow",
        "approval": "workflow",
        "nap": "workflow",
        "family": "workflow",
        "checkout": "dag",
        "signup": "state_machine",
    }
    greet = api.get("/definitions/greet").json()
    assert greet["parameters"] == ["name"] and "mermaid" not in greet
    dag = api.get("/definitions/checkout").json()
    assert dag["edges"] == [{"from": "total", "to": "receipt", "kind": "after"}]
    assert dag["mermaid"].startswith("flowchart TD")
    machine = api.get("/definitions/signup").json()
    assert machine["mermaid"].startswith("stateDiagram-v2")
    assert {t["from"] + ">" + t["to"] for t in machine["transitions"]} == {"NEW>ACTIVE"}
    refused(api.get("/definitions/nope"), 404, "definition_not_found", "'nope'", "greet")


# -- starting and reading ------------------------------------------------------------------


def test_a_started_run_is_read_back_with_its_result_input_steps_logs_and_journal(
    api: httpx.Client,
) -> None:
    run = start(api, "greet", "ann", id="greet-ann", key="customer-7")
    assert set(run) == RUN_FIELDS | {"result", "input"}
    assert run["id"] == "greet-ann" and run["key"] == "customer-7"
    assert run["input"] == {"args": ["ann"], "kwargs": {}}
    done = wait_for(api, "greet-ann", "completed")
    assert done["result"] == "hello ann"
    assert done["error"] is None and done["finished_at"].endswith("Z")

    steps = api.get(run_path("greet-ann", "steps")).json()["steps"]
    assert [(s["position"], s["name"], s["status"], s["attempts"]) for s in steps] == [
        (0, "hello", "completed", 1)
    ]
    assert steps[0]["output"] == "hello ann"
    assert steps[0]["input"] == {"args": ["ann"], "kwargs": {}}
    assert steps[0]["attempt_details"][0]["logs"][0]["message"] == "greeting ann"

    logs = api.get(run_path("greet-ann", "logs")).json()["logs"]
    assert [(line["level"], line["message"], line["step"]) for line in logs] == [
        ("INFO", "greeting ann", "hello")
    ]
    entries = api.get(run_path("greet-ann", "journal")).json()["entries"]
    assert [e["seq"] for e in entries] == list(range(len(entries)))
    step_entry = next(e for e in entries if e["kind"] == "step")
    assert (step_entry["position"], step_entry["name"], step_entry["value"]) == (
        0,
        "hello",
        "hello ann",
    )


def test_a_start_is_idempotent_by_id_and_the_id_policy_decides_the_rest(
    api: httpx.Client,
) -> None:
    first = start(api, "greet", "bob", id="g-1")
    wait_for(api, "g-1", "completed")
    again = api.post("/runs", json={"workflow": "greet", "args": ["someone else"], "id": "g-1"})
    assert again.status_code == 200, again.text  # the existing run, unchanged
    assert again.json()["created_at"] == first["created_at"]
    assert again.json()["input"] == {"args": ["bob"], "kwargs": {}}
    body = {"workflow": "greet", "args": ["x"], "id": "g-1", "id_policy": "reject"}
    refused(api.post("/runs", json=body), 409, "run_exists", "'g-1'")
    body = {"workflow": "nap", "args": [1], "id": "g-1"}
    refused(api.post("/runs", json=body), 409, "run_conflict", "'greet'")
    # A completed run is not failed: replace_failed leaves it; replace_ended replaces it.
    body = {"workflow": "greet", "args": ["carl"], "id": "g-1", "id_policy": "replace_failed"}
    assert api.post("/runs", json=body).status_code == 200
    body["id_policy"] = "replace_ended"
    replaced = api.post("/runs", json=body)
    assert replaced.status_code == 201, replaced.text
    assert wait_for(api, "g-1", "completed")["result"] == "hello carl"


def test_start_options_reach_the_run(api: httpx.Client) -> None:
    run = start(api, "ship", {"sku": "lamp", "quantity": 2}, key="order-9", priority=7)
    assert (run["queue"], run["priority"], run["key"]) == ("billing", 7, "order-9")
    assert wait_for(api, run["id"], "completed")["result"] == "hello lamp; reserved 2 x lamp"
    later = start(api, "greet", "dora", delay=3600, id="later")
    assert later["status"] == "pending" and later["started_at"] is None
    start(api, "nap", 3600, id="nap-a", dedup_key="one-nap")
    body = {"workflow": "nap", "args": [1], "id": "nap-b", "dedup_key": "one-nap"}
    refused(api.post("/runs", json=body), 409, "deduplicated", "'one-nap'", "'nap-a'")
    refused(api.get(run_path("nap-b")), 404, "run_not_found")


def test_bad_starts_are_refused_with_a_message_saying_what_to_fix(api: httpx.Client) -> None:
    def post(body: Any, **options: Any) -> httpx.Response:
        return api.post("/runs", json=body, **options)

    refused(
        post({"workflow": "greet", "args": ["a"], "colour": "red"}),
        400,
        "bad_request",
        "unknown field 'colour'",
    )
    refused(post({"args": []}), 400, "bad_request", "'workflow' is required")
    refused(post(["greet"]), 400, "bad_request", "must be a JSON object")
    body = {"workflow": "greet", "kwargs": {"name": "a", "key": "b"}}
    refused(post(body), 400, "invalid_arguments", "'key' is a parameter of start()")
    refused(post({"workflow": "nope"}), 404, "definition_not_found", "'nope'")
    refused(
        post({"workflow": "greet"}), 400, "invalid_arguments", "missing a required argument: 'name'"
    )
    refused(
        post({"workflow": "greet", "args": ["a", "b"]}),
        400,
        "invalid_arguments",
        "too many positional arguments",
    )
    refused(
        post({"workflow": "greet", "kwargs": {"name": "a", "nom": "b"}}),
        400,
        "invalid_arguments",
        "'nom'",
    )
    refused(
        post({"workflow": "ship", "args": [{"sku": ["not", "text"]}]}),
        400,
        "invalid_arguments",
        "parameter 'order'",
        "sku",
    )
    refused(
        post({"workflow": "ship", "args": [{"quantity": 1}]}),
        400,
        "invalid_arguments",
        "parameter 'order'",
        "sku",
    )
    refused(
        post({"workflow": "greet", "args": "ann"}), 400, "bad_request", "'args' must be an array"
    )
    refused(
        post({"workflow": "greet", "args": ["a"], "priority": 10**7}),
        400,
        "bad_request",
        "'priority'",
    )
    refused(
        post({"workflow": "greet", "args": ["a"], "priority": True}),
        400,
        "bad_request",
        "'priority'",
    )
    refused(post({"workflow": "greet", "args": ["a"], "delay": -1}), 400, "bad_request", "'delay'")
    refused(
        post({"workflow": "greet", "args": ["a"], "id_policy": "maybe"}),
        400,
        "bad_request",
        "'id_policy'",
        "use_existing",
    )
    refused(
        post({"workflow": "greet", "args": ["a"], "queue": "elsewhere"}),
        400,
        "bad_request",
        "'elsewhere' is not declared",
    )
    refused(
        post({"workflow": "greet", "args": ["a"], "id": "x" * 201}), 400, "bad_request", "too long"
    )
    refused(
        post({"workflow": "greet", "args": ["a"], "key": "a\u0000b"}), 400, "bad_request", "NUL"
    )
    refused(
        post({"workflow": "signup", "kwargs": {"record": {}}}),
        400,
        "bad_request",
        "'key' is required",
    )
    raw = {"headers": {"Content-Type": "application/json"}}
    refused(api.post("/runs", content=b"{not json", **raw), 400, "bad_request", "not valid JSON")
    refused(api.post("/runs", content=b'{"workflow": NaN}', **raw), 400, "bad_request", "NaN")
    refused(
        api.post("/runs", content=b'{"workflow": "greet", "args": ["\\ud800"]}', **raw),
        400,
        "bad_request",
        "surrogate",
    )
    refused(
        api.post("/runs", content=b'{"workflow": "greet", "args": [1e999]}', **raw),
        400,
        "bad_request",
        "too large",
    )
    refused(
        api.post("/runs", content=b"[" * 200 + b"]" * 200, **raw),
        400,
        "bad_request",
        "nests too deeply",
    )
    refused(
        api.post("/runs", content=b'{"workflow": "greet"}', headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
        "application/json",
    )
    big = {"workflow": "greet", "args": ["x" * (1 << 20)]}
    refused(post(big), 413, "payload_too_large")
    refused(api.put("/runs", json={}), 405, "method_not_allowed", "GET, POST")
    assert api.put("/runs", json={}).headers["allow"] == "GET, POST"
    assert api.get("/runs").json()["runs"] == []  # nothing was started by any of them


def test_a_state_machine_starts_with_its_key_and_record(api: httpx.Client) -> None:
    run = start(api, "signup", key="user-1", kwargs={"record": {"email": "a@example.com"}})
    assert run["key"] == "user-1"
    done = wait_for(api, run["id"], "completed")
    assert done["result"] == {"email": "a@example.com", "active": True}
    body = {"workflow": "signup", "key": "user-2", "kwargs": {"record": [1, 2]}}
    refused(api.post("/runs", json=body), 400, "invalid_arguments", "record")


# -- listing -------------------------------------------------------------------------------


def test_runs_are_listed_newest_first_with_filters_and_cursor_pages(api: httpx.Client) -> None:
    ids = [start(api, "greet", f"n{i}", id=f"g{i}", key="k1")["id"] for i in range(5)]
    others = [start(api, "greet", f"m{i}", id=f"h{i}", key="k2")["id"] for i in range(2)]
    start(api, "nap", 3600, id="napper")
    for run_id in ids + others:
        wait_for(api, run_id, "completed")

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query: dict[str, Any] = {"workflow": "greet", "limit": 2}
        if cursor:
            query["cursor"] = cursor
        page = api.get("/runs", params=query).json()
        assert len(page["runs"]) <= 2
        seen += [run["id"] for run in page["runs"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids + others)) and pages == 4

    def listed(**query: Any) -> list[str]:
        answer = api.get("/runs", params=query)
        assert answer.status_code == 200, answer.text
        return [run["id"] for run in answer.json()["runs"]]

    assert listed(key="k2") == ["h1", "h0"]
    assert listed(workflow="nap") == ["napper"]
    assert set(listed(status="completed")) == set(ids + others)
    assert listed(status="failed") == []
    # Between g1 and g2 (timestamps are shown to the microsecond).
    g1, g2 = (
        datetime.fromisoformat(api.get(run_path(r)).json()["created_at"]) for r in ("g1", "g2")
    )
    between = (g1 + (g2 - g1) / 2).isoformat()
    assert listed(workflow="greet", created_before=between) == ["g1", "g0"]
    assert listed(workflow="greet", created_after=between)[-1] == "g2"
    assert listed(created_after="2999-01-01T00:00:00Z") == []

    counts = api.get("/runs/counts", params={"workflow": "greet"}).json()["counts"]
    assert counts["completed"] == 7 and sum(counts.values()) == 7
    assert set(counts) == {
        "pending",
        "running",
        "completed",
        "failed",
        "cancelled",
        "held",
        "paused",
        "terminated",
        "dead_letter",
    }
    assert api.get("/runs/counts", params={"key": "k2"}).json()["counts"]["completed"] == 2

    refused(api.get("/runs", params={"colour": "red"}), 400, "bad_request", "'colour'")
    refused(api.get("/runs", params={"status": "done"}), 400, "unknown_status", "completed")
    refused(api.get("/runs", params={"limit": 0}), 400, "bad_request", "'limit'", "500")
    refused(api.get("/runs", params={"limit": 501}), 400, "bad_request", "'limit'")
    refused(api.get("/runs", params={"limit": "many"}), 400, "bad_request", "'limit'")
    refused(api.get("/runs", params={"created_after": "yesterday"}), 400, "bad_request", "ISO-8601")
    refused(api.get("/runs", params={"cursor": "not-a-cursor"}), 400, "bad_request", "cursor")
    refused(api.get("/runs?key=a&key=b"), 400, "bad_request", "twice")
    refused(api.get("/runs/counts", params={"status": "completed"}), 400, "bad_request", "'status'")


def test_children_are_listed_by_parent(api: httpx.Client) -> None:
    start(api, "family", 2, id="parent")
    done = wait_for(api, "parent", "completed")
    assert done["result"] == ["hello child 0", "hello child 1"]
    children = api.get(run_path("parent", "children")).json()["runs"]
    assert len(children) == 2
    assert {c["parent_id"] for c in children} == {"parent"}
    listed = api.get("/runs", params={"parent": "parent"}).json()["runs"]
    assert {c["id"] for c in listed} == {c["id"] for c in children}


# -- messages and events ---------------------------------------------------------------------


def test_a_message_is_delivered_once_per_key_and_events_are_read(api: httpx.Client) -> None:
    start(api, "approval", "refund 12", id="appr")
    refused(api.get(run_path("appr", "events", "verdict")), 404, "event_not_found", "'verdict'")
    state = poll(lambda: api.get(run_path("appr", "events", "state")).status_code == 200)
    assert state
    assert api.get(run_path("appr", "events", "state")).json() == {
        "key": "state",
        "value": "waiting",
    }
    message = {"topic": "decision", "message": "approved", "key": "d-1"}
    sent = api.post(run_path("appr", "messages"), json=message)
    assert sent.status_code == 202 and sent.json() == {"accepted": True}
    again = api.post(run_path("appr", "messages"), json={**message, "message": "rejected"})
    assert again.status_code == 202 and again.json() == {"accepted": False}
    assert wait_for(api, "appr", "completed")["result"] == "refund 12: approved"
    assert api.get(run_path("appr", "events", "state")).json()["value"] == "approved"
    refused(
        api.post(run_path("appr", "messages"), json={"message": 1}), 400, "bad_request", "topic"
    )
    refused(api.post(run_path("nobody", "messages"), json={"topic": None}), 404, "run_not_found")


# -- operating runs --------------------------------------------------------------------------


def test_pause_resume_cancel_terminate_and_delete_with_their_status_codes(
    api: httpx.Client,
) -> None:
    def act(run_id: str, action: str, **body: Any) -> httpx.Response:
        return api.post(run_path(run_id, action), json=body or None)

    start(api, "nap", 3600, id="nap-1")
    wait_for(api, "nap-1", "running")
    paused = act("nap-1", "pause", reason="maintenance")
    assert paused.status_code == 200, paused.text
    assert paused.json()["changed"] is True and paused.json()["run"]["status"] == "paused"
    assert act("nap-1", "pause").json()["changed"] is False
    resumed = act("nap-1", "resume")
    assert resumed.json()["changed"] is True and resumed.json()["run"]["status"] == "running"
    refused(api.delete(run_path("nap-1")), 409, "run_state", "running", "cancel")
    cancelled = act("nap-1", "cancel", reason="not needed")
    assert cancelled.status_code == 200 and cancelled.json()["changed"] is True
    done = wait_for(api, "nap-1", "cancelled")
    assert "not needed" in done["error"]["message"]
    assert act("nap-1", "cancel").json()["changed"] is False
    refused(act("nap-1", "pause"), 409, "run_state", "cancelled")

    start(api, "nap", 3600, id="nap-2")
    wait_for(api, "nap-2", "running")
    ended = act("nap-2", "terminate", reason="duplicate")
    assert ended.json()["changed"] is True and ended.json()["run"]["status"] == "terminated"
    assert act("nap-2", "terminate").json()["changed"] is False

    deleted = api.delete(run_path("nap-1"))
    assert deleted.status_code == 200 and deleted.json() == {"deleted": True}
    refused(api.get(run_path("nap-1")), 404, "run_not_found", "'nap-1'")
    refused(act("nap-1", "retry"), 404, "run_not_found")
    refused(act("nap-2", "cancel", reason=7), 400, "bad_request", "'reason'")
    refused(act("nap-2", "cancel", why="x"), 400, "bad_request", "unknown field 'why'")


def test_a_failed_run_retried_after_the_cause_is_fixed_completes(
    api: httpx.Client, tmp_path: Path
) -> None:
    (tmp_path / CLOSED).touch()
    start(api, "ship", {"sku": "desk"}, id="desk")
    failed = wait_for(api, "desk", "failed")
    assert failed["error"]["type"] == "RuntimeError"
    assert failed["error"]["message"] == "the warehouse is closed"
    assert "Traceback" in failed["error"]["traceback"]
    steps = api.get(run_path("desk", "steps")).json()["steps"]
    assert [(s["name"], s["status"]) for s in steps] == [
        ("hello", "completed"),
        ("reserve", "failed"),
    ]
    assert steps[1]["error"]["message"] == "the warehouse is closed"

    (tmp_path / CLOSED).unlink()
    retried = api.post(run_path("desk", "retry"), json={"reason": "the warehouse reopened"})
    assert retried.status_code == 200, retried.text
    assert retried.json()["changed"] is True
    done = wait_for(api, "desk", "completed")
    assert done["result"] == "hello desk; reserved 1 x desk"
    controls = [
        e for e in api.get(run_path("desk", "journal")).json()["entries"] if e["kind"] == "control"
    ]
    assert controls[-1]["name"] == "retry"
    assert controls[-1]["detail"]["reason"] == "the warehouse reopened"
    refused(api.post(run_path("desk", "retry")), 409, "run_state", "completed", "fork")


def test_a_fork_reuses_the_steps_before_its_position(api: httpx.Client) -> None:
    start(api, "ship", {"sku": "rug"}, id="rug")
    wait_for(api, "rug", "completed")
    forked = api.post(run_path("rug", "fork"), json={"from_step": 1, "id": "rug-again"})
    assert forked.status_code == 201, forked.text
    assert forked.json()["id"] == "rug-again" and forked.json()["workflow"] == "ship"
    assert wait_for(api, "rug-again", "completed")["result"] == "hello rug; reserved 1 x rug"
    entries = api.get(run_path("rug-again", "journal")).json()["entries"]
    assert entries[0]["kind"] == "step" and entries[0]["position"] == 0
    fork = next(e for e in entries if e["kind"] == "control" and e["name"] == "fork")
    assert "forked from 'rug' at position 1" in fork["detail"]["reason"]
    refused(
        api.post(run_path("rug", "fork"), json={"from_step": 0, "id": "rug-again"}),
        409,
        "run_exists",
        "'rug-again'",
    )
    refused(api.post(run_path("rug", "fork"), json={}), 400, "bad_request", "'from_step'")
    refused(api.post(run_path("rug", "fork"), json={"from_step": -1}), 400, "bad_request")
    refused(api.post(run_path("nope", "fork"), json={"from_step": 0}), 404, "run_not_found")


def test_an_unknown_run_is_a_404_on_every_route(api: httpx.Client) -> None:
    for rest in ("", "journal", "steps", "logs", "children", "events/x"):
        refused(api.get(run_path("ghost", *([rest] if rest else []))), 404, "run_not_found")
    for action in ("cancel", "pause", "resume", "terminate", "retry"):
        refused(api.post(run_path("ghost", action)), 404, "run_not_found", "'ghost'")
    refused(api.delete(run_path("ghost")), 404, "run_not_found")
    refused(api.get("/runs/a%00b"), 404, "run_not_found")
    refused(api.get("/nothing/here"), 404, "not_found", "openapi.json")


def test_run_ids_may_hold_slashes_spaces_and_any_letter(api: httpx.Client) -> None:
    odd = "orders/2026 ü?#%"
    start(api, "greet", "odd", id=odd)
    assert wait_for(api, odd, "completed")["id"] == odd
    assert api.get(run_path(odd, "steps")).json()["steps"][0]["output"] == "hello odd"


def test_workers_queues_whoami_and_health(api: httpx.Client) -> None:
    workers = poll(lambda: api.get("/workers").json()["workers"])
    assert "greet" in workers[0]["workflows"] and workers[0]["concurrency"] > 0
    queues = {q["name"]: q for q in api.get("/queues").json()["queues"]}
    assert queues["billing"]["concurrency"] == 5
    assert set(queues) == {"default", "billing"}
    assert queues["default"]["counts"]["completed"] == 0
    assert api.get("/whoami").json() == {"scope": "admin", "auth": True}
    assert api.get("/health").json() == {"status": "ok", "version": "0.1.0"}


# -- schedules -----------------------------------------------------------------------------


def test_schedules_are_created_read_paused_triggered_backfilled_and_deleted(
    api: httpx.Client,
) -> None:
    spec = {"workflow": "greet", "cron": "0 9 * * mon-fri", "id": "daily", "args": ["ada"]}
    made = api.post("/schedules", json={**spec, "tz": "Europe/Paris"})
    assert made.status_code == 201, made.text
    assert made.json()["id"] == "daily" and made.json()["tz"] == "Europe/Paris"
    refused(api.post("/schedules", json=spec), 409, "schedule_exists", "delete it first")
    # A worker takes the schedule up and says when it fires next (9:00 Paris time).
    found = poll(lambda: api.get("/schedules/daily").json()["next_at"])
    assert datetime.fromisoformat(found).hour in (7, 8)  # 9:00 CET/CEST in UTC
    assert [s["id"] for s in api.get("/schedules").json()["schedules"]] == ["daily"]

    paused = api.post("/schedules/daily/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["changed"] is True and paused.json()["schedule"]["paused"] is True
    assert api.post("/schedules/daily/pause").json()["changed"] is False
    assert api.post("/schedules/daily/resume").json()["schedule"]["paused"] is False

    at = "2026-01-05T08:00:00Z"
    run = api.post("/schedules/daily/trigger", json={"at": at})
    assert run.status_code == 201, run.text
    assert run.json()["id"] == "daily@2026-01-05T08:00:00Z"
    assert wait_for(api, run.json()["id"], "completed")["id"] == run.json()["id"]
    assert api.post("/schedules/daily/trigger", json={"at": at}).json()["id"] == run.json()["id"]

    window = {"start": "2026-01-05T00:00:00Z", "end": "2026-01-09T23:00:00Z"}
    filled = api.post("/schedules/daily/backfill", json=window)
    assert filled.status_code == 200, filled.text
    days = [f"daily@2026-01-{d:02}T08:00:00Z" for d in range(5, 10)]
    assert filled.json() == {"runs": days}
    assert api.post("/schedules/daily/backfill", json=window).json() == {"runs": days}
    for run_id in days:
        wait_for(api, run_id, "completed")

    deleted = api.delete("/schedules/daily")
    assert deleted.status_code == 200 and deleted.json() == {"deleted": True}
    refused(api.get("/schedules/daily"), 404, "schedule_not_found", "'daily'")
    assert api.get("/schedules").json() == {"schedules": []}
    assert api.get(run_path(days[0])).status_code == 200  # its runs are kept


def test_a_schedule_fires_on_its_own_and_bad_specs_store_nothing(api: httpx.Client) -> None:
    bad = [
        ({"workflow": "greet", "cron": "61 * * * *", "args": ["x"]}, "bad_request", "bad cron"),
        ({"workflow": "greet", "cron": "* * *", "args": ["x"]}, "bad_request", "5 fields"),
        ({"workflow": "greet", "cron": "@every 5", "args": ["x"]}, "bad_request", "@every"),
        (
            {"workflow": "greet", "cron": "@daily", "tz": "Nowhere/Land", "args": ["x"]},
            "bad_request",
            "unknown time zone",
        ),
        ({"workflow": "nope", "cron": "@daily"}, "bad_request", "no workflow named"),
        ({"workflow": "greet", "cron": "@daily", "args": [1]}, "invalid_arguments", "name"),
        ({"workflow": "greet", "cron": "@daily"}, "invalid_arguments", "name"),
        ({"workflow": "greet", "cron": "@daily", "overlap": "no"}, "bad_request", "overlap"),
        ({"workflow": "greet"}, "bad_request", "'cron' is required"),
    ]
    for body, code, words in bad:
        refused(api.post("/schedules", json=body), 400, code, words)
    assert api.get("/schedules").json() == {"schedules": []}
    for route in ("", "/pause", "/resume", "/trigger"):
        method = api.get if route == "" else api.post
        refused(method(f"/schedules/ghost{route}"), 404, "schedule_not_found")
    window = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}
    refused(api.post("/schedules/ghost/backfill", json=window), 404, "schedule_not_found")
    refused(api.delete("/schedules/ghost"), 404, "schedule_not_found")

    made = api.post("/schedules", json={"workflow": "greet", "cron": "@every 1s", "args": ["t"]})
    assert made.status_code == 201, made.text
    first = poll(lambda: api.get("/schedules/greet").json()["last_run"])
    assert first.startswith("greet@")
    assert wait_for(api, first, "completed")["workflow"] == "greet"
    assert api.delete("/schedules/greet").status_code == 200
