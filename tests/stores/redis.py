"""Redis test stores: a key prefix of its own per test, in the test database."""

from __future__ import annotations

import os
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import unavailable

URL = os.environ.get("PERDURE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

_admin: dict[str, Any] = {}


def admin() -> Any:
    """A client of the test database (one per session), or ``unavailable``."""
    client = _admin.get("client")
    if client is not None:
        return client
    if "error" in _admin:
        unavailable(_admin["error"])
    try:
        import redis
    except ImportError:
        _admin["error"] = "Redis tests need redis-py: pip install -e '.[dev]'"
        unavailable(_admin["error"])
    client = redis.Redis.from_url(URL, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        _admin["error"] = f"Redis is not reachable at {URL}: {exc}"
        unavailable(_admin["error"])
    _admin["client"] = client
    return client


def make_url() -> str:
    admin()
    separator = "&" if "?" in URL else "?"
    return f"{URL}{separator}prefix=t_{uuid.uuid4().hex}:"


def prefix_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query)).get("prefix", "")


def keys_of(prefix: str) -> list[bytes]:
    """Every key under ``prefix`` (a test prefix: letters, digits, ``_`` and ``:``)."""
    return list(admin().scan_iter(match=f"{prefix}*", count=1000))


def drop(url: str) -> None:
    prefix = prefix_of(url)
    if not prefix.startswith("t_"):
        return
    keys = keys_of(prefix)
    for start in range(0, len(keys), 1000):
        admin().unlink(*keys[start : start + 1000])
