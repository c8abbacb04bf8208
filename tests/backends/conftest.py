"""The ``backend`` fixture: every backend in ``BACKENDS``, opened for one test.

It builds on the shared ``url`` fixture, so a server backend added to ``BACKENDS``
(with its URL in ``backend_url``) runs the whole conformance suite unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from perdure.backends import Backend, open_backend


@pytest.fixture
async def backend(url: str) -> AsyncIterator[Backend]:
    store = open_backend(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
