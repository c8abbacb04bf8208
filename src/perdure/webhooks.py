"""Webhook triggers: an HTTP request to ``POST /hooks/{name}`` on the API server
(``perdure[server]``) starts a workflow or sends a message to a run.

Register a hook with ``app.webhook(name, *parsers)``. A parser is a function (plain or
``async``) that reads a :class:`WebhookRequest` and returns a trigger, :class:`Start`
or :class:`Send`, or None when the request is not for it; the parsers run in order and
the first trigger wins. A parser refuses a request it must not act on by raising
:class:`WebhookRejected` (the server answers 401, nothing is started) or
:class:`WebhookInvalid` (400).

Hooks do not use the API's bearer tokens: a sender such as GitHub cannot send one.
They authenticate themselves, e.g. with :func:`github` (an HMAC signature of the body
with a shared secret). A hook whose parsers check nothing, such as a bare
:func:`json_body`, starts workflows for anyone who can reach the server.

This module needs no web framework: a hook can be exercised directly with
``await hook.handle(app, WebhookRequest(...))``.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from .errors import PerdureError, RegistrationError, RunExists

if TYPE_CHECKING:
    from .app import App
    from .client import Handle

_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")


class WebhookRejected(PerdureError):
    """A parser refused the request: it is not from whom it claims (a missing or bad
    signature). The server answers 401 and starts nothing."""


class WebhookInvalid(PerdureError):
    """A parser could not read a request meant for it (a body that is not JSON, a
    missing id). The server answers 400 and starts nothing."""


@dataclass(frozen=True)
class WebhookRequest:
    """What a parser sees of an incoming request. Header names are lower-case."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    hook: str = ""

    def header(self, name: str) -> str | None:
        """A header's value (the name in any case), or None."""
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as JSON. Raises WebhookInvalid if it is not JSON."""
        try:
            return json.loads(self.body, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise WebhookInvalid(f"the body is not JSON ({exc})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@dataclass(frozen=True)
class Start:
    """Trigger: start a run of ``workflow`` with ``args`` and ``kwargs``. With ``id``,
    a request delivered again starts nothing twice (the run with that id stands)."""

    workflow: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class Send:
    """Trigger: send ``message`` on ``topic`` to run ``run_id``. With ``key``, a
    request delivered again sends nothing twice."""

    run_id: str
    topic: str | None
    message: Any = None
    key: str | None = None


Trigger: TypeAlias = Start | Send
Parser: TypeAlias = Callable[[WebhookRequest], "Trigger | Awaitable[Trigger | None] | None"]


@dataclass(frozen=True)
class WebhookOutcome:
    """What a hook did with a request: ``handled`` False when no parser matched;
    otherwise the run it started (``created`` False: it existed already) or the run
    it sent a message to (``accepted`` False: that message key was delivered before)."""

    handled: bool
    message: str
    action: str | None = None  # "start" or "send"
    run_id: str | None = None
    created: bool | None = None
    accepted: bool | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"handled": self.handled, "message": self.message}
        for name in ("action", "run_id", "created", "accepted"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


class Webhook:
    """A named hook and its parsers, as ``app.webhook`` registers it."""

    def __init__(self, name: str, parsers: Sequence[Parser]) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise RegistrationError(
                f"webhook name {name!r}: use 1 to 100 letters, digits, '.', '_' or '-' "
                "(it is a URL path segment: /hooks/NAME)"
            )
        if not parsers or not all(callable(p) for p in parsers):
            raise RegistrationError(
                f"webhook {name!r}: give one or more parsers (functions of a WebhookRequest)"
            )
        self.name = name
        self.parsers = tuple(parsers)

    def __repr__(self) -> str:
        return f"<perdure.Webhook {self.name!r} ({len(self.parsers)} parsers)>"

    async def parse(self, request: WebhookRequest) -> Trigger | None:
        """The trigger of the first parser that returns one, or None. A parser's
        WebhookRejected or WebhookInvalid stops the chain; any other error a parser
        raises becomes WebhookInvalid naming the parser."""
        for parser in self.parsers:
            try:
                found = parser(request)
                if inspect.isawaitable(found):
                    found = await found
            except (WebhookRejected, WebhookInvalid):
                raise
            except Exception as exc:
                name = getattr(parser, "__name__", repr(parser))
                raise WebhookInvalid(
                    f"webhook {self.name!r}: parser {name} could not read the request "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
            if found is None:
                continue
            if not isinstance(found, (Start, Send)):
                raise TypeError(
                    f"webhook {self.name!r}: a parser returned {found!r}; return a "
                    "perdure.webhooks.Start, a Send, or None"
                )
            return found
        return None

    async def handle(self, app: App, request: WebhookRequest) -> WebhookOutcome:
        """Parse the request and act on its trigger. The start's arguments are checked
        against the workflow (TypeError); a message goes only to a run that exists
        (RunNotFound). Other errors are those of ``app.start`` and ``Handle.send``."""
        trigger = await self.parse(request)
        if trigger is None:
            return WebhookOutcome(
                False,
                f"no parser matched this request (webhook {self.name!r} has "
                f"{len(self.parsers)} parser(s)); nothing was started",
            )
        if isinstance(trigger, Send):
            handle = app.handle(trigger.run_id)
            await handle.info()  # RunNotFound rather than a message no run reads
            accepted = await handle.send(trigger.topic, trigger.message, key=trigger.key)
            said = "sent" if accepted else "already sent (same key); not sent again"
            message = f"message {said} to run {trigger.run_id!r}"
            return WebhookOutcome(True, message, "send", trigger.run_id, accepted=accepted)
        app.check_call(trigger.workflow, trigger.args, trigger.kwargs)
        options: dict[str, Any] = {"id": trigger.id, "key": trigger.key}
        try:
            # Rejected when the id is taken, so a delivery seen before is told apart.
            started: Handle[Any] = await app.start(
                trigger.workflow, *trigger.args, id_policy="reject", **options, **trigger.kwargs
            )
        except RunExists:
            message = f"run {trigger.id!r} exists already (a repeated delivery); nothing started"
            return WebhookOutcome(True, message, "start", trigger.id, created=False)
        message = f"started run {started.id!r} of workflow {trigger.workflow!r}"
        return WebhookOutcome(True, message, "start", started.id, created=True)


# -- built-in parsers ------------------------------------------------------------------


def json_body(
    workflow: str,
    *,
    match: Callable[[Any], bool] | None = None,
    id_field: str | None = None,
    id_header: str | None = None,
    id_prefix: str = "",
    key_field: str | None = None,
    spread: bool = False,
) -> Parser:
    """A parser that starts ``workflow`` with the JSON body: as its one argument, or
    with ``spread=True`` a JSON object's fields as keyword arguments.

    ``match`` (a predicate on the body) picks the requests it takes (one that raises
    does not match); a body that is not JSON is not matched either. The run id comes
    from ``id_field`` (a field of the body, dotted for nested objects:
    ``"delivery.id"``) or ``id_header``, after ``id_prefix``: a request delivered again
    then starts nothing twice; a request without it is WebhookInvalid. ``key_field``
    gives the run's business key. This parser checks no signature: put one that does
    first, or keep the hook private.
    """

    def parse(request: WebhookRequest) -> Trigger | None:
        try:
            body = request.json()
        except WebhookInvalid:
            return None
        if match is not None and not _matches(match, body):
            return None
        run_id = None
        if id_field is not None:
            run_id = _text(_field(body, id_field), f"field {id_field!r} of the body")
        elif id_header is not None:
            run_id = _text(request.header(id_header), f"header {id_header!r}")
        key = _text(_field(body, key_field), f"field {key_field!r}") if key_field else None
        if spread:
            if not isinstance(body, dict):
                raise WebhookInvalid(f"the body must be a JSON object to start {workflow!r}")
            return Start(workflow, kwargs=body, id=_prefixed(id_prefix, run_id), key=key)
        return Start(workflow, [body], id=_prefixed(id_prefix, run_id), key=key)

    parse.__name__ = f"json_body({workflow!r})"
    return parse


def github(
    secret: str | bytes,
    events: Mapping[str, str],
    *,
    id_prefix: str = "",
    key: Callable[[Any], str | None] | None = None,
) -> Parser:
    """A parser for GitHub-style signed deliveries.

    It checks ``X-Hub-Signature-256: sha256=<hex>``, the HMAC-SHA256 of the raw body
    with ``secret``, in constant time: a request without it, or with a wrong one,
    raises WebhookRejected (401). Then ``events`` maps the ``X-GitHub-Event`` header
    to a workflow, started with the payload (the JSON body) as its one argument; an
    event not in ``events`` (``ping``, say) is not matched. The run id is the
    ``X-GitHub-Delivery`` header (after ``id_prefix``), so a redelivery starts nothing
    twice. ``key`` computes the run's business key from the payload.
    """
    secret_bytes = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not secret_bytes:
        raise RegistrationError("github(): the secret must not be empty")

    def parse(request: WebhookRequest) -> Trigger | None:
        verify(secret_bytes, request.body, request.header("X-Hub-Signature-256"))
        event = request.header("X-GitHub-Event")
        workflow = events.get(event or "")
        if workflow is None:
            return None
        delivery = _text(request.header("X-GitHub-Delivery"), "header 'X-GitHub-Delivery'")
        payload = request.json()
        return Start(
            workflow,
            [payload],
            id=_prefixed(id_prefix, delivery),
            key=key(payload) if key is not None else None,
        )

    parse.__name__ = "github"
    return parse


def sign(secret: str | bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, body: bytes, signature: str | None) -> None:
    """Check a ``sha256=<hex>`` signature of ``body`` in constant time; raises
    WebhookRejected if it is missing or wrong."""
    if not signature:
        raise WebhookRejected("the request is not signed (no X-Hub-Signature-256 header)")
    if not hmac.compare_digest(sign(secret, body).encode(), signature.strip().encode()):
        raise WebhookRejected(
            "bad signature: X-Hub-Signature-256 is not the HMAC-SHA256 of the body with "
            "this hook's secret"
        )


def _matches(match: Callable[[Any], bool], body: Any) -> bool:
    try:
        return bool(match(body))
    except Exception:  # e.g. "email" in 42: a body of another shape is not a match
        return False


def _field(body: Any, path: str) -> Any:
    value = body
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _text(value: Any, what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > 200 or "\0" in value:
        raise WebhookInvalid(
            f"the request has no usable {what} (a non-empty string of at most 200 "
            "characters is needed)"
        )
    return value


def _prefixed(prefix: str, run_id: str | None) -> str | None:
    return None if run_id is None else f"{prefix}{run_id}"
