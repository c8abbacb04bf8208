"""How a command reaches the runs: the contract both transports keep.

A command talks to a :class:`Transport` and gets back plain JSON data in the shapes of
the HTTP contract (``docs/api.md``): the run object, step and log lines, definitions.
:class:`~perdure.cli.direct.DirectTransport` builds them from the database through an
``App``; :class:`~perdure.cli.remote.RemoteTransport` asks a ``perdure serve`` server.
So the output of every command is the same either way.

Each method raises :class:`~perdure.cli.exits.CommandError` with the exit status the
failure means (no such run: NOT_FOUND; the run's status does not allow it: CONFLICT...).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

Json = dict[str, Any]

# Operators' actions on one run, as the HTTP routes name them.
ACTIONS = ("retry", "cancel", "pause", "resume", "terminate")


@dataclass(frozen=True)
class RunQuery:
    """Which runs: every field that is set must match (timestamps are ISO-8601 UTC)."""

    workflow: str | None = None
    status: str | None = None
    key: str | None = None
    parent: str | None = None
    queue: str | None = None
    created_after: str | None = None
    created_before: str | None = None

    def params(self) -> dict[str, str]:
        """The filters that are set, by their HTTP query parameter names."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def describe(self) -> str:
        """The filters as a reader would say them, e.g. ``status failed, workflow X``."""
        return ", ".join(
            f"{name.replace('_', ' ')} {value}" for name, value in self.params().items()
        )


@dataclass(frozen=True)
class StartRequest:
    """What ``perdure start`` asks for: the body of ``POST /api/v1/runs``."""

    workflow: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    id_policy: str | None = None
    key: str | None = None
    queue: str | None = None
    priority: int | None = None
    delay: float | None = None
    timeout: float | None = None
    dedup_key: str | None = None

    def body(self) -> Json:
        """The request body, without the options left unset."""
        out: Json = {"workflow": self.workflow, "args": self.args, "kwargs": self.kwargs}
        for f in fields(self)[3:]:
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value
        return out


class Transport(abc.ABC):
    """The operations the commands use, in the shapes of the HTTP contract."""

    #: Where the runs are, for messages (a database URL with its password masked, or
    #: the server's base URL).
    where: str

    @abc.abstractmethod
    def definitions(self) -> list[Json]:
        """What the app can run: ``app.definitions()``."""

    @abc.abstractmethod
    def definition(self, name: str) -> Json:
        """One definition; a DAG's or state machine's has ``mermaid`` too."""

    @abc.abstractmethod
    def start(self, request: StartRequest) -> Json:
        """Start a run (or find the one its id names); the run object."""

    @abc.abstractmethod
    def list_runs(
        self, query: RunQuery, limit: int, cursor: str | None
    ) -> tuple[list[Json], str | None]:
        """One page of runs, newest first, and the cursor of the next (None: the end)."""

    def each_run(self, query: RunQuery) -> Iterator[Json]:
        """Every run that matches, newest first."""
        cursor: str | None = None
        while True:
            runs, cursor = self.list_runs(query, 500, cursor)
            yield from runs
            if cursor is None:
                return

    @abc.abstractmethod
    def run(self, run_id: str) -> Json:
        """The run object with ``result`` and ``input``."""

    @abc.abstractmethod
    def steps(self, run_id: str) -> list[Json]:
        """The run's steps in position order."""

    @abc.abstractmethod
    def logs(self, run_id: str) -> list[Json]:
        """The lines the run's code logged."""

    @abc.abstractmethod
    def journal(self, run_id: str) -> list[Json]:
        """The run's journal entries, in order."""

    @abc.abstractmethod
    def children(self, run_id: str) -> list[Json]:
        """The runs it started as children."""

    @abc.abstractmethod
    def send(self, run_id: str, topic: str | None, message: Any, key: str | None) -> bool:
        """Send a message; False if one with that key was already delivered."""

    @abc.abstractmethod
    def act(self, run_id: str, action: str, reason: str, by: str | None) -> tuple[bool, Json]:
        """One of :data:`ACTIONS` on a run: whether it changed anything, and the run."""

    @abc.abstractmethod
    def fork(self, run_id: str, from_step: int, new_id: str | None, by: str | None) -> Json:
        """A new run reusing ``run_id``'s steps before ``from_step``; the new run."""

    @abc.abstractmethod
    def delete(self, run_id: str) -> None:
        """Delete an ended run and its journal."""

    @abc.abstractmethod
    def purge(self, older_than: float, progress: Callable[[int], None]) -> int:
        """Delete the runs that ended more than ``older_than`` seconds ago; how many.
        ``progress`` is told how many were deleted so far."""

    @abc.abstractmethod
    def wait(self, run_id: str) -> Json:
        """Wait until the run has ended; the run object with its result."""

    @abc.abstractmethod
    def workers(self) -> list[Json]:
        """The workers alive on the database."""

    @abc.abstractmethod
    def queues(self) -> list[Json]:
        """The queues, their limits and their runs' counts by status."""

    @abc.abstractmethod
    def schedules(self, verb: str, schedule_id: str | None, body: Json) -> Any:
        """One of the ``perdure schedules`` verbs (list, show, create, pause, resume,
        delete, trigger, backfill): the JSON its HTTP route answers."""

    def close(self) -> None:  # noqa: B027 - a default, not a hole: HTTP keeps nothing open
        """Release what the transport holds open (nothing, by default)."""
