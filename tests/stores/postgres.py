"""PostgreSQL test stores: a schema of its own in the test database per test."""

from __future__ import annotations

import os
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import unavailable

URL = os.environ.get("PERDURE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

_admin: dict[str, Any] = {}


def admin() -> Any:
    """A connection to the test database (one per session), or ``unavailable``."""
    conn = _admin.get("conn")
    if conn is not None and not conn.closed and not conn.broken:
        return conn
    if "error" in _admin:
        unavailable(_admin["error"])
    try:
        import psycopg
    except ImportError:
        _admin["error"] = "PostgreSQL tests need psycopg: pip install -e '.[dev]'"
        unavailable(_admin["error"])
    try:
        conn = psycopg.connect(URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _admin["error"] = f"PostgreSQL is not reachable at {URL}: {exc}"
        unavailable(_admin["error"])
    _admin["conn"] = conn
    return conn


def make_url() -> str:
    admin()
    separator = "&" if "?" in URL else "?"
    return f"{URL}{separator}schema=t_{uuid.uuid4().hex}"


def drop(url: str) -> None:
    schema = dict(parse_qsl(urlsplit(url).query)).get("schema", "")
    if not schema.startswith("t_"):
        return
    import psycopg

    for attempt in range(2):
        conn = admin()
        try:
            # A connection left open in a transaction by a failed test must not hang it.
            conn.execute("SET lock_timeout = '10s'")
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            return
        except psycopg.OperationalError:
            if attempt:  # the server went away (a restart test): connect again, once
                raise
            _admin.pop("conn", None)
