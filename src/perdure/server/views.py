"""perdure's objects as the API's JSON: runs, steps, log lines, journal entries,
workers and queues. Timestamps are ISO-8601 UTC strings ending in ``Z``."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import ErrorInfo
from ..records import EntryKind, JournalEntry

if TYPE_CHECKING:
    from ..app import App
    from ..client import RunInfo
    from ..history import LogLine, StepAttempt, StepRecord
    from ..queues import Queue
    from ..worker.registry import WorkerInfo

Json = dict[str, Any]


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def error(info: ErrorInfo | None) -> Json | None:
    """``{"type", "message", "traceback"?}``: the traceback only when one was kept."""
    if info is None:
        return None
    out: Json = {"type": info.type, "message": info.message}
    if info.traceback:
        out["traceback"] = info.traceback
    return out


def run(info: RunInfo) -> Json:
    """The run object, as lists and single gets show it."""
    return {
        "id": info.id,
        "workflow": info.workflow,
        "status": info.status.value,
        "created_at": iso(info.created_at),
        "started_at": iso(info.started_at),
        "finished_at": iso(info.finished_at),
        "parent_id": info.parent_id,
        "key": info.key,
        "queue": info.queue,
        "priority": info.priority,
        "recoveries": info.recoveries,
        "generation": info.generation,
        "journal_len": info.journal_len,
        "version": info.version,
        "waiting_for": info.waiting_for,
        "error": error(info.error),
    }


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() * 1000)


def _log(line: LogLine) -> Json:
    out: Json = {"at": iso(line.at), "level": line.level, "message": line.message}
    if line.position >= 0:
        out["position"] = line.position
        out["step"] = line.step
        out["attempt"] = line.attempt
    return out


def _attempt(attempt: StepAttempt) -> Json:
    return {
        "attempt": attempt.attempt,
        "started_at": iso(attempt.started_at),
        "finished_at": iso(attempt.finished_at),
        "duration_ms": _ms(attempt.started_at, attempt.finished_at),
        "error": error(attempt.error),
        "logs": [_log(line) for line in attempt.logs],
    }


def step(record: StepRecord) -> Json:
    """A step: where it is, how it went, how long it took, what it got and returned.
    ``attempts`` counts its attempts; ``attempt_details`` describes each."""
    started = record.attempts[0].started_at if record.attempts else None
    finished = record.finished_at
    return {
        "position": record.position,
        "name": record.name,
        "status": record.status,
        "attempts": len(record.attempts),
        "started_at": iso(started),
        "finished_at": iso(finished),
        "duration_ms": _ms(started, finished),
        "input": record.input,
        "output": record.result,
        "error": error(record.error),
        "attempt_details": [_attempt(a) for a in record.attempts],
    }


def log(line: LogLine) -> Json:
    return _log(line)


_VALUES = {
    EntryKind.STEP,
    EntryKind.SIGNAL,
    EntryKind.EVENT,
    EntryKind.SIDE_EFFECT,
    EntryKind.CHILD_STARTED,
    EntryKind.CHILD,
}


def journal_entry(app: App, entry: JournalEntry) -> Json:
    """A journal entry: its order, kind and time, where it applies, and what it
    recorded (``value``, ``error`` or, for operators' actions and logs, ``detail``)."""
    out: Json = {
        "seq": entry.seq,
        "kind": entry.kind.value,
        "at": iso(datetime.fromtimestamp(entry.at, UTC)),
    }
    if entry.pos >= 0:
        out["position"] = entry.pos
    if entry.name:
        out["name"] = entry.name
    out["attempt"] = entry.attempt
    out["failed"] = entry.failed
    if entry.failed:
        out["error"] = error(ErrorInfo.from_bytes(entry.payload))
    elif entry.kind in (EntryKind.CONTROL, EntryKind.LOG):
        out["detail"] = _plain_json(entry.payload)
    elif entry.kind in _VALUES and entry.payload is not None:
        # Left out when the app's codec cannot read it (another key, say).
        with contextlib.suppress(Exception):
            out["value"] = app.payloads.decode(entry.payload)
    return out


def _plain_json(data: bytes | None) -> Any:
    try:
        return json.loads(data or b"null")
    except ValueError:
        return None


def worker(info: WorkerInfo) -> Json:
    return {
        "id": info.id,
        "host": info.host,
        "pid": info.pid,
        "version": info.version,
        "workflows": list(info.workflows),
        "queues": list(info.queues) if info.queues is not None else None,
        "concurrency": info.concurrency,
        "held": info.held,
        "started_at": iso(info.started_at),
        "seen_at": iso(info.seen_at),
    }


def queue(declared: Queue, counts: dict[str, int]) -> Json:
    """A queue, the limits it has, and its runs' counts by status."""
    out: Json = {"name": declared.name}
    for option in ("concurrency", "per_worker", "per_key"):
        if getattr(declared, option) is not None:
            out[option] = getattr(declared, option)
    if declared.rate is not None:
        out["rate"] = {"limit": declared.rate.limit, "per": declared.rate.period}
    out["counts"] = counts
    return out
