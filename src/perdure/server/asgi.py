"""The ASGI application: the API under ``/api/v1``, webhooks under ``/hooks``, and the
web UI at ``/`` (``index.html``) with its files under ``/ui/``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import ConfigurationError
from .api import ROUTES
from .auth import Auth
from .hooks import hook
from .problems import body, dumps
from .router import Api
from .tokens import check_tokens

if TYPE_CHECKING:
    from ..app import App

UI = Path(__file__).resolve().parent / "ui"
NO_TOKENS = (
    "no API tokens: set PERDURE_API_TOKENS (e.g. 'admin:TOKEN,read:TOKEN2') or "
    "--tokens-file, or --no-auth for local use"
)


def create_app(
    app: App, *, tokens: Mapping[str, str] | None = None, auth: bool = True
) -> Starlette:
    """The ASGI application serving ``app``: the HTTP API, its webhooks and the web UI.

    ``tokens`` maps each API token to its scope, ``"read"`` (GET only) or ``"admin"``.
    With ``auth=False`` every request may do anything (for local use only: ``serve``
    refuses it on an address other than loopback). Raises ConfigurationError for a bad
    token or scope, or ``auth=True`` without tokens.
    """
    checked = check_tokens(tokens or {})
    if auth and not checked:
        raise ConfigurationError(NO_TOKENS)
    api = Api(app, Auth(checked, enabled=auth), ROUTES)
    routes: list[BaseRoute] = [
        Mount("/api/v1", app=api),
        Route("/hooks/{name}", hook, methods=["POST"]),
    ]
    if (UI / "index.html").is_file():
        routes += [Route("/", _index, methods=["GET"]), Mount("/ui", StaticFiles(directory=UI))]
    else:
        routes.append(Route("/", _no_ui, methods=["GET"]))
    site = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    site.state.perdure_app = app
    return site


async def _index(request: Request) -> Response:
    return FileResponse(UI / "index.html", headers={"Cache-Control": "no-cache"})


async def _no_ui(request: Request) -> Response:
    message = "the web UI is not installed here; the API is at /api/v1 (see /api/v1/openapi.json)"
    return Response(dumps(body("not_found", message)), 404, media_type="application/json")


_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such path, a method a route does not take), in the
    API's error shape."""
    assert isinstance(exc, HTTPException)
    code = _CODES.get(exc.status_code, "bad_request" if exc.status_code < 500 else "internal")
    message = f"{request.method} {request.url.path}: {exc.detail}"
    if exc.status_code == 405 and exc.headers and "Allow" in exc.headers:
        message += f" (allowed: {exc.headers['Allow']})"
    return Response(
        dumps(body(code, message)),
        exc.status_code,
        dict(exc.headers or {}),
        media_type="application/json",
    )
