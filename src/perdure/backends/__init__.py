"""Backends, opened by URL: ``sqlite:///path.db``, ``postgresql://host/db``,
``mysql://host/db``, ``redis://host:6379/0``, ``memory://``."""

from __future__ import annotations

import importlib
import os

from ..errors import ConfigurationError
from .base import Backend, Feature

DEFAULT_URL = "sqlite:///perdure.db"

# scheme -> (module, class, extra to install, driver packages that extra brings)
_SCHEMES: dict[str, tuple[str, str, str | None, tuple[str, ...]]] = {
    "memory": ("memory", "MemoryBackend", None, ()),
    "sqlite": ("sqlite", "SQLiteBackend", None, ()),
    "postgresql": ("postgres", "PostgresBackend", "postgres", ("psycopg", "psycopg_pool")),
    "postgres": ("postgres", "PostgresBackend", "postgres", ("psycopg", "psycopg_pool")),
    "redis": ("redis", "RedisBackend", "redis", ("redis",)),
    "rediss": ("redis", "RedisBackend", "redis", ("redis",)),
    "mysql": ("mysql", "MySQLBackend", "mysql", ("asyncmy",)),
    "mariadb": ("mysql", "MySQLBackend", "mysql", ("asyncmy",)),
}

_KNOWN = (
    "sqlite:///path.db, postgresql://host/db, mysql://host/db, redis://host:6379/0 or memory://"
)


def resolve_url(url: str | None) -> str:
    return url or os.environ.get("PERDURE_DATABASE_URL") or DEFAULT_URL


def open_backend(url: str | None = None) -> Backend:
    """Create (not yet open) the backend for ``url`` or ``$PERDURE_DATABASE_URL``."""
    url = resolve_url(url)
    scheme = url.split(":", 1)[0].lower()
    if scheme not in _SCHEMES:
        raise ConfigurationError(f"unknown database URL scheme {scheme!r} in {url!r}; use {_KNOWN}")
    module_name, class_name, extra, drivers = _SCHEMES[scheme]
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in drivers:
            raise
        raise ConfigurationError(
            f"the {scheme}:// backend needs {exc.name}: pip install 'perdure[{extra}]'"
        ) from exc
    backend_class: type[Backend] = getattr(module, class_name)
    return backend_class.from_url(url)


__all__ = ["DEFAULT_URL", "Backend", "Feature", "open_backend", "resolve_url"]
