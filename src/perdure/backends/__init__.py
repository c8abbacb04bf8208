"""Backends, opened by URL: ``sqlite:///path.db``, ``postgresql://host/db``, ``memory://``."""

from __future__ import annotations

import os

from ..errors import ConfigurationError
from .base import Backend, Feature

DEFAULT_URL = "sqlite:///perdure.db"


def resolve_url(url: str | None) -> str:
    return url or os.environ.get("PERDURE_DATABASE_URL") or DEFAULT_URL


def open_backend(url: str | None = None) -> Backend:
    """Create (not yet open) the backend for ``url`` or ``$PERDURE_DATABASE_URL``."""
    url = resolve_url(url)
    scheme = url.split(":", 1)[0].lower()
    if scheme == "memory":
        from .memory import MemoryBackend

        return MemoryBackend()
    if scheme == "sqlite":
        from .sqlite import SQLiteBackend

        return SQLiteBackend.from_url(url)
    if scheme in ("postgresql", "postgres"):
        try:
            from .postgres import PostgresBackend
        except ImportError as exc:
            if (exc.name or "").split(".")[0] not in ("psycopg", "psycopg_pool"):
                raise
            raise ConfigurationError(
                f"the {scheme}:// backend needs psycopg 3: pip install 'perdure[postgres]'"
            ) from exc

        return PostgresBackend.from_url(url)
    if scheme in ("mysql", "mariadb", "redis"):
        raise ConfigurationError(
            f"the {scheme}:// backend is not available in this version of perdure; "
            "use sqlite:///path.db, postgresql://host/db or memory://"
        )
    raise ConfigurationError(
        f"unknown database URL scheme {scheme!r} in {url!r}; "
        "use sqlite:///path.db, postgresql://host/db or memory://"
    )


__all__ = ["DEFAULT_URL", "Backend", "Feature", "open_backend", "resolve_url"]
