"""The app the web UI tests (and the screenshots) serve: a checkout workflow that fails
until a flag file exists, a workflow whose error is HTML, an ``orders`` DAG, a
``signup`` state machine, a parent that starts children, and a workflow that waits for
a message.

``build(url)`` makes a fresh App on a store; ``app`` is one on memory, for
``perdure serve tests.e2e.uiapp:app``.
"""

from __future__ import annotations

import enum
from pathlib import Path

import perdure

# A step that fails is retried once, soon: the timeline shows two attempts.
QUICK = perdure.Retry(max_attempts=2, initial_interval=0.05)

# What the ``mischief`` workflow raises: markup that must be shown as text.
HTML_ERROR = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


class Stage(enum.IntEnum):
    NEW = 1
    VERIFIED = 2
    ACTIVE = 3
    REJECTED = 4


def build(url: str) -> perdure.App:
    """A fresh App on ``url`` with every workflow of the UI tests registered."""
    app = perdure.App(url, lease_ttl=2.0, poll_interval=0.05)

    @app.step()
    async def reserve(order: str) -> str:
        perdure.logger.info("reserving stock for %s", order)
        return f"reserved {order}"

    @app.step(retry=QUICK)
    async def charge(order: str, flag: str) -> str:
        perdure.logger.info("charging %s", order)
        if not Path(flag).exists():
            raise RuntimeError(f"payment gateway is down (create {flag} to fix it)")
        return f"charged {order}"

    @app.step()
    async def ship(order: str) -> str:
        return f"shipped {order}"

    @app.workflow()
    async def checkout(order: str, flag: str) -> dict[str, str]:
        """Fails at ``charge`` until the file ``flag`` exists; a retry then completes it."""
        perdure.logger.info("checkout of %s", order)
        reserved = await reserve(order)
        charged = await charge(order, flag)
        return {"reserve": reserved, "charge": charged, "ship": await ship(order)}

    @app.step(retry=perdure.Retry(max_attempts=1))
    async def explode(text: str) -> None:
        raise ValueError(text)

    @app.workflow()
    async def mischief(text: str = HTML_ERROR) -> None:
        """Fails with ``text`` as its error message."""
        await explode(text)

    @app.workflow()
    async def fan_out(orders: list[str], flag: str) -> list[dict[str, str]]:
        """Checks out each order in a child run."""
        children = [
            await perdure.start_child(checkout, order, flag, id=f"{perdure.info().run_id}-{order}")
            for order in orders
        ]
        return [await child for child in children]

    @app.workflow()
    async def approval(request: str) -> str:
        """Waits for a message on topic ``decision`` and returns it."""
        decision = await perdure.receive("decision")
        return f"{request}: {decision}"

    orders = app.dag("orders")

    @orders.task()
    async def validate(order: dict[str, int]) -> int:
        return order["amount"]

    @orders.task(after="validate")
    async def pack(validate: int) -> str:
        return f"packed {validate}"

    @orders.task(after="validate")
    async def bill(validate: int) -> str:
        return f"billed {validate}"

    @orders.task(after=["pack", "bill"], on_failure=["refund"])
    async def deliver(pack: str, bill: str) -> str:
        return f"{pack}, {bill}, delivered"

    @orders.task()
    async def refund(validate: int) -> str:
        return f"refunded {validate}"

    signup = app.state_machine("signup", Stage, record=dict)

    @signup.step(Stage.NEW, to=[Stage.VERIFIED, Stage.REJECTED])
    async def verify(r: perdure.Record[dict[str, str]]) -> Stage:
        r.data["verified"] = "yes"
        return Stage.VERIFIED

    @signup.step(Stage.VERIFIED, to=[Stage.ACTIVE])
    async def activate(r: perdure.Record[dict[str, str]]) -> Stage:
        r.data["active"] = "yes"
        return Stage.ACTIVE

    async def appeal(r: perdure.Record[dict[str, str]], reason: str) -> Stage:
        r.data["appeal"] = reason
        return Stage.NEW

    # A rejected signup may appeal (a cycle in the graph); an unused verification lapses.
    signup.callback(Stage.REJECTED, appeal, to=Stage.NEW)
    signup.timeout(Stage.VERIFIED, after=7 * 86400, to=Stage.REJECTED)

    return app


app = build("memory://")
