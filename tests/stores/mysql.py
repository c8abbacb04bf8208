"""MySQL/MariaDB test stores: a table prefix of its own per test, in the test database.

The admin statements run on a thread of their own with its own event loop (asyncmy
is the only driver perdure brings), so they never touch a test's loop.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from . import unavailable

URL = os.environ.get("PERDURE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")

_admin: dict[str, Any] = {}
_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mysql-test-admin")


def query(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """One statement on a fresh connection to the test database (autocommit), its rows."""
    import asyncmy

    parts = urlsplit(URL)

    async def run() -> list[tuple[Any, ...]]:
        conn = await asyncmy.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=parts.path.lstrip("/"),
            autocommit=True,
            connect_timeout=5,
            # A connection left in a transaction by a failed test must not hang a DROP.
            init_command="SET SESSION lock_wait_timeout = 10",
        )
        try:
            async with conn.cursor() as cur:
                await cur.execute(sql, tuple(params))
                return list(await cur.fetchall())
        finally:
            conn.close()

    return _thread.submit(asyncio.run, run()).result(timeout=60)


def admin() -> None:
    """Check once per session that the server answers, or ``unavailable``."""
    if _admin.get("ok"):
        return
    if "error" in _admin:
        unavailable(_admin["error"])
    try:
        import asyncmy
    except ImportError:
        _admin["error"] = "MySQL tests need asyncmy: pip install -e '.[dev]'"
        unavailable(_admin["error"])
    try:
        query("SELECT 1")
    except (asyncmy.errors.MySQLError, OSError) as exc:
        _admin["error"] = f"MySQL is not reachable at {URL}: {exc}"
        unavailable(_admin["error"])
    _admin["ok"] = True


def make_url() -> str:
    admin()
    separator = "&" if "?" in URL else "?"
    return f"{URL}{separator}prefix=t_{uuid.uuid4().hex}_"


def prefix_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query)).get("prefix", "")


def tables_of(prefix: str) -> set[str]:
    rows = query(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND LEFT(table_name, %s) = %s",
        (len(prefix), prefix),
    )
    return {name.decode() if isinstance(name, bytes) else name for (name,) in rows}


def drop(url: str) -> None:
    prefix = prefix_of(url)
    if not prefix.startswith("t_"):
        return
    for table in sorted(tables_of(prefix)):
        query(f"DROP TABLE IF EXISTS `{table}`")
