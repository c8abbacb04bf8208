"""How the MySQL backend reaches its store: settings from the URL, a connection pool per
event loop, migrations on first use, and transactions run again when InnoDB aborts
them for a deadlock or a lock wait."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import hashlib
import logging
import random
import re
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import asyncmy
from asyncmy.connection import Connection
from asyncmy.errors import MySQLError
from asyncmy.pool import Pool

from ...errors import ConfigurationError
from ..loops import close_on_their_loops

T = TypeVar("T")
Row = tuple[Any, ...]

log = logging.getLogger("perdure.backends.mysql")

DEFAULT_PREFIX = "perdure_"
DEFAULT_POOL_SIZE = 10
DEFAULT_CONNECT_TIMEOUT = 10.0
OPTIONS = ("prefix", "pool_size", "connect_timeout", "unix_socket", "ssl", "ssl_ca")
_PREFIX = re.compile(r"[A-Za-z0-9_]{1,48}")  # table names stay under MySQL's 64
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

# Every connection: READ COMMITTED, so that claims and locks by id take no gap locks
# (a claim would otherwise block starts of runs due in the range it scanned), and
# strict, so that a value that does not fit is an error, never a silent truncation.
_SESSION = (
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; "
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'"
)

# Every transaction that writes several runs locks them in id order, so deadlocks are
# left to corners (a grandparent notified, two starts racing for one id); InnoDB then
# rolls one transaction back (1213), or a lock wait times out (1205), and it is run
# again, up to this many times.
_ATTEMPTS = 8
RETRYABLE = (1213, 1205)
_MIGRATION_LOCK_SECONDS = 120
_DUPLICATE_COLUMN = 1060

# A statement over many rows is cut into pieces of about this many bytes of values, well
# under the server's max_allowed_packet (16 MiB by default on MariaDB, 64 on MySQL).
_STATEMENT_BYTES = 1 << 20


@dataclass(frozen=True)
class Settings:
    """Where the store is and how to connect to it."""

    database: str
    host: str = "127.0.0.1"
    port: int = 3306
    user: str | None = None  # None: the login name, as the mysql client does
    password: str = ""
    prefix: str = DEFAULT_PREFIX
    pool_size: int = DEFAULT_POOL_SIZE
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    unix_socket: str | None = None
    ssl_context: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        if not self.database:
            raise ConfigurationError("no database: write mysql://user:password@host:3306/dbname")
        if not _PREFIX.fullmatch(self.prefix):
            raise ConfigurationError(
                f"prefix={self.prefix!r}: use 1 to 48 letters, digits and underscores"
            )
        if self.pool_size < 1:
            raise ConfigurationError(f"pool_size={self.pool_size}: use 1 or more connections")
        if self.connect_timeout <= 0:
            raise ConfigurationError(
                f"connect_timeout={self.connect_timeout}: use a positive number of seconds"
            )

    @classmethod
    def from_url(cls, url: str) -> Settings:
        parts = urlsplit(url)
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ConfigurationError(
                f"unknown option {', '.join(unknown)} in {without_password(url)!r}; "
                f"the mysql:// options are {', '.join(OPTIONS)}"
            )
        try:
            port = parts.port or 3306
        except ValueError:
            raise ConfigurationError(f"bad port in {without_password(url)!r}") from None
        return cls(
            unquote(parts.path.lstrip("/")),
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password or ""),
            prefix=options.get("prefix", DEFAULT_PREFIX),
            pool_size=_number(options, "pool_size", DEFAULT_POOL_SIZE, int),
            connect_timeout=_number(options, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, float),
            unix_socket=options.get("unix_socket") or None,
            ssl_context=_ssl_context(options),
        )

    def connect_args(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user if self.user is not None else getpass.getuser(),
            "password": self.password,
            "database": self.database,
            "unix_socket": self.unix_socket,
            "ssl": self.ssl_context,
            "connect_timeout": self.connect_timeout,
            "charset": "utf8mb4",
            "autocommit": True,
            "init_command": _SESSION,
        }


@dataclass
class LoopState:
    """What the backend keeps per event loop: asyncmy's connections belong to the loop
    that made them, and the sync surface runs a loop of its own. ``queue`` holds the
    writes waiting for the loop's next group commit."""

    pool: Pool | None = None
    opening: asyncio.Lock = field(default_factory=asyncio.Lock)
    queue: list[Any] = field(default_factory=list)
    flusher: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            await self.pool.wait_closed()


class Database:
    """One store: its pools (one per event loop), its migrations, its transactions."""

    def __init__(self, settings: Settings, versions_table: str, label: str) -> None:
        self.settings = settings
        self.versions_table = versions_table
        self.label = label  # the URL, password hidden, for messages
        self._connect_args = settings.connect_args()
        self._states: dict[asyncio.AbstractEventLoop, LoopState] = {}
        self._lock = threading.Lock()
        self._migrated = False
        self._closing: set[asyncio.Task[None]] = set()

    async def state(self) -> LoopState:
        """This loop's connections, opened (and the store migrated) on first use."""
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is not None and state.pool is not None:
            return state
        with self._lock:
            state = self._states.get(loop)
            if state is None:
                # Loops that are gone took their connections' tasks with them.
                for old in [k for k in self._states if k.is_closed()]:
                    del self._states[old]
                state = self._states[loop] = LoopState()
        # Under the loop's opening lock, so that many first calls at once (a burst of
        # starts on a store not yet opened) migrate and connect once, not each.
        async with state.opening:
            if state.pool is None:
                try:
                    await self._migrate()
                    state.pool = await asyncmy.create_pool(
                        minsize=1, maxsize=self.settings.pool_size, **self._connect_args
                    )
                except BaseException:
                    with self._lock:
                        if self._states.get(loop) is state:
                            del self._states[loop]
                    raise
        return state

    async def close(self) -> None:
        with self._lock:
            states, self._states = self._states, {}
        await close_on_their_loops(states, self._closing)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection of this loop's pool, in autocommit mode."""
        state = await self.state()
        assert state.pool is not None
        async with state.pool.acquire() as conn:
            try:
                yield conn
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    # Cancelled mid-statement: what the server sends next is unknown,
                    # so the connection is not given back to the pool.
                    conn.close()
                raise

    async def transact(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``fn`` as one transaction, again if InnoDB picks it as a deadlock victim
        or a lock wait times out (it was rolled back, so running it again is safe)."""
        async with self.connection() as conn:
            for attempt in range(_ATTEMPTS):
                try:
                    await conn.begin()
                    result = await fn(conn)
                    await conn.commit()
                    return result
                except Exception as exc:
                    try:
                        await conn.rollback()
                    except Exception:
                        conn.close()
                        raise exc from None
                    if error_code(exc) not in RETRYABLE or attempt == _ATTEMPTS - 1:
                        raise
                    log.warning("transaction aborted (%s); retrying", exc)
                    await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
        raise AssertionError("unreachable")

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """One statement (in autocommit: its own transaction) and its rows."""
        async with self.connection() as conn:
            return await fetch(conn, sql, params)

    # -- migrations -----------------------------------------------------------------------

    async def _migrate(self) -> None:
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
        conn = await asyncmy.connect(**self._connect_args)
        try:
            # Most opens find the store up to date: no lock, no waiting on other openers.
            if await self._schema_version(conn) >= latest:
                self._migrated = True
                return
            # One migrating process per store at a time; the others wait here, then
            # find the work done. The lock belongs to the session: closing it lets go.
            [(got,)] = await fetch(
                conn, "SELECT GET_LOCK(%s, %s)", (self._lock_name(), _MIGRATION_LOCK_SECONDS)
            )
            if got != 1:
                raise ConfigurationError(
                    f"{self.label}: another process held the migration lock for "
                    f"{_MIGRATION_LOCK_SECONDS} s; is one stuck?"
                )
            await execute(
                conn,
                f"CREATE TABLE IF NOT EXISTS {self.versions_table} (version INT NOT NULL "
                "PRIMARY KEY, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP) "
                "ENGINE = InnoDB",
            )
            current = await self._schema_version(conn)
            for f in files:
                version = int(f.name.split("_", 1)[0])
                if version > current:
                    # MySQL commits each DDL statement at once: a migration must be
                    # safe to run again after a crash halfway (IF NOT EXISTS, ...).
                    for statement in _statements(f.read_text(), self.settings.prefix):
                        try:
                            await execute(conn, statement)
                        except MySQLError as exc:
                            # MySQL has no ADD COLUMN IF NOT EXISTS: a column added
                            # before the crash is there already, which is the aim.
                            if error_code(exc) != _DUPLICATE_COLUMN:
                                raise
                    await execute(
                        conn, f"INSERT INTO {self.versions_table} (version) VALUES (%s)", (version,)
                    )
            await fetch(conn, "SELECT RELEASE_LOCK(%s)", (self._lock_name(),))
            self._migrated = True
        finally:
            conn.close()

    async def _schema_version(self, conn: Connection) -> int:
        rows = await fetch(
            conn,
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name = %s",
            (f"{self.settings.prefix}schema",),
        )
        if not rows:
            return 0
        [(version,)] = await fetch(
            conn, f"SELECT COALESCE(MAX(version), 0) FROM {self.versions_table}"
        )
        return int(version)

    def _lock_name(self) -> str:
        # Named locks are server-wide and at most 64 characters.
        store = f"{self.settings.database}\0{self.settings.prefix}"
        return f"perdure-migrate:{hashlib.sha256(store.encode()).hexdigest()[:40]}"


# -- statements ---------------------------------------------------------------------------


async def fetch(c: Connection, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    async with c.cursor() as cur:
        await cur.execute(sql, tuple(params))
        return list(await cur.fetchall())


async def execute(c: Connection, sql: str, params: Sequence[Any] = ()) -> int:
    """Run a statement; the number of rows it changed."""
    async with c.cursor() as cur:
        return await cur.execute(sql, tuple(params))


async def execute_many(c: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """An INSERT of many rows: asyncmy sends them as multi-row statements of bounded
    size."""
    if rows:
        async with c.cursor() as cur:
            await cur.executemany(sql, rows)


async def execute_rows(
    c: Connection, statement: Callable[[int], str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """A statement made for n rows of values (``statement(n)``), in pieces of bounded
    size."""
    for piece in _pieces(rows):
        await execute(c, statement(len(piece)), [v for row in piece for v in row])


def _pieces(rows: Sequence[tuple[Any, ...]]) -> Iterable[list[tuple[Any, ...]]]:
    piece: list[tuple[Any, ...]] = []
    size = 0
    for row in rows:
        weight = sum(len(v) if isinstance(v, bytes | str) else 8 for v in row)
        if piece and size + weight > _STATEMENT_BYTES:
            yield piece
            piece, size = [], 0
        piece.append(row)
        size += weight
    if piece:
        yield piece


def _statements(script: str, prefix: str) -> Iterable[str]:
    """A migration file's statements, for the store's table prefix."""
    for chunk in script.replace("{prefix}", prefix).split(";\n"):
        code = [line for line in chunk.splitlines() if not line.lstrip().startswith("--")]
        if "".join(code).strip():
            yield chunk


def error_code(exc: BaseException) -> int | None:
    """The server's error number (1213: deadlock, ...), if ``exc`` carries one."""
    if isinstance(exc, MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


# -- URL ----------------------------------------------------------------------------------


def _number(options: dict[str, str], name: str, default: T, kind: Callable[[str], T]) -> T:
    if name not in options:
        return default
    try:
        return kind(options[name])
    except ValueError:
        raise ConfigurationError(f"{name}={options[name]!r}: use a number") from None


def _ssl_context(options: dict[str, str]) -> ssl.SSLContext | None:
    flag = options.get("ssl", "").lower()
    if flag and flag not in _TRUE + _FALSE:
        raise ConfigurationError(f"ssl={options['ssl']!r}: use true or false")
    ca = options.get("ssl_ca")
    if ca:
        if flag in _FALSE:
            raise ConfigurationError("ssl_ca= needs TLS: leave out ssl=false")
        return ssl.create_default_context(cafile=ca)
    return ssl.create_default_context() if flag in _TRUE else None


def without_password(url: str) -> str:
    """The URL to show in logs: the password masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
