"""Rules every backend applies the same way, kept in one place."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from ..records import (
    EntryKind,
    InboxItem,
    InboxKind,
    JournalEntry,
    NewInboxItem,
    RunRecord,
    RunStatus,
)

# What a run keeps when it continues as new: messages not yet received, a cancel not
# yet seen, and its own deadline (which counts from the first start).
CARRIED_OVER = (InboxKind.SIGNAL, InboxKind.CANCEL, InboxKind.DEADLINE)


def wake_after(
    pending: list[InboxItem], mailbox: int, mailbox_seen: int, now: float, runnable: bool
) -> float | None:
    """When a released run next needs a worker.

    A run released with work left (``runnable``: a shutdown held back its steps) is
    due at once. Messages that arrived after the worker last looked (``mailbox`` moved on) wake it
    at once; messages it already saw wake it only when another message comes, since
    nothing in the run is waiting for them. Timers, retries, child results and
    cancellations wake it when they become visible.
    """
    if runnable or mailbox != mailbox_seen:
        return now
    times = [i.visible_at for i in pending if i.kind is not InboxKind.SIGNAL]
    return min(times) if times else None


def child_outcome_item(child: RunRecord, now: float) -> NewInboxItem:
    """The inbox item telling a parent that its child finished: the status in ``topic``,
    the result (completed) or the error (otherwise) in ``payload``."""
    assert child.parent_id is not None
    payload = child.result if child.status.value == "completed" else child.error
    return NewInboxItem(
        child.parent_id,
        InboxKind.CHILD,
        now,
        pos=child.parent_pos,
        topic=child.status.value,
        payload=payload,
        key=f"child:{child.id}",
    )


def deadline_item(run_id: str, start: float, timeout: float) -> NewInboxItem:
    """The item that cancels a run ``timeout`` seconds after ``start``."""
    reason = f"workflow timed out after {timeout:g} s"
    return NewInboxItem(
        run_id, InboxKind.DEADLINE, start + timeout, payload=reason.encode(), key="deadline"
    )


def cancels_at_once(status: RunStatus, owner: str | None) -> bool:
    """A cancel ends the run without a worker when there is no code to unwind: it never
    started, or it is held (no deployed code can replay it)."""
    return (status is RunStatus.PENDING and owner is None) or status is RunStatus.HELD


def dead_letter_error(recoveries: int) -> bytes:
    text = (
        f"the workers running it were lost {recoveries + 1} times in a row without progress; "
        "find the cause (a crash, a kill by the OOM killer), then retry the run"
    )
    return json.dumps({"type": "DeadLetter", "message": text, "traceback": ""}).encode()


def dead_letters(recoveries: int, owner: str | None, max_recoveries: int | None) -> bool:
    """A claim that would recover an expired lease once more than allowed dead-letters
    the run instead."""
    return owner is not None and max_recoveries is not None and recoveries >= max_recoveries


def cancel_error(reason: bytes | None) -> bytes:
    text = reason.decode() if reason else "cancelled"
    return json.dumps({"type": "Cancelled", "message": text, "traceback": ""}).encode()


def encode_cursor(created_at: float, run_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, run_id]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created_at, run_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(created_at), str(run_id)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid cursor {cursor!r}") from exc


# The column order the SQL backends select in, and how such a row becomes a record.
RUN_COLUMNS = (
    "id, workflow, status, input, result, error, parent_id, parent_pos, generation, "
    "journal_len, created_at, started_at, updated_at, finished_at, wake_at, owner, "
    "lease_token, lease_until, mailbox, recoveries, version"
)
ITEM_COLUMNS = "id, run_id, kind, pos, topic, payload, visible_at, key"
JOURNAL_COLUMNS = "seq, pos, kind, name, payload, at, attempt, failed, detail"
_TIME_COLUMNS = (10, 11, 12, 13, 14, 17)


def _time(value: Any) -> float | None:
    # SQLite hands back a whole-number REAL as an int in some paths (RETURNING).
    return None if value is None else float(value)


def run_from_row(row: Sequence[Any]) -> RunRecord:
    r = list(row)
    r[2] = RunStatus(r[2])
    for i in _TIME_COLUMNS:
        r[i] = _time(r[i])
    return RunRecord(*r)


def item_from_row(r: Sequence[Any]) -> InboxItem:
    return InboxItem(r[0], r[1], InboxKind(r[2]), r[3], r[4], r[5], float(r[6]), r[7])


def entry_values(e: JournalEntry) -> tuple[Any, ...]:
    """A journal entry as the column values ``entry_from_row`` reads back."""
    return (e.seq, e.pos, e.kind.value, e.name, e.payload, e.at, e.attempt, e.failed, e.detail)


def entry_from_row(r: Sequence[Any]) -> JournalEntry:
    return JournalEntry(
        r[0], r[1], EntryKind(r[2]), r[3], r[4], float(r[5]), r[6], bool(r[7]), r[8]
    )
