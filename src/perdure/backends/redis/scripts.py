"""The Lua scripts that make up the backend's transactions, and how their arguments
are laid out.

Each script is a shebang line (its flags), ``lua/lib.lua`` (shared functions), then
its own file, called by EVALSHA. A script takes no KEYS: it derives every key from
the prefix, its first argument, so the backend needs one Redis server (not a
cluster). Its other arguments are values packed into one string (each a 4-byte
length, then its bytes), which the script reads in order (``arg``/``opt`` in
``lib.lua``): one argument however long a checkpoint batch is, far cheaper for the
client to send than thousands.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from itertools import chain
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from ...records import DEFAULT_QUEUE, InboxKind, NewInboxItem, NewRun, RunStatus
from ..rules import CARRIED_OVER, UNFINISHED, deadline_item
from .layout import encode_entry, encode_time

Value = str | bytes


def _lua_set(names: Iterable[str]) -> str:
    return "{" + ", ".join(f"['{name}'] = true" for name in names) + "}"


def _source(name: str) -> str:
    folder = resources.files(__package__).joinpath("lua")
    return folder.joinpath(f"{name}.lua").read_text()


_LIB = (
    _source("lib")
    .replace("{{SCHEDULED}}", _lua_set(k.value for k in InboxKind if k.scheduled))
    .replace("{{CARRIED_OVER}}", _lua_set(k.value for k in CARRIED_OVER))
    .replace("{{TERMINAL}}", _lua_set(s.value for s in RunStatus if s.is_terminal))
    .replace("{{ACTIVE}}", _lua_set(s.value for s in RunStatus if s.is_active))
    .replace("{{UNFINISHED}}", _lua_set(s.value for s in UNFINISHED))
    .replace("{{DEFAULT_QUEUE}}", f"'{DEFAULT_QUEUE}'")
)

NAMES = (
    "layout",
    "create",
    "deliver",
    "claim",
    "admit",
    "checkpoint",
    "extend",
    "release",
    "read_inbox",
    "next_wake",
    "dead_letter",
    "change",
    "purge",
    "save_worker",
    "workers",
    "forget_workers",
)
# The scripts that only read may run while Redis is out of memory, or on a replica.
_READ_ONLY = ("read_inbox", "next_wake", "workers")


def _shebang(name: str) -> str:
    # no-cluster: the scripts reach keys they derive rather than declare.
    flags = "no-cluster,no-writes" if name in _READ_ONLY else "no-cluster"
    return f"#!lua flags={flags}\n"


SOURCES = {name: _shebang(name) + _LIB + "\n" + _source(name) for name in NAMES}


@dataclass(frozen=True)
class Scripts:
    """The scripts, registered with one client (they are loaded on first use)."""

    client: Redis
    scripts: dict[str, AsyncScript]

    @classmethod
    def register(cls, client: Redis) -> Scripts:
        return cls(client, {name: client.register_script(SOURCES[name]) for name in NAMES})

    async def call(self, name: str, args: Args) -> Any:
        return await self.scripts[name](keys=[], args=[args.prefix, args.packed()])


class Args:
    """A script's argument list, written in the order the script reads it."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.values: list[bytes] = []

    def packed(self) -> bytes:
        values = self.values
        lengths = struct.pack(f">{len(values)}I", *map(len, values))
        return b"".join(chain.from_iterable(zip(_split4(lengths), values, strict=True)))

    def add(self, *values: Value | int) -> Args:
        append = self.values.append
        for value in values:
            append(value if isinstance(value, bytes) else _bytes(value))
        return self

    def time(self, value: float) -> Args:
        self.values.append(encode_time(value).encode())
        return self

    def flag(self, value: bool) -> Args:
        self.values.append(b"1" if value else b"0")
        return self

    def opt(self, value: Value | None) -> Args:
        """A value that may be absent (``opt()`` in ``lib.lua``)."""
        if value is None:
            self.values.append(b"0")
        else:
            self.values.extend((b"1", _bytes(value)))
        return self

    def item(self, item: NewInboxItem) -> Args:
        """An inbox item (``read_item`` in ``lib.lua``)."""
        self.add(item.run_id, item.kind.value, item.pos).opt(item.topic).opt(item.payload)
        return self.time(item.visible_at).opt(item.key)

    def delivery(self, item: NewInboxItem, cancel_error: bytes | None) -> Args:
        """An item for another run, with the error a cancel leaves if it ends that run at
        once (``read_delivery`` in ``lib.lua``)."""
        return self.item(item).opt(cancel_error)

    def run(self, run: NewRun) -> Args:
        """A run to create, with its deadline item if it has a timeout, its version, and
        its place in a queue (``read_run``)."""
        start = run.start_at if run.start_at is not None else run.created_at
        self.add(run.id, run.workflow, run.input).opt(run.parent_id).add(run.parent_pos)
        self.time(run.created_at).time(start).flag(run.timeout is not None)
        if run.timeout is not None:
            self.item(deadline_item(run.id, start, run.timeout))
        self.add(len(run.journal))
        for entry in run.journal:
            self.add(entry.seq, encode_entry(entry))
        self.add(len(run.events))
        for key, value in run.events:
            self.add(key, value)
        self.opt(run.version).opt(run.key).add(run.queue, run.priority).opt(run.dedup_key)
        return self.flag(run.queued)


def _bytes(value: Value | int) -> bytes:
    if isinstance(value, bytes):
        return value
    return value.encode() if isinstance(value, str) else b"%d" % value


def _split4(data: bytes) -> Iterator[bytes]:
    return (data[i : i + 4] for i in range(0, len(data), 4))
