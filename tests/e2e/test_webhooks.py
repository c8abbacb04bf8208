"""Webhook triggers through a real server (scenario F2): a signed POST starts the
mapped workflow, once per delivery; a bad signature is a 401 and starts nothing; a
request no parser takes is a 200 saying so; a parser's Send reaches a waiting run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpkit import SERVER_BACKENDS, client, run_path, running_server, wait_for

import perdure
from perdure.errors import RegistrationError
from perdure.webhooks import (
    Send,
    Start,
    WebhookInvalid,
    WebhookRequest,
    github,
    json_body,
    sign,
)

pytestmark = pytest.mark.timeout(120)
SECRET = "it-is-a-secret"


def hooked_app(url: str) -> perdure.App:
    app = perdure.App(url, lease_ttl=5.0, poll_interval=0.05)

    @app.workflow()
    async def on_push(payload: dict[str, Any]) -> str:
        return f"pushed {payload['ref']}"

    @app.workflow()
    async def on_issue(payload: dict[str, Any]) -> str:
        return f"issue {payload['action']}"

    @app.workflow()
    async def subscribe(email: str, plan: str = "free") -> str:
        return f"{email} on {plan}"

    @app.workflow()
    async def approval(request: str) -> str:
        return f"{request}: {await perdure.receive('decision')}"

    def decisions(request: WebhookRequest) -> Send | None:
        body = request.json()
        if not isinstance(body, dict) or "run" not in body:
            return None
        return Send(body["run"], "decision", body.get("decision"), key=body.get("id"))

    app.webhook(
        "github",
        github(SECRET, {"push": "on_push", "issues": "on_issue"}, key=lambda p: p["repo"]),
    )
    app.webhook(
        "forms",
        json_body(
            "subscribe",
            spread=True,
            id_header="X-Request-Id",
            id_prefix="form-",
            match=lambda body: isinstance(body, dict) and "email" in body,
        ),
    )
    app.webhook("decisions", decisions)
    return app


@pytest.fixture(params=SERVER_BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(url: str) -> Iterator[str]:
    with running_server(hooked_app(url)) as base:
        yield base


@pytest.fixture
def api(server: str) -> Iterator[httpx.Client]:
    with client(server) as http:
        yield http


def deliver(server: str, event: str, payload: Any, delivery: str, secret: str = SECRET) -> Any:
    """A delivery as GitHub sends one: no bearer token, a signature of the raw body."""
    body = json.dumps(payload).encode()
    return httpx.post(
        f"{server}/hooks/github",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign(secret, body),
        },
    )


def runs_of(api: httpx.Client, workflow: str) -> list[str]:
    return [r["id"] for r in api.get("/runs", params={"workflow": workflow}).json()["runs"]]


def test_a_signed_delivery_starts_its_workflow_once(server: str, api: httpx.Client) -> None:
    payload = {"ref": "refs/heads/main", "repo": "acme/shop"}
    answer = deliver(server, "push", payload, "delivery-1")
    assert answer.status_code == 201, answer.text
    assert answer.json() == {
        "handled": True,
        "message": "started run 'delivery-1' of workflow 'on_push'",
        "action": "start",
        "run_id": "delivery-1",
        "created": True,
    }
    done = wait_for(api, "delivery-1", "completed")
    assert done["result"] == "pushed refs/heads/main" and done["key"] == "acme/shop"

    again = deliver(server, "push", payload, "delivery-1")  # GitHub redelivers
    assert again.status_code == 200, again.text
    assert again.json()["created"] is False and "nothing started" in again.json()["message"]
    assert runs_of(api, "on_push") == ["delivery-1"]

    other = deliver(server, "issues", {"action": "opened", "repo": "acme/shop"}, "delivery-2")
    assert other.status_code == 201
    assert wait_for(api, "delivery-2", "completed")["result"] == "issue opened"


def test_a_bad_or_missing_signature_is_a_401_and_starts_nothing(
    server: str, api: httpx.Client
) -> None:
    payload = {"ref": "refs/heads/main", "repo": "acme/shop"}
    forged = deliver(server, "push", payload, "forged-1", secret="guessed")
    assert forged.status_code == 401, forged.text
    assert forged.json()["error"]["code"] == "bad_signature"
    assert "HMAC-SHA256" in forged.json()["error"]["message"]
    # A body changed after signing fails too.
    body = json.dumps(payload).encode()
    tampered = httpx.post(
        f"{server}/hooks/github",
        content=body.replace(b"main", b"evil"),
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "forged-2",
            "X-Hub-Signature-256": sign(SECRET, body),
        },
    )
    assert tampered.status_code == 401
    unsigned = httpx.post(
        f"{server}/hooks/github",
        json=payload,
        headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "forged-3"},
    )
    assert unsigned.status_code == 401
    assert "not signed" in unsigned.json()["error"]["message"]
    assert runs_of(api, "on_push") == []


def test_a_request_no_parser_takes_is_a_200_that_says_so(server: str, api: httpx.Client) -> None:
    ping = deliver(server, "ping", {"zen": "Keep it logically awesome."}, "ping-1")
    assert ping.status_code == 200, ping.text
    assert ping.json()["handled"] is False
    assert ping.json()["message"].startswith("no parser matched")
    not_a_form = httpx.post(f"{server}/hooks/forms", json={"name": "no email"})
    assert not_a_form.status_code == 200 and not_a_form.json()["handled"] is False
    not_json = httpx.post(f"{server}/hooks/forms", content=b"email=a@example.com")
    assert not_json.status_code == 200 and not_json.json()["handled"] is False
    assert api.get("/runs").json()["runs"] == []


def test_an_unknown_hook_is_a_404(server: str) -> None:
    answer = httpx.post(f"{server}/hooks/gitlab", json={})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "hook_not_found"
    assert "github" in answer.json()["error"]["message"]
    assert httpx.get(f"{server}/hooks/github").status_code == 405


def test_a_json_hook_spreads_the_body_and_takes_its_id_from_a_header(
    server: str, api: httpx.Client
) -> None:
    form = {"email": "ann@example.com", "plan": "pro"}
    answer = httpx.post(f"{server}/hooks/forms", json=form, headers={"X-Request-Id": "r-17"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["run_id"] == "form-r-17"
    assert wait_for(api, "form-r-17", "completed")["result"] == "ann@example.com on pro"
    repeated = httpx.post(f"{server}/hooks/forms", json=form, headers={"X-Request-Id": "r-17"})
    assert repeated.status_code == 200 and repeated.json()["created"] is False

    no_id = httpx.post(f"{server}/hooks/forms", json=form)
    assert no_id.status_code == 400
    assert "X-Request-Id" in no_id.json()["error"]["message"]
    bad = httpx.post(
        f"{server}/hooks/forms",
        json={"email": "bob@example.com", "colour": "red"},
        headers={"X-Request-Id": "r-18"},
    )
    assert bad.status_code == 400, bad.text
    assert bad.json()["error"]["code"] == "invalid_arguments"
    assert "'colour'" in bad.json()["error"]["message"]
    assert runs_of(api, "subscribe") == ["form-r-17"]


def test_a_parser_can_send_a_message_to_a_waiting_run(server: str, api: httpx.Client) -> None:
    started = api.post("/runs", json={"workflow": "approval", "args": ["leave"], "id": "ask"})
    assert started.status_code == 201
    wait_for(api, "ask", "running")
    decision = {"run": "ask", "decision": "granted", "id": "mail-1"}
    sent = httpx.post(f"{server}/hooks/decisions", json=decision)
    assert sent.status_code == 202, sent.text
    assert sent.json()["action"] == "send" and sent.json()["accepted"] is True
    assert httpx.post(f"{server}/hooks/decisions", json=decision).json()["accepted"] is False
    assert wait_for(api, "ask", "completed")["result"] == "leave: granted"
    lost = httpx.post(f"{server}/hooks/decisions", json={"run": "nobody", "decision": "x"})
    assert lost.status_code == 404 and lost.json()["error"]["code"] == "run_not_found"
    assert api.get(run_path("ask")).json()["status"] == "completed"


def test_hooks_refuse_bodies_over_the_limit(server: str) -> None:
    answer = httpx.post(f"{server}/hooks/forms", content=b"x" * ((1 << 20) + 1))
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"


def test_hooks_are_registered_with_checked_names_and_parsers() -> None:
    app = perdure.App("memory://")
    app.webhook("ok.name_1", json_body("x"))
    with pytest.raises(RegistrationError, match="already registered"):
        app.webhook("ok.name_1", json_body("x"))
    with pytest.raises(RegistrationError, match="URL path segment"):
        app.webhook("a/b", json_body("x"))
    with pytest.raises(RegistrationError, match="one or more parsers"):
        app.webhook("empty")
    with pytest.raises(RegistrationError, match="secret"):
        github("", {"push": "x"})


async def test_a_hook_can_be_exercised_without_a_server() -> None:
    app = perdure.App("memory://")

    @app.workflow()
    async def echo(text: str) -> str:
        return text

    hook = app.webhook("echo", json_body("echo"))
    assert await hook.parse(WebhookRequest(b'"hi"')) == Start("echo", ["hi"])
    async with app:
        outcome = await hook.handle(app, WebhookRequest(b'"hi"'))
        assert outcome.handled and outcome.created and outcome.run_id is not None
        assert await app.handle(outcome.run_id).result(timeout=10) == "hi"

    by_field = json_body("echo", id_field="meta.id", key_field="meta.user")
    body = json.dumps({"meta": {"id": 5, "user": "ann"}}).encode()
    assert by_field(WebhookRequest(body)) == Start(
        "echo", [{"meta": {"id": 5, "user": "ann"}}], id="5", key="ann"
    )
    with pytest.raises(WebhookInvalid, match=r"field 'meta\.id'"):
        by_field(WebhookRequest(b"{}"))
