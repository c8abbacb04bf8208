"""The ``backend`` fixture: every backend in ``BACKENDS``, opened for one test.

It builds on the shared ``url`` fixture, so a server backend added to ``BACKENDS``
(with its URL in ``backend_url``) runs the whole conformance suite unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from perdure.backends import Backend, open_backend


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[Backend]:
    """The store at ``url``, opened with connections of its own (as another process
    would open it), closed after."""
    store = open_backend(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def backend(url: str) -> AsyncIterator[Backend]:
    async with opened(url) as store:
        yield store


@pytest.fixture
async def other_backend(url: str) -> AsyncIterator[Backend]:
    """The same store as ``backend``, opened as another process would open it."""
    async with opened(url) as store:
        yield store
