"""How perdure's records are kept in Redis: key names and the encodings of values.

Every key starts with the store's prefix. Times are stored as the strings ``repr``
makes of them (exact doubles); payloads as raw bytes; a field that is ``None`` is
absent from its hash. The Lua scripts (``lua/lib.lua``) name the same keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from ...records import EntryKind, InboxItem, InboxKind, JournalEntry, RunRecord, RunStatus

# The version of this layout: recorded in a new store, checked on open, and an older
# store upgraded to it (``lua/layout.lua``). 2: run versions, entry details, workers.
# 3: run keys, queues, priorities, dedup keys.
LAYOUT_VERSION = 3


class Keys:
    """The names of the keys of one store (one prefix)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.layout = f"{prefix}layout"
        self.all_runs = f"{prefix}idx:all"
        self.wake = f"{prefix}wake"  # the pub/sub channel of wake-ups (lib.lua)

    def run(self, run_id: str) -> str:
        return f"{self.prefix}run:{run_id}"

    def journal(self, run_id: str) -> str:
        return f"{self.prefix}journal:{run_id}"

    def events(self, run_id: str) -> str:
        return f"{self.prefix}events:{run_id}"

    def runs_of_workflow(self, workflow: str) -> str:
        return f"{self.prefix}idx:workflow:{workflow}"

    def runs_with_status(self, status: RunStatus) -> str:
        return f"{self.prefix}idx:status:{status.value}"

    def children_of(self, parent_id: str) -> str:
        return f"{self.prefix}idx:parent:{parent_id}"

    def runs_with_key(self, key: str) -> str:
        return f"{self.prefix}idx:key:{key}"

    def runs_in_queue(self, queue: str) -> str:
        return f"{self.prefix}idx:queue:{queue}"


def encode_time(value: float) -> str:
    return repr(float(value))


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _time(value: bytes | None) -> float | None:
    return None if value is None else float(value)


def as_mapping(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    """A hash as a Lua script returns it (field, value, field, value, ...)."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def run_from_hash(run_id: str, h: Mapping[bytes, bytes]) -> RunRecord:
    return RunRecord(
        id=run_id,
        workflow=h[b"workflow"].decode(),
        status=RunStatus(h[b"status"].decode()),
        input=h[b"input"],
        result=h.get(b"result"),
        error=h.get(b"error"),
        parent_id=_text(h.get(b"parent_id")),
        parent_pos=int(h[b"parent_pos"]),
        generation=int(h[b"generation"]),
        journal_len=int(h[b"journal_len"]),
        created_at=float(h[b"created_at"]),
        started_at=_time(h.get(b"started_at")),
        updated_at=float(h[b"updated_at"]),
        finished_at=_time(h.get(b"finished_at")),
        wake_at=_time(h.get(b"wake_at")),
        owner=_text(h.get(b"owner")),
        lease_token=int(h[b"lease_token"]),
        lease_until=_time(h.get(b"lease_until")),
        mailbox=int(h[b"mailbox"]),
        recoveries=int(h[b"recoveries"]),
        version=_text(h.get(b"version")),
        key=_text(h.get(b"key")),
        queue=h[b"queue"].decode(),
        priority=int(h[b"priority"]),
        dedup_key=_text(h.get(b"dedup_key")),
        queued=b"ready_at" in h,
        admitted_at=_time(h.get(b"admitted_at")),
    )


def item_from_hash(item_id: int, run_id: str, h: Mapping[bytes, bytes]) -> InboxItem:
    return InboxItem(
        id=item_id,
        run_id=run_id,
        kind=InboxKind(h[b"kind"].decode()),
        pos=int(h[b"pos"]),
        topic=_text(h.get(b"topic")),
        payload=h.get(b"payload"),
        visible_at=float(h[b"visible_at"]),
        key=_text(h.get(b"key")),
    )


# A journal entry is one hash field (its seq) whose value is a JSON header, a newline,
# then the detail's raw bytes and the payload's. The header's last value is the
# detail's length (null: no detail); layout 1 wrote no such value, and no detail.
# JSON writes floats with repr, so times come back exact.


def encode_entry(entry: JournalEntry) -> bytes:
    header = [
        entry.pos,
        entry.kind.value,
        entry.name,
        float(entry.at),
        entry.attempt,
        entry.failed,
        entry.payload is not None,
        None if entry.detail is None else len(entry.detail),
    ]
    head = json.dumps(header, separators=(",", ":")).encode()
    return b"".join((head, b"\n", entry.detail or b"", entry.payload or b""))


def decode_entry(seq: int, data: bytes) -> JournalEntry:
    header, _, body = data.partition(b"\n")
    pos, kind, name, at, attempt, failed, has_payload, *since_layout_2 = json.loads(header)
    detail_length = since_layout_2[0] if since_layout_2 else None
    detail = None
    if detail_length is not None:
        detail, body = body[:detail_length], body[detail_length:]
    payload = body if has_payload else None
    return JournalEntry(seq, pos, EntryKind(kind), name, payload, at, attempt, failed, detail)
