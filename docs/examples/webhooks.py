"""Webhook triggers: a GitHub-style signed hook, a plain JSON hook and a parser of
your own. ``perdure serve`` answers ``POST /hooks/NAME`` with these parsers; here
each hook is handed requests directly, as the server hands them."""

import asyncio
import json

import perdure
from perdure.webhooks import Send, WebhookRejected, WebhookRequest, github, json_body, sign

app = perdure.App()
SECRET = "a-long-random-string"  # the same secret as in GitHub's webhook settings


@app.workflow()
async def deploy(push: dict) -> str:
    return f"deploying {push['after']} of {push['repository']['full_name']}"


@app.workflow()
async def subscribe(email: str, plan: str = "free") -> str:
    return f"{email} subscribed ({plan})"


@app.workflow()
async def expense(amount: int) -> str:
    decision = await perdure.receive("decision")
    return f"{amount} {decision}"


# POST /hooks/github: signed by GitHub, the event picks the workflow, and the
# delivery id (X-GitHub-Delivery) is the run id: a redelivery starts nothing twice.
app.webhook("github", github(SECRET, {"push": "deploy"}))

# POST /hooks/signup: the JSON body's fields are subscribe()'s keyword arguments.
# It checks no signature: anyone who can reach the server can start subscribe().
app.webhook("signup", json_body("subscribe", spread=True, match=lambda body: "email" in body))


# A parser of your own: it returns a trigger (Start or Send), or None to pass.
def approvals(request: WebhookRequest) -> Send | None:
    body = request.json()
    if not isinstance(body, dict) or "run_id" not in body:
        return None
    return Send(body["run_id"], "decision", body["decision"], key=body.get("message_id"))


app.webhook("approvals", approvals)


async def main() -> None:
    push = json.dumps({"after": "9f2c1e0", "repository": {"full_name": "acme/shop"}}).encode()
    headers = {
        "x-github-event": "push",
        "x-github-delivery": "72d3162e",
        "x-hub-signature-256": sign(SECRET, push),
    }
    github_hook = app.webhooks["github"]
    async with app:
        started = await github_hook.handle(app, WebhookRequest(push, headers))
        print(started.message)
        print(await app.handle("72d3162e").result(timeout=10))
        again = await github_hook.handle(app, WebhookRequest(push, headers))
        print(again.message)
        forged = {**headers, "x-hub-signature-256": sign("a guess", push)}
        try:
            await github_hook.handle(app, WebhookRequest(push, forged))
        except WebhookRejected as refused:
            print("401:", refused)
        ping = {**headers, "x-github-event": "ping", "x-hub-signature-256": sign(SECRET, b"{}")}
        print((await github_hook.handle(app, WebhookRequest(b"{}", ping))).message)

        form = json.dumps({"email": "ann@example.com", "plan": "pro"}).encode()
        signed_up = await app.webhooks["signup"].handle(app, WebhookRequest(form))
        assert signed_up.run_id is not None
        print(await app.handle(signed_up.run_id).result(timeout=10))

        claim = await app.start(expense, 120, id="expense-1")
        reply = json.dumps({"run_id": "expense-1", "decision": "approved", "message_id": "m1"})
        sent = await app.webhooks["approvals"].handle(app, WebhookRequest(reply.encode()))
        print(sent.message)
        print(await claim.result(timeout=10))


if __name__ == "__main__":
    asyncio.run(main())
