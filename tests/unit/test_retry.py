"""Retry policy arithmetic."""

from __future__ import annotations

from datetime import timedelta

import pytest

import perdure


def test_delays_grow_by_the_coefficient_and_stop_at_the_cap() -> None:
    policy = perdure.Retry(max_attempts=6, initial_interval=1.0, backoff=2.0, max_interval=5.0)
    assert [policy.delay(k) for k in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_timedeltas_are_accepted() -> None:
    policy = perdure.Retry(
        initial_interval=timedelta(milliseconds=500), backoff=3, max_interval=timedelta(seconds=2)
    )
    assert [policy.delay(k) for k in (1, 2, 3)] == [0.5, 1.5, 2.0]


def test_attempts_and_error_types_decide_whether_to_retry() -> None:
    class Fatal(perdure.NonRetryableError):
        pass

    policy = perdure.Retry(max_attempts=3, non_retryable=(KeyError,))
    assert policy.should_retry(RuntimeError(), 1)
    assert policy.should_retry(RuntimeError(), 2)
    assert not policy.should_retry(RuntimeError(), 3)
    assert not policy.should_retry(KeyError("x"), 1)
    assert not policy.should_retry(Fatal("x"), 1)


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"backoff": 0.5}, {"initial_interval": -1}]
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        perdure.Retry(**kwargs)  # type: ignore[arg-type]
