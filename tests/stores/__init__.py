"""Fresh, empty stores for tests: one module per server backend.

Each module offers ``make_url() -> str`` (a store nobody else uses, e.g. a schema
or a key prefix of its own, creating what must exist first) and ``drop(url)``
(removes what ``make_url`` made). A module calls ``unavailable`` when its server
cannot be reached: the test is skipped locally and fails in CI.
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Backends the suite runs on; PERDURE_TEST_BACKENDS=sqlite,postgres narrows it.
ALL_BACKENDS = ["memory", "sqlite", "postgres", "mysql", "redis"]
BACKENDS = [
    name.strip()
    for name in os.environ.get("PERDURE_TEST_BACKENDS", ",".join(ALL_BACKENDS)).split(",")
    if name.strip()
]
# The backends several processes can share: the in-memory one lives in one process.
SHARED = [name for name in BACKENDS if name != "memory"]


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true requires every backend)")
    pytest.skip(reason)
