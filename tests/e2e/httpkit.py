"""A real API server for tests, and the small app the HTTP tests serve.

``running_server(app)`` serves an App (not yet opened) on 127.0.0.1 on a free port from
a background thread: uvicorn and the app's worker on that thread's own event loop, as
``perdure serve`` runs them. It yields the base URL; the tests talk to it over HTTP only.
With no ``tokens``, the server accepts ``ADMIN`` (scope admin) and ``READ`` (scope read).

``client(url, token)`` is an httpx client on ``{url}/api/v1`` with that bearer token;
``wait_for(client, run_id, *statuses)`` polls a run until it reaches one of them.
"""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pydantic

import perdure
from perdure.server.serving import listen, serve_async
from perdure.webhooks import json_body
from stores import BACKENDS

ADMIN = "admin-token-of-the-http-tests"
READ = "read-token-of-the-http-tests"
TOKENS = {ADMIN: "admin", READ: "read"}
# The stores the HTTP tests run on: the server shares them with nothing but HTTP.
SERVER_BACKENDS = [name for name in BACKENDS if name in ("memory", "sqlite", "postgres")]


@contextmanager
def running_server(
    app: perdure.App,
    *,
    tokens: Mapping[str, str] | None = None,
    auth: bool = True,
    worker: bool = True,
) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields ``http://127.0.0.1:PORT``. The app
    is closed when the server stops."""
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    ready = threading.Event()
    failure: list[BaseException] = []
    handles: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        handles["loop"], handles["stop"] = asyncio.get_running_loop(), stop
        await serve_async(
            app,
            sock=sock,
            tokens=TOKENS if tokens is None and auth else tokens,
            auth=auth,
            worker=worker,
            stop=stop,
            ready=ready.set,
            log_level="warning",
        )

    def thread_main() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            failure.append(exc)
        finally:
            ready.set()  # wake the test if the server died before it was ready

    thread = threading.Thread(target=thread_main, name=f"api-server-{port}", daemon=True)
    thread.start()
    try:
        assert ready.wait(60), "the server did not start within 60 s"
        if failure:
            raise failure[0]
        yield f"http://127.0.0.1:{port}"
    finally:
        if "loop" in handles and thread.is_alive():
            handles["loop"].call_soon_threadsafe(handles["stop"].set)
        thread.join(60)
        sock.close()
        assert not thread.is_alive(), "the server did not stop within 60 s"
        if failure:
            raise failure[0]


def client(url: str, token: str | None = ADMIN) -> httpx.Client:
    """An httpx client on the API of the server at ``url``, with ``token`` (or none)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.Client(base_url=f"{url}/api/v1", headers=headers, timeout=30)


def run_path(run_id: str, *rest: str) -> str:
    return "/".join([f"/runs/{quote(run_id, safe='')}", *rest])


def wait_for(api: httpx.Client, run_id: str, *statuses: str, within: float = 30.0) -> Any:
    """Poll the run until its status is one of ``statuses``; its run object. Fails
    with the status it is stuck in after ``within`` seconds (a bound, not a timing
    assertion)."""
    deadline = time.monotonic() + within
    while True:
        answer = api.get(run_path(run_id))
        assert answer.status_code == 200, answer.text
        run = answer.json()
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, f"run {run_id!r} is still {run['status']}"
        time.sleep(0.02)


# -- the app the HTTP tests serve --------------------------------------------------------


class Order(pydantic.BaseModel):
    sku: str
    quantity: int = 1


class Stage(enum.IntEnum):
    NEW = 1
    ACTIVE = 2


CLOSED = "warehouse-closed"  # while this file exists in the app's folder, reserve fails


def build_app(url: str, folder: Path) -> perdure.App:
    """An App with: ``greet(name)`` (one step that logs), ``ship(order: Order)`` (its
    second step fails while ``folder/warehouse-closed`` exists), ``approval(request)``
    (sets events, waits for a ``decision`` message), ``nap(seconds)`` (a durable sleep),
    ``family(n)`` (n children of ``greet``), a ``checkout`` DAG, a ``signup`` state
    machine, and a ``billing`` queue."""
    app = perdure.App(url, lease_ttl=5.0, poll_interval=0.05)
    billing = app.queue("billing", concurrency=5)

    @app.step()
    async def hello(name: str) -> str:
        perdure.logger.info("greeting %s", name)
        return f"hello {name}"

    @app.workflow()
    async def greet(name: str) -> str:
        return await hello(name)

    @app.step()
    async def reserve(order: Order) -> str:
        if (folder / CLOSED).exists():
            raise RuntimeError("the warehouse is closed")
        return f"reserved {order.quantity} x {order.sku}"

    @app.workflow(queue=billing)
    async def ship(order: Order) -> str:
        greeting = await hello(order.sku)  # position 0
        reserved = await reserve(order)  # position 1
        return f"{greeting}; {reserved}"

    @app.workflow()
    async def approval(request: str) -> str:
        perdure.set_event("state", "waiting")
        decision = await perdure.receive("decision")
        perdure.set_event("state", decision)
        return f"{request}: {decision}"

    @app.workflow()
    async def nap(seconds: float) -> str:
        await perdure.sleep(seconds)
        return "rested"

    @app.workflow()
    async def family(n: int) -> list[str]:
        children = [await perdure.start_child(greet, f"child {i}") for i in range(n)]
        return [await child for child in children]

    checkout = app.dag("checkout")

    @checkout.task()
    async def total(cart: list[int]) -> int:
        return sum(cart)

    @checkout.task(after=[total])
    async def receipt(total: int) -> str:
        return f"paid {total}"

    signup = app.state_machine("signup", Stage, record=dict)

    @signup.step(Stage.NEW, to=[Stage.ACTIVE])
    async def activate(r: perdure.Record[dict[str, Any]]) -> Stage:
        r.data["active"] = True
        return Stage.ACTIVE

    # Open to anyone who can reach the server: a string body starts greet(body).
    app.webhook("greetings", json_body("greet", match=lambda body: isinstance(body, str)))
    return app
