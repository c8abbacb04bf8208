"""The API's dispatch: a route table matched on the raw, percent-encoded path (so a
run id may hold any character, ``/`` included, when the client encodes it), the token
checked, the handler called, and every failure answered as the API's error JSON.

Routes are matched segment by segment; ``{name}`` segments capture one decoded
segment each. A known path with another method is a 405 that lists the allowed ones.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from starlette.requests import Request
from starlette.responses import Response

from . import inputs
from .auth import Auth
from .problems import ApiError, body, dumps, from_exception

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from ..app import App

log = logging.getLogger("perdure.server")
_MISSING = {
    "id": "run_not_found",
    "name": "definition_not_found",
    "key": "event_not_found",
    "schedule": "schedule_not_found",
}


@dataclass(frozen=True)
class Answer:
    """A handler's answer: a status and the JSON to send."""

    status: int
    data: Any
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["Call"], Awaitable[Answer]]


@dataclass(frozen=True)
class Route:
    """``method path`` answered by ``handler``; ``query`` names the query parameters
    it takes (any other is a 400); ``public`` routes need no token."""

    method: str
    path: str
    handler: Handler
    query: tuple[str, ...] = ()
    public: bool = False

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.strip("/").split("/"))

    @property
    def literals(self) -> int:
        return sum(not part.startswith("{") for part in self.segments)

    def match(self, segments: list[str]) -> dict[str, str] | None:
        pattern = self.segments
        if len(pattern) != len(segments):
            return None
        params: dict[str, str] = {}
        for want, got in zip(pattern, segments, strict=True):
            if want.startswith("{"):
                if not got:
                    return None
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params


class Call:
    """One request, as a handler sees it: the app, the path parameters, the query
    (checked against what the route takes), the body, and the caller's scope."""

    def __init__(
        self,
        request: Request,
        app: App,
        route: Route,
        params: dict[str, str],
        scope: str,
        auth_enabled: bool,
    ) -> None:
        self.request = request
        self.app = app
        self.params = params
        self.scope = scope
        self.auth_enabled = auth_enabled
        self.query = inputs.Query(request.query_params.multi_items(), route.query)

    def param(self, name: str) -> str:
        return self.params[name]

    async def body(self, allowed: Iterable[str]) -> inputs.Body:
        return inputs.Body(await inputs.read_json(self.request), allowed)

    @property
    def actor(self) -> str:
        """Who operator actions are recorded as: the API, the caller's address and scope."""
        client = self.request.client
        host = client.host if client is not None else "unknown"
        return f"api {host} ({self.scope})"


class Api:
    """The ASGI application behind ``/api/v1``."""

    def __init__(self, app: App, auth: Auth, routes: Iterable[Route]) -> None:
        self.app = app
        self.auth = auth
        self.routes = list(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        method = request.method.upper()
        head = method == "HEAD"
        try:
            answer = await self._answer(request, "GET" if head else method)
            response = Response(
                b"" if head else dumps(answer.data),
                answer.status,
                answer.headers,
                "application/json",
            )
        except Exception as exc:
            response = failure(exc, f"{method} {request.url.path}")
        await response(scope, receive, send)

    async def _answer(self, request: Request, method: str) -> Answer:
        segments = _segments(request.scope)
        candidates = [
            r for r in self.routes if segments is not None and r.match(segments) is not None
        ]
        # A literal segment wins over a parameter: /runs/counts is not run "counts".
        best = max((r.literals for r in candidates), default=0)
        candidates = [r for r in candidates if r.literals == best]
        route = next((r for r in candidates if r.method == method), None)
        if route is None or not route.public:
            # Who asks is checked before saying what exists.
            scope = self.auth.scope_of(request.headers.get("authorization"))
        else:
            scope = "public"
        if route is None:
            if not candidates:
                raise ApiError(
                    404,
                    "not_found",
                    f"no such API path: {request.url.path} (see /api/v1/openapi.json)",
                )
            allowed = sorted({r.method for r in candidates})
            raise ApiError(
                405,
                "method_not_allowed",
                f"{method} is not allowed on {request.url.path}; use {', '.join(allowed)}",
                {"Allow": ", ".join(allowed)},
            )
        if not route.public:
            self.auth.allow(scope, method)
        assert segments is not None
        params = route.match(segments) or {}
        for name, value in params.items():
            if "\0" in value or len(value) > 1000:  # no such run, definition or event key
                what = _MISSING.get(name, "not_found")
                raise ApiError(404, what, f"no such {name} (too long, or holds NUL)")
        return await route.handler(Call(request, self.app, route, params, scope, self.auth.enabled))


def failure(exc: Exception, what: str) -> Response:
    """The error answer for ``exc``, raised while doing ``what``: the client's mistake
    as the problems table says, anything else a logged 500 that tells nothing more."""
    problem = from_exception(exc)
    if problem is None:
        log.exception("%s failed", what)
        # The details stay in the log: they may say more than a client should know.
        problem = ApiError(
            500, "internal", f"{what} failed ({type(exc).__name__}); see the server's log"
        )
    return Response(
        dumps(body(problem.code, problem.message)),
        problem.status,
        problem.headers,
        "application/json",
    )


def _segments(scope: Scope) -> list[str] | None:
    """The path's segments after ``/api/v1``, each percent-decoded, or None when the
    path cannot be one of the API's (not UTF-8)."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    parts = raw.split(b"?", 1)[0].split(b"/")
    for i in range(len(parts) - 1):
        if parts[i] == b"api" and parts[i + 1] == b"v1":
            try:
                return [unquote_to_bytes(p).decode("utf-8") for p in parts[i + 2 :]]
            except UnicodeDecodeError:
                return None
    return None
