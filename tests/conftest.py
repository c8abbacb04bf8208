"""Shared fixtures: every backend, with and without the sticky cache.

A backend whose server is not reachable is skipped locally with the reason, and
fails the run when CI=true, so a green CI means every backend was exercised.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

import perdure

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Backends the kernel suite runs on. Server backends join this list as they land.
BACKENDS = ["memory", "sqlite", "postgres"]

# The test database; each test gets a schema of its own in it.
POSTGRES_URL = os.environ.get(
    "PERDURE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def backend_url(name: str, tmp_path: Path) -> str:
    """A fresh, empty store for one test. A PostgreSQL schema it names is dropped by
    ``drop_store`` (the ``url`` fixture does that at teardown)."""
    if name == "memory":
        return "memory://"
    if name == "sqlite":
        return f"sqlite:///{tmp_path / 'perdure.db'}"
    if name == "postgres":
        postgres_admin()
        separator = "&" if "?" in POSTGRES_URL else "?"
        return f"{POSTGRES_URL}{separator}schema=t_{uuid.uuid4().hex}"
    raise ValueError(name)


_admin: dict[str, Any] = {}


def postgres_admin() -> Any:
    """A connection to the test database (one per session), or ``unavailable``."""
    conn = _admin.get("conn")
    if conn is not None and not conn.closed:
        return conn
    if "error" in _admin:
        unavailable(_admin["error"])
    try:
        import psycopg
    except ImportError:
        _admin["error"] = "PostgreSQL tests need psycopg: pip install -e '.[dev]'"
        unavailable(_admin["error"])
    try:
        conn = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _admin["error"] = f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}"
        unavailable(_admin["error"])
    _admin["conn"] = conn
    return conn


def drop_store(url: str) -> None:
    """Drop the schema ``backend_url`` made for a PostgreSQL test (if it was created)."""
    schema = dict(parse_qsl(urlsplit(url).query)).get("schema", "")
    if not url.startswith("postgresql://") or not schema.startswith("t_"):
        return
    conn = postgres_admin()
    # A connection left open in a transaction by a failed test must not hang the run.
    conn.execute("SET lock_timeout = '10s'")
    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true requires every backend)")
    pytest.skip(reason)


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(backend_name: str, tmp_path: Path) -> Iterator[str]:
    store = backend_url(backend_name, tmp_path)
    yield store
    drop_store(store)


@pytest.fixture(params=[True, False], ids=["cache", "nocache"])
def sticky(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def make_app(url: str, sticky: bool) -> Callable[..., perdure.App]:
    """Build an App on the test's backend; with ``sticky=False`` every resume replays."""

    def make(**options: object) -> perdure.App:
        options.setdefault("sticky_cache", sticky)
        options.setdefault("lease_ttl", 5.0)
        options.setdefault("poll_interval", 0.05)
        return perdure.App(url, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def app(make_app: Callable[..., perdure.App]) -> AsyncIterator[perdure.App]:
    """An App with no workflows yet; register them in the test, then ``async with app``."""
    application = make_app()
    yield application
    await application.close()
