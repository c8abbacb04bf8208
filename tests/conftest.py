"""Shared fixtures: every backend, with and without the sticky cache.

A backend whose server is not reachable is skipped locally with the reason, and
fails the run when CI=true, so a green CI means every backend was exercised.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import perdure

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Backends the kernel suite runs on. Server backends join this list as they land.
BACKENDS = ["memory", "sqlite"]


def backend_url(name: str, tmp_path: Path) -> str:
    if name == "memory":
        return "memory://"
    if name == "sqlite":
        return f"sqlite:///{tmp_path / 'perdure.db'}"
    raise ValueError(name)


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true requires every backend)")
    pytest.skip(reason)


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(backend_name: str, tmp_path: Path) -> str:
    return backend_url(backend_name, tmp_path)


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
