"""Fixtures of the tests that run real worker processes: ``cluster`` (workers of
``crashapp`` on the test's store), and for the DAG and state-machine front-ends a
store that worker processes share (``shared_url``) with an app of ``dagapp`` on it
(``client``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import dagapp
import pytest
from crashkit import Cluster

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


@pytest.fixture
async def cluster(tmp_path: Path, url: str) -> AsyncIterator[Cluster]:
    procs = Cluster(tmp_path, url)
    yield procs
    await procs.close()
