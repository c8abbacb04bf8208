"""Fixtures of the crash tests of the DAG and state-machine front-ends: a store that
worker processes share (``shared_url``) and an app of ``dagapp`` on it (``client``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import dagapp
import pytest

import perdure
from stores import BACKENDS


@pytest.fixture(params=[name for name in ("sqlite", "postgres") if name in BACKENDS])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'perdure.db'}"
        return
    from stores import postgres

    url = postgres.make_url()
    yield url
    postgres.drop(url)


@pytest.fixture
async def client(shared_url: str) -> AsyncIterator[perdure.App]:
    app = dagapp.build(shared_url)
    yield app
    await app.close()
