"""The remote transport: the commands ask a ``perdure serve`` server over HTTP.

Only the standard library (``urllib``): the CLI needs nothing more to talk to a server.
Every answer is the JSON of the HTTP contract (``docs/api.md``); an error answer
becomes a :class:`~perdure.cli.exits.CommandError` with the server's message and the
exit status its HTTP status means.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode, urlsplit
from urllib.request import Request, urlopen

from .exits import CommandError, Exit, from_http, usage
from .transport import ACTIONS, Json, RunQuery, StartRequest, Transport

API = "/api/v1"
_ENDED = frozenset({"completed", "failed", "cancelled", "terminated", "dead_letter"})
_FIRST_POLL = 0.05  # seconds between looks at a run being waited for, doubling...
_MAX_POLL = 1.0  # ...up to this


def base_url(url: str) -> str:
    """The server's base URL (``http://host:port``), from what the user wrote."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise usage(
            f"--server {url!r} is not an http:// or https:// URL, e.g. http://127.0.0.1:8080"
        )
    path = parts.path.rstrip("/")
    if path.endswith(API):  # the API's own URL works too
        path = path[: -len(API)]
    return f"{parts.scheme}://{parts.netloc}{path}"


class RemoteTransport(Transport):
    """Commands through the HTTP API at ``url``, with a bearer ``token`` if given."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 30.0) -> None:
        self.where = base_url(url)
        self._token = token
        self._timeout = timeout

    def schedules(self, verb: str, schedule_id: str | None, body: Json) -> Any:
        path = "/schedules" + ("" if schedule_id is None else f"/{quote(schedule_id, safe='')}")
        if verb in ("list", "show"):
            return self._call("GET", path)
        if verb == "create":
            return self._call("POST", path, body=body)
        if verb == "delete":
            return self._call("DELETE", path)
        return self._call("POST", f"{path}/{verb}", body=body)

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Json | None = None,
    ) -> Any:
        url = f"{self.where}{API}{path}"
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = Request(url, data=data, headers=headers, method=method)
        try:
            with urlopen(request, timeout=self._timeout) as response:
                raw = response.read()
        except HTTPError as exc:
            raise self._refusal(exc) from None
        except (URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CommandError(
                f"cannot reach the server at {self.where} ({reason}); is `perdure serve` "
                "running there? (--server URL or $PERDURE_SERVER)",
                Exit.UNREACHABLE,
                error_code="unreachable",
            ) from None
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise CommandError(
                f"{self.where} answered {method} {path} with something that is not JSON; "
                "is it a perdure server?",
                Exit.UNREACHABLE,
                error_code="unreachable",
            ) from None

    def _refusal(self, exc: HTTPError) -> CommandError:
        try:
            problem = json.loads(exc.read() or b"{}").get("error") or {}
        except (ValueError, AttributeError):
            problem = {}
        code = str(problem.get("code", "")) if isinstance(problem, dict) else ""
        message = str(problem.get("message", "")) if isinstance(problem, dict) else ""
        message = message or f"the server answered {exc.code} {exc.reason}"
        if exc.code == 401:
            message += " (pass --token TOKEN or set $PERDURE_TOKEN)"
        elif exc.code == 403:
            message += " (this token may only read; use an admin token)"
        return from_http(exc.code, code, message)

    @staticmethod
    def _run_path(run_id: str, *rest: str) -> str:
        return "/".join([f"/runs/{quote(run_id, safe='')}", *rest])

    # -- definitions ------------------------------------------------------------------

    def definitions(self) -> list[Json]:
        return list(self._call("GET", "/definitions")["definitions"])

    def definition(self, name: str) -> Json:
        return dict(self._call("GET", f"/definitions/{quote(name, safe='')}"))

    # -- runs -------------------------------------------------------------------------

    def start(self, request: StartRequest) -> Json:
        return dict(self._call("POST", "/runs", body=request.body()))

    def list_runs(
        self, query: RunQuery, limit: int, cursor: str | None
    ) -> tuple[list[Json], str | None]:
        params: dict[str, Any] = {**query.params(), "limit": limit, "cursor": cursor}
        page = self._call("GET", "/runs", query=params)
        return list(page["runs"]), page.get("next_cursor")

    def run(self, run_id: str) -> Json:
        return dict(self._call("GET", self._run_path(run_id)))

    def steps(self, run_id: str) -> list[Json]:
        return list(self._call("GET", self._run_path(run_id, "steps"))["steps"])

    def logs(self, run_id: str) -> list[Json]:
        return list(self._call("GET", self._run_path(run_id, "logs"))["logs"])

    def journal(self, run_id: str) -> list[Json]:
        return list(self._call("GET", self._run_path(run_id, "journal"))["entries"])

    def children(self, run_id: str) -> list[Json]:
        return list(self._call("GET", self._run_path(run_id, "children"))["runs"])

    def send(self, run_id: str, topic: str | None, message: Any, key: str | None) -> bool:
        body: Json = {"topic": topic, "message": message}
        if key is not None:
            body["key"] = key
        answer = self._call("POST", self._run_path(run_id, "messages"), body=body)
        return bool(answer["accepted"])

    def act(self, run_id: str, action: str, reason: str, by: str | None) -> tuple[bool, Json]:
        assert action in ACTIONS
        if by is not None:
            raise usage("--by works on the database directly; a server records who acts")
        body = {"reason": reason} if reason else {}
        answer = self._call("POST", self._run_path(run_id, action), body=body)
        return bool(answer["changed"]), dict(answer["run"])

    def fork(self, run_id: str, from_step: int, new_id: str | None, by: str | None) -> Json:
        if by is not None:
            raise usage("--by works on the database directly; a server records who acts")
        body: Json = {"from_step": from_step}
        if new_id is not None:
            body["id"] = new_id
        return dict(self._call("POST", self._run_path(run_id, "fork"), body=body))

    def delete(self, run_id: str) -> None:
        self._call("DELETE", self._run_path(run_id))

    def purge(self, older_than: float, progress: Callable[[int], None]) -> int:
        # There is no purge route: find the ended runs old enough, and delete each.
        cutoff = time_ago(older_than)
        doomed: list[str] = []
        for status in sorted(_ENDED):
            for run in self.each_run(RunQuery(status=status, created_before=cutoff)):
                finished = run.get("finished_at")
                if finished and datetime.fromisoformat(finished) < datetime.fromisoformat(cutoff):
                    doomed.append(run["id"])
        deleted = 0
        for run_id in doomed:
            try:
                self.delete(run_id)
            except CommandError as exc:
                if exc.code is not Exit.NOT_FOUND:  # deleted meanwhile: fine
                    raise
                continue
            deleted += 1
            progress(deleted)
        return deleted

    def wait(self, run_id: str) -> Json:
        delay = _FIRST_POLL
        while True:
            run = self.run(run_id)
            if run["status"] in _ENDED:
                return run
            time.sleep(delay)  # polling the server: it has no way to call back
            delay = min(delay * 2, _MAX_POLL)

    def workers(self) -> list[Json]:
        return list(self._call("GET", "/workers")["workers"])

    def queues(self) -> list[Json]:
        return list(self._call("GET", "/queues")["queues"])


def time_ago(seconds: float) -> str:
    """The ISO-8601 UTC timestamp ``seconds`` before now (the caller's clock)."""
    from ..clock import Clock, to_datetime
    from ..server.views import iso

    moment = iso(to_datetime(Clock().now() - seconds))
    assert moment is not None
    return moment
