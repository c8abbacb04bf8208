"""Redis implementation of the backend contract (see ``backends/base.py``)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import parse_url
from redis.exceptions import RedisError

from ...errors import ConfigurationError, RunDeduplicated, RunNotFound
from ...records import (
    Checkpoint,
    CheckpointResult,
    Claim,
    InboxItem,
    InboxKind,
    JournalEntry,
    NewInboxItem,
    NewRun,
    QueueLimits,
    RunChange,
    RunFilter,
    RunPage,
    RunRecord,
    WorkerRecord,
)
from ..base import Backend, Feature
from ..loops import Backoff, close_on_their_loops
from ..rules import cancel_error, dead_letter_error, decode_cursor, encode_cursor
from .layout import (
    LAYOUT_VERSION,
    Keys,
    as_mapping,
    decode_entry,
    encode_entry,
    encode_time,
    item_from_hash,
    run_from_hash,
)
from .scripts import Args, Scripts

log = logging.getLogger("perdure.backends.redis")
_WAKE_READ_TIMEOUT = 1.0  # seconds a wake-up read waits before looking for a cancel

DEFAULT_PREFIX = "perdure:"
DEFAULT_MAX_CONNECTIONS = 16  # per event loop; ``max_connections`` in the URL
# Query parameters that are perdure's, or that perdure decides: the scripts' replies
# are read as RESP2 whatever the client would pick.
_OUR_PARAMETERS = ("prefix", "protocol")


@dataclass
class _LoopState:
    """What the backend keeps per event loop: redis-py's async connections belong to
    the loop that made them, and the sync surface runs a loop of its own."""

    client: Redis
    scripts: Scripts
    ready: bool = False
    opening: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def close(self) -> None:
        await self.client.aclose()


class RedisBackend(Backend):
    features = Feature.MULTI_PROCESS | Feature.DURABLE

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix:
            raise ConfigurationError(
                "prefix=: give a key prefix (default 'perdure:'), so that perdure's keys "
                "cannot mix with other keys in the database"
            )
        parts = urlsplit(url)
        rest = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        self.client_url = urlunsplit(
            parts._replace(query=urlencode([(k, v) for k, v in rest if k not in _OUR_PARAMETERS]))
        )
        try:
            parse_url(self.client_url)  # redis-py's reading of the rest: refuse bad URLs now
        except ValueError as exc:
            raise ConfigurationError(f"{_without_password(url)}: {exc}") from None
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.url = _without_password(url)
        self._states: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._lock = threading.Lock()
        self._checked = False
        self._closing: set[asyncio.Task[None]] = set()

    @classmethod
    def from_url(cls, url: str) -> RedisBackend:
        query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        return cls(url, prefix=query.get("prefix", DEFAULT_PREFIX))

    # -- plumbing -----------------------------------------------------------------------

    async def open(self) -> None:
        await self._state()

    async def watch(self, wake: Callable[[], None]) -> None:
        """Subscribe to the store's wake-up channel, on a connection of its own (the
        scripts publish when they make work due now), and call ``wake`` at each
        message; resubscribe with backoff when the connection drops, and wake then:
        messages may have been missed."""
        await self._state()  # the layout is checked before anything is awaited
        backoff = Backoff()
        while True:
            client = Redis.from_url(self.client_url, decode_responses=False, protocol=2)
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.keys.wake)
                    backoff.reset()
                    wake()
                    while True:
                        # redis-py can swallow a cancel that lands while it connects:
                        # look for one after every wait, and wait a bounded time.
                        _raise_if_cancelled()
                        if await pubsub.get_message(timeout=_WAKE_READ_TIMEOUT) is not None:
                            wake()
            except (RedisError, OSError) as exc:
                log.info("listening for wake-ups failed (%s); polling meanwhile", exc)
            finally:
                await client.aclose()
            await backoff.pause()

    async def _state(self) -> _LoopState:
        """This loop's client, connected (and the store's layout checked) on first use."""
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is not None and state.ready:
            return state
        with self._lock:
            state = self._states.get(loop)
            if state is None:
                # Loops that are gone took their connections' tasks with them.
                for old in [k for k in self._states if k.is_closed()]:
                    del self._states[old]
                # Callers past the pool's size wait for a connection, not fail.
                pool = BlockingConnectionPool.from_url(
                    self.client_url,
                    max_connections=DEFAULT_MAX_CONNECTIONS,
                    decode_responses=False,
                    protocol=2,
                )
                client = Redis.from_pool(pool)
                state = self._states[loop] = _LoopState(client, Scripts.register(client))
        async with state.opening:
            if not state.ready:
                try:
                    if not self._checked:
                        await self._check_layout(state)
                    else:
                        await state.client.ping()
                except BaseException:
                    with self._lock:
                        if self._states.get(loop) is state:
                            del self._states[loop]
                    await state.close()
                    raise
                state.ready = True
        return state

    async def _check_layout(self, state: _LoopState) -> None:
        """Record the layout in a new store, upgrade an older one in place (in one
        script, so processes opening at once upgrade it once), refuse a newer one."""
        _, now = await state.scripts.call("layout", Args(self.prefix).add(LAYOUT_VERSION))
        version = int(now)
        if version > LAYOUT_VERSION:
            raise ConfigurationError(
                f"the keys under prefix {self.prefix!r} were written by a newer perdure "
                f"(layout {version}; this one reads layout {LAYOUT_VERSION}): upgrade perdure"
            )
        self._checked = True

    async def close(self) -> None:
        with self._lock:
            states, self._states = self._states, {}
        await close_on_their_loops(states, self._closing)

    async def _call(self, script: str, args: Args) -> Any:
        state = await self._state()
        return await state.scripts.call(script, args)

    async def _client(self) -> Redis:
        return (await self._state()).client

    def _args(self) -> Args:
        return Args(self.prefix)

    # -- runs -----------------------------------------------------------------------------

    async def create_run(self, run: NewRun) -> tuple[RunRecord, bool]:
        created, fields = await self._call("create", self._args().run(run))
        if created == -1:
            assert run.dedup_key is not None  # only a dedup key refuses a new run
            raise RunDeduplicated(run.queue, run.dedup_key, fields.decode())
        return run_from_hash(run.id, as_mapping(fields)), bool(created)

    async def get_run(self, run_id: str) -> RunRecord | None:
        client = await self._client()
        fields = cast(dict[bytes, bytes], await client.hgetall(self.keys.run(run_id)))
        return run_from_hash(run_id, fields) if fields else None

    async def list_runs(self, filter: RunFilter, limit: int, cursor: str | None) -> RunPage:
        after = decode_cursor(cursor) if cursor is not None else None
        client = await self._client()
        index = await self._smallest_index(client, filter)
        matches: list[RunRecord] = []
        chunk = min(max(2 * (limit + 1), 50), 1000)
        async for ids in _newest_first(
            client, index, after, filter.created_before, filter.created_after, chunk
        ):
            pipe = client.pipeline(transaction=False)
            for run_id in ids:
                pipe.hgetall(self.keys.run(run_id.decode()))
            for run_id, fields in zip(ids, await pipe.execute(), strict=True):
                if not fields:
                    continue
                rec = run_from_hash(run_id.decode(), fields)
                if _matches(rec, filter):
                    matches.append(rec)
            if len(matches) > limit:
                break
        page = matches[:limit]
        more = len(matches) > limit
        return RunPage(page, encode_cursor(page[-1].created_at, page[-1].id) if more else None)

    async def _smallest_index(self, client: Redis, f: RunFilter) -> str:
        """The index to walk: the smallest of those the filter names, or every run."""
        candidates = []
        if f.parent_id is not None:
            candidates.append(self.keys.children_of(f.parent_id))
        if f.workflow is not None:
            candidates.append(self.keys.runs_of_workflow(f.workflow))
        if f.status is not None:
            candidates.append(self.keys.runs_with_status(f.status))
        if f.key is not None:
            candidates.append(self.keys.runs_with_key(f.key))
        if f.queue is not None:
            candidates.append(self.keys.runs_in_queue(f.queue))
        if not candidates:
            return self.keys.all_runs
        if len(candidates) == 1:
            return candidates[0]
        pipe = client.pipeline(transaction=False)
        for key in candidates:
            pipe.zcard(key)
        sizes = await pipe.execute()
        return min(zip(sizes, candidates, strict=True))[1]

    # -- leases ---------------------------------------------------------------------------

    async def claim_runs(
        self,
        owner: str,
        limit: int,
        now: float,
        lease_until: float,
        workflows: Sequence[str],
        max_recoveries: int | None = None,
        version: str | None = None,
        queues: Sequence[str] | None = None,
    ) -> list[Claim]:
        if not workflows or limit <= 0 or (queues is not None and not queues):
            return []
        args = self._args().add(owner, limit).time(now).time(lease_until)
        args.opt(None if max_recoveries is None else str(max_recoveries)).opt(version)
        args.add(len(workflows), *workflows)
        if queues is None:
            args.opt(None)
        else:
            args.opt(str(len(queues))).add(*queues)
        rows, dead = await self._call("claim", args)
        for run_id, previous, token, recoveries in dead:
            # Worded here, where the rules live; applied only if no one moved first.
            error = dead_letter_error(int(recoveries))
            await self._call(
                "dead_letter", self._args().add(run_id, previous, token).time(now).add(error)
            )
        claims = []
        for run_id, fields, items in rows:
            rec = run_from_hash(run_id.decode(), as_mapping(fields))
            claims.append(Claim(rec, rec.lease_token, _items(rec.id, items)))
        return claims

    async def admit_runs(self, queue: QueueLimits, now: float, limit: int = 100) -> list[str]:
        if limit <= 0:
            return []
        args = self._args().add(queue.name).time(now).add(limit)
        args.opt(_number(queue.concurrency)).opt(_number(queue.per_key))
        args.opt(_number(queue.rate))
        args.opt(None if queue.rate is None else encode_time(now - queue.period))
        return [run_id.decode() for run_id in await self._call("admit", args)]

    async def extend_leases(
        self, owner: str, leases: dict[str, int], lease_until: float
    ) -> dict[str, int]:
        if not leases:
            return {}
        args = self._args().add(owner).time(lease_until).add(len(leases))
        for run_id, token in leases.items():
            args.add(run_id, token)
        flat = await self._call("extend", args)
        return {
            run_id.decode(): int(mailbox)
            for run_id, mailbox in zip(flat[::2], flat[1::2], strict=True)
        }

    async def release(self, run_id: str, owner: str, token: int, now: float) -> bool:
        return bool(await self._call("release", self._args().add(run_id, owner, token).time(now)))

    # -- journal and inbox ----------------------------------------------------------------

    async def read_journal(self, run_id: str) -> list[JournalEntry]:
        client = await self._client()
        fields = cast(dict[bytes, bytes], await client.hgetall(self.keys.journal(run_id)))
        return [decode_entry(seq, fields[key]) for seq, key in sorted((int(k), k) for k in fields)]

    async def read_inbox(self, run_id: str, now: float) -> list[InboxItem]:
        return _items(run_id, await self._call("read_inbox", self._args().add(run_id).time(now)))

    async def deliver(self, item: NewInboxItem, now: float) -> bool:
        args = self._args().time(now).delivery(item, _cancel_error(item))
        delivered = await self._call("deliver", args)
        if delivered < 0:
            raise RunNotFound(item.run_id)
        return bool(delivered)

    # -- operators ------------------------------------------------------------------------

    async def change_run(self, change: RunChange, now: float) -> tuple[RunRecord, bool]:
        args = self._args().add(change.run_id).time(now)
        args.add(len(change.expect), *(s.value for s in change.expect))
        args.add(change.status.value).flag(change.fence)
        args.opt(None if change.truncate_from is None else str(change.truncate_from))
        args.add(len(change.entries), *(encode_entry(e) for e in change.entries))
        args.opt(change.error)
        args.add(len(change.inbox))
        for item in change.inbox:
            args.item(item)
        reply = await self._call("change", args.flag(change.wake))
        if reply == -1:
            raise RunNotFound(change.run_id)
        applied, fields = reply
        if applied == -2:
            rec = await self.get_run(change.run_id)
            assert rec is not None and rec.dedup_key is not None
            raise RunDeduplicated(rec.queue, rec.dedup_key, fields.decode())
        return run_from_hash(change.run_id, as_mapping(fields)), bool(applied)

    async def purge_runs(
        self, finished_before: float, limit: int, run_id: str | None = None
    ) -> list[str]:
        if limit <= 0:
            return []
        args = self._args().time(finished_before).add(limit).opt(run_id)
        return [run.decode() for run in await self._call("purge", args)]

    # -- workers --------------------------------------------------------------------------

    async def save_worker(self, worker_id: str, seen_at: float, info: bytes) -> None:
        await self._call("save_worker", self._args().add(worker_id).time(seen_at).add(info))

    async def list_workers(self, seen_after: float) -> list[WorkerRecord]:
        rows = await self._call("workers", self._args().time(seen_after))
        workers = [
            WorkerRecord(worker_id.decode(), float(seen_at), info)
            for worker_id, seen_at, info in rows
        ]
        return sorted(workers, key=lambda w: w.id)

    async def forget_workers(self, seen_before: float, worker_id: str | None = None) -> int:
        args = self._args().time(seen_before).opt(worker_id)
        return int(await self._call("forget_workers", args))

    async def get_event(self, run_id: str, key: str) -> bytes | None:
        client = await self._client()
        return cast(bytes | None, await client.hget(self.keys.events(run_id), key))

    async def next_wake_at(self) -> float | None:
        found = await self._call("next_wake", self._args())
        return None if found is None else float(found)

    # -- checkpoints ----------------------------------------------------------------------

    async def checkpoint(self, batch: Sequence[Checkpoint]) -> list[CheckpointResult]:
        if not batch:
            return []
        args = self._args().add(len(batch))
        for cp in batch:
            _checkpoint_args(args, cp)
        rows, refused = await self._call("checkpoint", args)
        if refused:
            # The checkpoints before it in the batch are written: Redis undoes nothing.
            queue, dedup_key, holder = (value.decode() for value in refused)
            raise RunDeduplicated(queue, dedup_key, holder)
        return [CheckpointResult(bool(applied), int(mailbox)) for applied, mailbox in rows]


def _checkpoint_args(args: Args, cp: Checkpoint) -> None:
    """One checkpoint, in the order ``read_checkpoint`` in ``checkpoint.lua`` reads it."""
    args.add(cp.run_id, cp.owner, cp.token).time(cp.now).time(cp.lease_until)
    args.add(len(cp.entries))
    for entry in cp.entries:
        args.add(entry.seq, encode_entry(entry))
    args.add(len(cp.consumed), *cp.consumed)
    args.add(len(cp.inbox))
    for item in cp.inbox:
        args.delivery(item, _cancel_error(item))
    args.add(len(cp.cancel_timers), *cp.cancel_timers)
    args.add(len(cp.children))
    for child in cp.children:
        args.run(child)
    args.add(len(cp.cancel_runs))
    for target, reason in cp.cancel_runs:
        cancel = NewInboxItem(
            target, InboxKind.CANCEL, cp.now, payload=reason.encode(), key="cancel"
        )
        args.delivery(cancel, _cancel_error(cancel))
    args.add(len(cp.events))
    for key, value in cp.events.items():
        args.add(key, value)
    args.add(cp.outcome.value).opt(cp.result).opt(cp.error).opt(cp.new_input)
    args.flag(cp.release).add(cp.mailbox_seen).flag(cp.runnable)


def _cancel_error(item: NewInboxItem) -> bytes | None:
    """The error a cancel leaves on a run it ends without a worker."""
    return cancel_error(item.payload) if item.kind is InboxKind.CANCEL else None


def _number(value: int | None) -> str | None:
    return None if value is None else str(value)


def _items(run_id: str, rows: list[list[Any]]) -> list[InboxItem]:
    return [item_from_hash(int(item_id), run_id, as_mapping(flat)) for item_id, flat in rows]


def _matches(rec: RunRecord, f: RunFilter) -> bool:
    return (
        (f.workflow is None or rec.workflow == f.workflow)
        and (f.status is None or rec.status == f.status)
        and (f.parent_id is None or rec.parent_id == f.parent_id)
        and (f.key is None or rec.key == f.key)
        and (f.queue is None or rec.queue == f.queue)
        and (f.created_after is None or rec.created_at >= f.created_after)
        and (f.created_before is None or rec.created_at < f.created_before)
    )


def _raise_if_cancelled() -> None:
    """Raise the cancel of the current task that a library caught and dropped."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _newest_first(
    client: Redis,
    index: str,
    after: tuple[float, str] | None,
    before: float | None,
    since: float | None,
    chunk: int,
) -> AsyncIterator[list[bytes]]:
    """The ids in a sorted set of runs scored by created_at, newest first (ties by id,
    descending), strictly after the cursor ``after``, created in [since, before); in
    chunks. Each chunk starts from where the last one ended, not from an offset, so
    runs added meanwhile neither repeat nor hide others."""
    low = "-inf" if since is None else repr(float(since))
    bound: tuple[float, bytes] | None = None
    high = "+inf" if before is None else f"({float(before)!r}"
    if after is not None and (before is None or after[0] < before):
        bound = (after[0], after[1].encode())
    while True:
        if bound is not None:
            score, member = bound
            if since is not None and score < since:
                return
            # Runs created at the bound's very instant sort by id: those below it.
            ties = cast(list[bytes], await client.zrangebyscore(index, repr(score), repr(score)))
            below = sorted((m for m in ties if m < member), reverse=True)
            if below:
                yield below
            high = f"({score!r}"
        rows = cast(
            list[tuple[bytes, float]],
            await client.zrevrangebyscore(index, high, low, start=0, num=chunk, withscores=True),
        )
        if rows:
            yield [member for member, _ in rows]
        if len(rows) < chunk:
            return
        last_member, last_score = rows[-1]
        bound = (float(last_score), last_member)


def _without_password(url: str) -> str:
    """The URL to show in logs: the password masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
