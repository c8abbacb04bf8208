"""Replaying recorded runs against the code at hand, to test a deploy before it ships.

A replay runs a workflow's code over a run's journal exactly as a worker does when it
resumes the run, but executes nothing: no step runs, nothing is written. If the code
asks for something other than what the journal recorded, the replay reports the
``NonDeterminismError`` a worker would have held the run with. Runs come from the
database, or from a file written by :func:`export_run` (so production histories can
be checked in a test suite or in CI).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, NonDeterminismError, RunNotFound
from .records import EntryKind, JournalEntry, RunRecord, RunStatus
from .workflow.instance import WorkflowInstance

if TYPE_CHECKING:
    from .app import App

FORMAT = "perdure-run/1"


@dataclass(frozen=True)
class ReplayResult:
    """What replaying one run found."""

    run_id: str
    workflow: str
    entries: int  # journal entries replayed
    error: NonDeterminismError | None  # None: the code replays the journal faithfully

    @property
    def ok(self) -> bool:
        return self.error is None

    def __str__(self) -> str:
        if self.error is None:
            return f"ok    {self.run_id} ({self.workflow}, {self.entries} entries)"
        return f"FAIL  {self.run_id} ({self.workflow}): {self.error}"


def replay(app: App, run: RunRecord, journal: list[JournalEntry]) -> ReplayResult:
    """Replay ``journal`` with the code of ``run.workflow`` registered on ``app``."""
    workflow = app.workflows.get(run.workflow)
    if workflow is None:
        raise ConfigurationError(
            f"run {run.id!r} is a run of {run.workflow!r}, which this app does not register"
        )
    instance = WorkflowInstance(run, workflow, app.payloads, journal)
    try:
        instance.start()
        return ReplayResult(run.id, run.workflow, len(journal), instance.nondeterminism)
    finally:
        instance.close()


async def replay_run(app: App, run_id: str) -> ReplayResult:
    """Replay a stored run's current journal with this app's code."""
    await app.open()
    run = await app.backend.get_run(run_id)
    if run is None:
        raise RunNotFound(run_id)
    return replay(app, run, await app.backend.read_journal(run_id))


async def export_run(app: App, run_id: str) -> dict[str, Any]:
    """A stored run and its journal as JSON-ready data (payloads in base64)."""
    await app.open()
    run = await app.backend.get_run(run_id)
    if run is None:
        raise RunNotFound(run_id)
    journal = await app.backend.read_journal(run_id)
    return {
        "format": FORMAT,
        "run": {
            "id": run.id,
            "workflow": run.workflow,
            "status": run.status.value,
            "input": _b64(run.input),
            "generation": run.generation,
            "created_at": run.created_at,
            "started_at": run.started_at,
            "parent_id": run.parent_id,
        },
        "journal": [
            {
                "seq": e.seq,
                "pos": e.pos,
                "kind": e.kind.value,
                "name": e.name,
                "payload": _b64(e.payload),
                "at": e.at,
                "attempt": e.attempt,
                "failed": e.failed,
            }
            for e in journal
        ],
    }


def load_export(source: str | Path | dict[str, Any]) -> tuple[RunRecord, list[JournalEntry]]:
    """Read what :func:`export_run` wrote (a dict, or the path of a JSON file)."""
    data = source if isinstance(source, dict) else json.loads(Path(source).read_text())
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigurationError(f"not an exported perdure run (expected format {FORMAT!r})")
    try:
        r = data["run"]
        run = RunRecord(
            id=r["id"],
            workflow=r["workflow"],
            status=RunStatus(r["status"]),
            input=_bytes(r["input"]) or b"",
            result=None,
            error=None,
            parent_id=r.get("parent_id"),
            parent_pos=-1,
            generation=int(r.get("generation", 0)),
            journal_len=len(data["journal"]),
            created_at=float(r["created_at"]),
            started_at=r.get("started_at"),
            updated_at=float(r["created_at"]),
            finished_at=None,
            wake_at=None,
            owner=None,
            lease_token=0,
            lease_until=None,
            mailbox=0,
            recoveries=0,
        )
        journal = [
            JournalEntry(
                int(e["seq"]),
                int(e["pos"]),
                EntryKind(e["kind"]),
                e["name"],
                _bytes(e["payload"]),
                float(e["at"]),
                int(e.get("attempt", 0)),
                bool(e.get("failed", False)),
            )
            for e in data["journal"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"exported run is malformed: {exc!r}") from exc
    return run, journal


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)
