"""PostgreSQL connections: a pool per event loop, migrations under an advisory lock,
transactions that survive deadlocks and lost connections, and LISTEN for wake-ups."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import select
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from ..loops import Backoff, close_on_their_loops
from .queries import quote

T = TypeVar("T")
Conn = psycopg.AsyncConnection[TupleRow]
Row = tuple[Any, ...]

log = logging.getLogger("perdure.backends.postgres")

# Every transaction that writes several runs locks them in id order, so deadlocks are
# left to corners (a grandparent notified, two starts racing for one id); PostgreSQL
# then rolls one transaction back, and it is run again, up to this many times. The
# same bound holds for attempts on a fresh connection after one broke.
ATTEMPTS = 8
_RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)


@dataclass
class LoopState:
    """What is kept per event loop: psycopg's async connections belong to the loop
    that made them, and the sync surface runs a loop of its own. ``queue`` and
    ``flusher`` are the backend's writes waiting for the next transaction."""

    pool: AsyncConnectionPool[Conn]
    ready: bool = False
    opening: asyncio.Lock = field(default_factory=asyncio.Lock)
    queue: list[Any] = field(default_factory=list)
    flusher: asyncio.Task[None] | None = None

    async def close(self) -> None:
        await self.pool.close()


class Database:
    """One schema's connections: a pool per event loop, opened (and the schema
    migrated) on first use."""

    def __init__(self, conninfo: str, schema: str, pool_size: int) -> None:
        self.conninfo = conninfo
        self.schema = schema
        self.pool_size = pool_size
        self._states: dict[asyncio.AbstractEventLoop, LoopState] = {}
        self._lock = threading.Lock()
        self._migrated = False
        self._closing: set[asyncio.Task[None]] = set()

    async def migrate(self) -> None:
        if self._migrated:
            return
        files = sorted(
            (
                f
                for f in resources.files(__package__).joinpath("migrations").iterdir()
                if f.name.endswith(".sql")
            ),
            key=lambda f: f.name,
        )
        latest = max(int(f.name.split("_", 1)[0]) for f in files)
        schema = quote(self.schema)
        versions = f"{schema}.perdure_schema"
        conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        try:
            # Most opens find the schema up to date: no lock, no waiting on other openers.
            if await self._schema_version(conn) >= latest:
                self._migrated = True
                return
            async with conn.transaction():
                # One migrating process per schema at a time; the others wait here,
                # then find the work done.
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key(),))
                found = await conn.execute(
                    "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
                )
                if await found.fetchone() is None:
                    await conn.execute(f"CREATE SCHEMA {schema}")
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {versions} (version INTEGER PRIMARY KEY, "
                    "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                current = await self._schema_version(conn)
                await conn.execute(f"SET LOCAL search_path TO {schema}")
                for f in files:
                    version = int(f.name.split("_", 1)[0])
                    if version > current:
                        await conn.execute(f.read_text())
                        await conn.execute(
                            f"INSERT INTO {versions} (version) VALUES (%s)", (version,)
                        )
            self._migrated = True
        finally:
            await conn.close()

    async def _schema_version(self, conn: Conn) -> int:
        table = f"{quote(self.schema)}.perdure_schema"
        cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
        row = await cur.fetchone()
        if not row or not row[0]:
            return 0
        cur = await conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {table}")
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    def _lock_key(self) -> int:
        return advisory_key(f"perdure-migrate:{self.schema}")

    async def state(self) -> LoopState:
        """This loop's connections, opened (and the schema migrated) on first use."""
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
                pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
                    self.conninfo,
                    min_size=1,
                    max_size=self.pool_size,
                    open=False,
                    kwargs={"autocommit": True},
                    check=still_connected,
                    name=f"perdure-{self.schema}",
                )
                state = self._states[loop] = LoopState(pool)
        # Under the loop's opening lock, so that many first calls at once (a burst of
        # starts on an app not yet opened) migrate and connect once, not each.
        async with state.opening:
            if not state.ready:
                try:
                    await self.migrate()
                    await state.pool.open(wait=True)
                except BaseException:
                    with self._lock:
                        if self._states.get(loop) is state:
                            del self._states[loop]
                    raise
                state.ready = True
        return state

    async def listen(self, channel_sql: str, wake: Callable[[], None]) -> None:
        """Run ``channel_sql`` (a LISTEN) on a connection of its own and call ``wake``
        at each notification; reconnect with backoff when it drops (and wake then:
        notifications may have been missed)."""
        await self.migrate()
        backoff = Backoff()
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
                try:
                    await conn.execute(channel_sql)
                    backoff.reset()
                    wake()
                    async for _ in conn.notifies():
                        wake()
                finally:
                    await conn.close()
            except psycopg.Error as exc:
                log.info("listening for wake-ups failed (%s); polling meanwhile", exc)
            await backoff.pause()

    async def close(self) -> None:
        with self._lock:
            states, self._states = self._states, {}
        await close_on_their_loops(states, self._closing)

    async def transact(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``fn`` as one transaction, again if PostgreSQL picks it as a deadlock
        victim (it was rolled back, so running it again is safe), and again on a fresh
        connection if the connection breaks before COMMIT (the server rolls back what a
        lost connection had begun). A connection lost during COMMIT leaves unknown
        whether it took, so that error reaches the caller: a worker then lets the run
        go, and whoever claims it next reads what was committed."""
        state = await self.state()
        for attempt in range(ATTEMPTS):
            committing = False
            try:
                async with state.pool.connection() as conn, conn.transaction():
                    result = await fn(conn)
                    committing = True
                return result
            except _RETRYABLE as exc:
                if attempt == ATTEMPTS - 1:
                    raise
                log.warning("transaction aborted (%s); retrying", exc.sqlstate)
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
            except psycopg.OperationalError as exc:
                if committing or attempt == ATTEMPTS - 1:
                    raise
                await reconnect_pause(exc, attempt)
        raise AssertionError("unreachable")

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """One read-only statement and its rows; read again on a fresh connection if
        the connection breaks (a server restart, a network blip)."""
        state = await self.state()
        for attempt in range(ATTEMPTS):
            try:
                async with state.pool.connection() as conn:
                    return await fetch(conn, sql, params)
            except psycopg.OperationalError as exc:
                if attempt == ATTEMPTS - 1:
                    raise
                await reconnect_pause(exc, attempt)
        raise AssertionError("unreachable")

    async def write(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """One writing statement, a transaction of its own (the pool's connections
        are in autocommit mode): one round trip. Not tried again if the connection
        breaks, since whether it took is then unknown; the caller decides."""
        state = await self.state()
        async with state.pool.connection() as conn:
            return await fetch(conn, sql, params)


def advisory_key(name: str) -> int:
    """A key for pg_advisory_xact_lock (a bigint) standing for ``name``."""
    digest = hashlib.blake2b(name.encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


async def still_connected(conn: Conn) -> None:
    """The pool's check before lending a connection. An idle connection's socket has
    nothing to read unless the server hung up (a restart, an idle timeout), so only
    then is the server asked; a healthy checkout costs one ``select`` call."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    if select.select([conn.fileno()], [], [], 0)[0]:
        await AsyncConnectionPool.check_connection(conn)


async def reconnect_pause(exc: Exception, attempt: int) -> None:
    """Back off before trying again on a fresh connection (the pool replaces broken
    ones in the background, and waits for the server when it is down)."""
    log.warning("database connection failed (%s); trying again", exc)
    await asyncio.sleep(random.uniform(0.5, 1.0) * min(2.0, 0.05 * 2**attempt))


async def fetch(c: Conn, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    # Binary results: payloads arrive as raw bytes and times as exact doubles.
    cur = c.cursor(binary=True)
    await cur.execute(sql, params)
    return await cur.fetchall()


def without_password(url: str) -> str:
    """The URL to show in logs: the password masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
