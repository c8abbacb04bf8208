"""A run's history as operators read it: its steps with their attempts, and the lines
its code logged, built from the journal."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .clock import to_datetime
from .errors import ErrorInfo
from .records import EntryKind, JournalEntry


@dataclass(frozen=True)
class LogLine:
    """A line logged through ``perdure.logger`` (INFO and above), kept with the run."""

    at: datetime
    level: str
    message: str
    step: str | None  # None: the workflow's own code
    position: int  # the step's position (-1 for the workflow's own code)
    attempt: int


@dataclass(frozen=True)
class StepAttempt:
    attempt: int
    started_at: datetime | None  # None for runs recorded before starts were kept
    finished_at: datetime
    error: ErrorInfo | None  # None: it succeeded
    logs: list[LogLine] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        """Seconds the attempt took, from its start to its result."""
        if self.started_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class StepRecord:
    """One step of a run, at its position in the code."""

    position: int
    name: str
    status: str  # "completed", "failed" (for good) or "retrying"
    input: Any  # {"args": [...], "kwargs": {...}} as plain JSON; None if not storable
    attempts: list[StepAttempt]
    result: Any  # the recorded return value, as plain JSON (None unless completed)
    error: ErrorInfo | None  # the final error of a failed step

    @property
    def finished_at(self) -> datetime | None:
        return self.attempts[-1].finished_at if self.status != "retrying" else None


def log_lines(journal: list[JournalEntry]) -> list[LogLine]:
    lines = []
    for entry in journal:
        if entry.kind is EntryKind.LOG:
            data = json.loads(entry.payload or b"{}")
            position = int(data.get("position", -1))
            lines.append(
                LogLine(
                    to_datetime(entry.at),
                    str(data.get("level", "INFO")),
                    str(data.get("message", "")),
                    entry.name if position >= 0 else None,
                    position,
                    int(data.get("attempt", 0)),
                )
            )
    return lines


def steps(journal: list[JournalEntry], decode: Callable[[bytes | None], Any]) -> list[StepRecord]:
    """The run's steps in position order, each with every attempt recorded for it;
    ``decode`` turns a recorded value into plain JSON (through the app's codec)."""
    logs: dict[tuple[int, int], list[LogLine]] = {}
    for line in log_lines(journal):
        logs.setdefault((line.position, line.attempt), []).append(line)
    by_pos: dict[int, list[JournalEntry]] = {}
    for entry in journal:
        if entry.kind in (EntryKind.STEP, EntryKind.STEP_ATTEMPT):
            by_pos.setdefault(entry.pos, []).append(entry)
    out = []
    for pos in sorted(by_pos):
        entries = by_pos[pos]
        attempts = [
            StepAttempt(
                e.attempt,
                _started(e.detail),
                to_datetime(e.at),
                ErrorInfo.from_bytes(e.payload) if e.failed else None,
                logs.get((pos, e.attempt), []),
            )
            for e in entries
        ]
        given = (entries[0].detail or b"").partition(b"\n")[2]
        last = entries[-1]
        if last.kind is EntryKind.STEP_ATTEMPT:
            status, result, error = "retrying", None, None
        elif last.failed:
            status, result, error = "failed", None, ErrorInfo.from_bytes(last.payload)
        else:
            status, result, error = "completed", decode(last.payload), None
        step_input = decode(given) if given else None
        out.append(StepRecord(pos, last.name, status, step_input, attempts, result, error))
    return out


def _started(detail: bytes | None) -> datetime | None:
    """When the attempt started: the JSON header line of a step entry's detail."""
    if not detail:
        return None
    started = json.loads(detail.partition(b"\n")[0] or b"{}").get("started")
    return to_datetime(float(started)) if started is not None else None
