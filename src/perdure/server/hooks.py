"""``POST /hooks/{name}``: an incoming request handed to the parsers of the webhook
registered under that name (see ``perdure.webhooks``). Hooks authenticate requests
themselves (signatures); the API's bearer tokens do not apply here."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from ..errors import RegistrationError
from ..webhooks import WebhookRequest
from .inputs import read_raw
from .problems import ApiError, dumps
from .router import failure

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("perdure.server")


async def hook(request: Request) -> Response:
    """Run the named hook's parsers on the request and act on the first trigger:
    201 a run was started, 200 it existed already or no parser matched
    (``handled: false``), 202 a message was sent; 401 a parser refused the request's
    signature; 404 no hook of that name."""
    app: App = request.app.state.perdure_app
    name = request.path_params["name"]
    try:
        webhook = app.webhooks.get(name)
        if webhook is None:
            known = ", ".join(sorted(app.webhooks)) or "none"
            raise ApiError(
                404, "hook_not_found", f"no webhook named {name!r} (this server has: {known})"
            )
        incoming = WebhookRequest(
            await read_raw(request),
            headers=dict(request.headers.items()),
            query=dict(request.query_params.items()),
            hook=name,
        )
        try:
            outcome = await webhook.handle(app, incoming)
        except RegistrationError as exc:  # the hook names a workflow the app lacks
            log.error("webhook %r is misconfigured: %s", name, exc)
            raise ApiError(
                500, "internal", f"webhook {name!r} is misconfigured on the server: {exc}"
            ) from None
        if not outcome.handled or outcome.created is False:
            status = 200
        else:
            status = 201 if outcome.action == "start" else 202
        return Response(dumps(outcome.to_json()), status, media_type="application/json")
    except Exception as exc:
        return failure(exc, f"webhook {name!r}")
