from __future__ import annotations

from typing import Any

import pytest

from common.backoff import Backoff


def test_waits_grow_by_the_factor_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 5.0)
    assert [backoff.next() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert backoff.failures == 7
    assert Backoff(1.0, 100.0, factor=3.0).delay(4) == 27.0


def test_reset_starts_over_and_upcoming_is_the_next_wait() -> None:
    backoff = Backoff(1.0, 60.0)
    assert backoff.upcoming == 1.0
    backoff.next()
    backoff.next()
    assert backoff.upcoming == 4.0
    backoff.reset()
    assert backoff.upcoming == 1.0
    assert backoff.next() == 1.0


def test_full_jitter_stays_between_initial_and_the_capped_wait() -> None:
    highest = Backoff(1.0, 30.0, jitter=1.0, rng=lambda: 0.999999)
    lowest = Backoff(1.0, 30.0, jitter=1.0, rng=lambda: 0.0)
    assert [round(highest.delay(n), 3) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert {lowest.delay(n) for n in range(1, 8)} == {1.0}


def test_partial_jitter_takes_at_most_that_fraction_off() -> None:
    lowest = Backoff(2.0, 60.0, jitter=0.5, rng=lambda: 0.0)
    assert [lowest.delay(n) for n in range(1, 7)] == [2.0, 2.0, 4.0, 8.0, 16.0, 30.0]


def test_a_very_long_run_of_failures_waits_the_cap() -> None:
    assert Backoff(1.0, 300.0, factor=10.0).delay(10_000) == 300.0
    assert Backoff(0.05, 1.0).delay(2_000) == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": 0.0, "cap": 1.0}, "backoff initial: 0.0 s; allowed: more than 0"),
        ({"initial": 2.0, "cap": 1.0}, "backoff cap: 1.0 s; allowed: at least initial (2.0 s)"),
        ({"initial": 1.0, "cap": 2.0, "factor": 0.5}, "backoff factor: 0.5; allowed: 1 or more"),
        ({"initial": 1.0, "cap": 2.0, "jitter": 1.5}, "backoff jitter: 1.5; allowed: 0 to 1"),
    ],
)
def test_bad_parameters_are_refused_by_name(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as exc:
        Backoff(**kwargs)
    assert str(exc.value) == message
