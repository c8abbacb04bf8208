"""perdure's HTTP API server, webhooks and web UI (the ``perdure[server]`` extra).

``create_app(app, tokens=..., auth=True)`` returns the ASGI application (Starlette);
``serve(app, host=..., port=..., tokens=..., auth=True, worker=True)`` runs it with
uvicorn, and the app's worker, until SIGINT or SIGTERM; ``load_tokens(path)`` reads the
API tokens from ``$PERDURE_API_TOKENS`` and a tokens file. See ``docs/api.md``.

``load_tokens`` works without the extra; the others raise ImportError naming
starlette or uvicorn when it is not installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .tokens import load_tokens

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..app import App

__all__ = ["create_app", "load_tokens", "serve"]


def create_app(
    app: App, *, tokens: Mapping[str, str] | None = None, auth: bool = True
) -> Starlette:
    """See :func:`perdure.server.asgi.create_app`."""
    from .asgi import create_app as build

    return build(app, tokens=tokens, auth=auth)


def serve(
    app: App,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    tokens: Mapping[str, str] | None = None,
    auth: bool = True,
    worker: bool = True,
    log_level: str = "info",
) -> None:
    """See :func:`perdure.server.serving.serve`."""
    from .serving import serve as run

    run(app, host=host, port=port, tokens=tokens, auth=auth, worker=worker, log_level=log_level)
