"""Rules every backend applies the same way, kept in one place."""

from __future__ import annotations

import base64
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ..records import (
    EntryKind,
    InboxItem,
    InboxKind,
    JournalEntry,
    NewInboxItem,
    NewRun,
    QueueLimits,
    RunChange,
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
    """The (created_at, run id) a list page ended at. A cursor is handed out by a
    list and may come back forged: anything no list could have made is refused."""
    try:
        created_at, run_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        when, after = float(created_at), str(run_id)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid cursor {cursor!r}") from exc
    if not math.isfinite(when) or "\0" in after:
        raise ValueError(f"invalid cursor {cursor!r}")
    return when, after


# -- queues ------------------------------------------------------------------------------

# A run admitted to its queue holds its place until it ends.
UNFINISHED = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.HELD)


def reclaims_dedup_key(rec: RunRecord, change: RunChange) -> bool:
    """Whether ``change`` brings an ended run with a dedup key back (a retry): the key
    is its again only if no unfinished run of its queue took it meanwhile; if one did,
    the change is refused with RunDeduplicated, and nothing changes."""
    return (
        rec.dedup_key is not None and rec.status not in UNFINISHED and change.status in UNFINISHED
    )


def admission_room(queue: QueueLimits, occupied: int, recent: int, limit: int) -> int:
    """How many runs ``queue`` may admit now: ``occupied`` places are taken by admitted
    runs that have not ended, and ``recent`` runs were admitted within its period."""
    room = limit
    if queue.concurrency is not None:
        room = min(room, queue.concurrency - occupied)
    if queue.rate is not None:
        room = min(room, queue.rate - recent)
    return max(room, 0)


def pick_admissions(
    queue: QueueLimits,
    room: int,
    occupied_by_key: Mapping[str | None, int],
    waiting: Sequence[tuple[str, str | None]],
) -> list[str]:
    """The runs to admit, from ``waiting`` (id, key) in queue order: at most ``room``,
    skipping those whose key has its ``per_key`` places taken, so a busy key never
    holds back the others."""
    taken = Counter(occupied_by_key)
    picked: list[str] = []
    for run_id, key in waiting:
        if len(picked) >= room:
            break
        if queue.per_key is not None and key is not None:
            if taken[key] >= queue.per_key:
                continue
            taken[key] += 1
        picked.append(run_id)
    return picked


# The same, in SQL (SQLite, PostgreSQL, MySQL): ``ph`` is the driver's placeholder.
UNFINISHED_SQL = "(" + ", ".join(f"'{s.value}'" for s in UNFINISHED) + ")"


def waiting_runs_sql(queue: QueueLimits, runs: str, ph: str) -> str:
    """The runs a queue may admit next, as (id, key) rows in queue order, at most
    ``room`` of them; with ``per_key``, only runs whose key has a place left."""
    waiting = (
        f"FROM {runs} WHERE queue = {ph} AND ready_at IS NOT NULL AND ready_at <= {ph} "
        "AND status = 'pending'"
    )
    if queue.per_key is None:
        return f"SELECT id, {_KEY} {waiting} ORDER BY priority DESC, ready_at, id LIMIT {ph}"
    # Each waiting run's turn within its key, against the places its key has left.
    return (
        "SELECT w.id, w.k FROM ("
        f"SELECT id, {_KEY} AS k, priority, ready_at, ROW_NUMBER() OVER "
        f"(PARTITION BY {_KEY} ORDER BY priority DESC, ready_at, id) AS turn {waiting}"
        f") w LEFT JOIN (SELECT {_KEY} AS k, COUNT(*) AS n FROM {runs} WHERE queue = {ph} "
        f"AND admitted_at IS NOT NULL AND status IN {UNFINISHED_SQL} AND {_KEY} IS NOT NULL "
        f"GROUP BY {_KEY}) o ON o.k = w.k "
        f"WHERE w.k IS NULL OR w.turn + COALESCE(o.n, 0) <= {ph} "
        f"ORDER BY w.priority DESC, w.ready_at, w.id LIMIT {ph}"
    )


def waiting_runs_params(queue: QueueLimits, now: float, room: int) -> tuple[Any, ...]:
    if queue.per_key is None:
        return (queue.name, now, room)
    return (queue.name, now, queue.name, queue.per_key, room)


_KEY = "key"  # quoted where it is a reserved word: see the MySQL backend


# The columns a new run is inserted with (status is 'pending'), and their values.
NEW_RUN_COLUMNS = (
    "id, workflow, input, parent_id, parent_pos, created_at, updated_at, wake_at, version, "
    "key, queue, priority, dedup_key, ready_at, admitted_at"
)


def new_run_values(run: NewRun) -> tuple[Any, ...]:
    """The values for ``NEW_RUN_COLUMNS``. A queued run is not due (no ``wake_at``)
    until its queue admits it, and waits from its start time (``ready_at``)."""
    start = run.start_at if run.start_at is not None else run.created_at
    return (
        run.id,
        run.workflow,
        run.input,
        run.parent_id,
        run.parent_pos,
        run.created_at,
        run.created_at,
        None if run.queued else start,
        run.version,
        run.key,
        run.queue,
        run.priority,
        run.dedup_key,
        start if run.queued else None,
        None if run.queued else start,
    )


# The column order the SQL backends select in, and how such a row becomes a record.
RUN_COLUMNS = (
    "id, workflow, status, input, result, error, parent_id, parent_pos, generation, "
    "journal_len, created_at, started_at, updated_at, finished_at, wake_at, owner, "
    "lease_token, lease_until, mailbox, recoveries, version, key, queue, priority, "
    "dedup_key, ready_at IS NOT NULL, admitted_at"
)
ITEM_COLUMNS = "id, run_id, kind, pos, topic, payload, visible_at, key"
JOURNAL_COLUMNS = "seq, pos, kind, name, payload, at, attempt, failed, detail"
_TIME_COLUMNS = (10, 11, 12, 13, 14, 17, 26)


def _time(value: Any) -> float | None:
    # SQLite hands back a whole-number REAL as an int in some paths (RETURNING).
    return None if value is None else float(value)


def run_from_row(row: Sequence[Any]) -> RunRecord:
    r = list(row)
    r[2] = RunStatus(r[2])
    for i in _TIME_COLUMNS:
        r[i] = _time(r[i])
    r[25] = bool(r[25])
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
