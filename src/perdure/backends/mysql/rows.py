"""How records meet MySQL's columns: values in, rows out.

Run ids, workflow names, owners, run keys, queues and dedup keys are stored as
VARBINARY (compared byte for byte, no collation) and come back as bytes; inbox and event
keys are unique through their SHA-256, so that keys of any length are kept whole.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

from ...records import InboxItem, NewInboxItem, NewRun, RunRecord, RunStatus
from ..rules import item_from_row, run_from_row

# id, workflow, parent_id, owner, version, key, queue, dedup_key in RUN_COLUMNS
_RUN_TEXT = (0, 1, 6, 15, 20, 21, 22, 24)


class RunState(NamedTuple):
    """What a checkpoint is fenced against, read with the run's row lock
    (``STATE_COLUMNS`` after the id)."""

    owner: str | None
    token: int
    journal_len: int
    mailbox: int
    generation: int
    parent_id: str | None


def text(value: Any) -> Any:
    """A VARBINARY value back to text (None stays None)."""
    return value.decode() if isinstance(value, bytes | bytearray) else value


def run_record(row: Sequence[Any]) -> RunRecord:
    r = list(row)
    for i in _RUN_TEXT:
        r[i] = text(r[i])
    return run_from_row(r)


def inbox_item(row: Sequence[Any]) -> InboxItem:
    r = list(row)
    r[1] = text(r[1])
    return item_from_row(r)


def run_state(r: Sequence[Any]) -> RunState:
    return RunState(text(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), text(r[6]))


def new_record(run: NewRun, start: float, journal_len: int) -> RunRecord:
    """The row ``insert_run`` just wrote (``new_run_values``), without reading it back."""
    return RunRecord(
        id=run.id,
        workflow=run.workflow,
        status=RunStatus.PENDING,
        input=run.input,
        result=None,
        error=None,
        parent_id=run.parent_id,
        parent_pos=run.parent_pos,
        generation=0,
        journal_len=journal_len,
        created_at=float(run.created_at),
        started_at=None,
        updated_at=float(run.created_at),
        finished_at=None,
        wake_at=None if run.queued else float(start),
        owner=None,
        lease_token=0,
        lease_until=None,
        mailbox=0,
        recoveries=0,
        version=run.version,
        key=run.key,
        queue=run.queue,
        priority=run.priority,
        dedup_key=run.dedup_key,
        queued=run.queued,
        admitted_at=None if run.queued else float(start),
    )


def finite(t: float) -> float:
    """MySQL has no infinities: the largest doubles stand for "ever" and "never"."""
    return max(-sys.float_info.max, min(float(t), sys.float_info.max))


def key_hash(key: str | None) -> bytes | None:
    return None if key is None else hashlib.sha256(key.encode()).digest()


def inbox_values(item: NewInboxItem) -> tuple[Any, ...]:
    """The values of ``Statements.add_inbox``."""
    return (
        item.run_id,
        item.kind.value,
        item.pos,
        item.topic,
        item.payload,
        item.key,
        key_hash(item.key),
        item.visible_at,
    )
