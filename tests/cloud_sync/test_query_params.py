"""The query-string parameters: defaults, bounds, and the caller's error with a message naming the
parameter, the value and what is allowed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from cloud_sync import query_params


class Bad(Exception):
    """A caller's own error type."""


def test_values_defaults_and_bounds() -> None:
    query = {"n": "7", "x": "2.5", "d": "2026-03-29"}
    assert query_params.integer(query, "n", error=Bad, low=0, high=7) == 7
    assert query_params.integer(query, "absent", error=Bad, default=3) == 3
    assert query_params.decimal(query, "x", error=Bad, low=0) == 2.5
    assert query_params.decimal(query, "absent", error=Bad, default=1.5) == 1.5
    assert query_params.day(query, "d", error=Bad) == date(2026, 3, 29)
    assert query_params.day(query, "absent", error=Bad, default=date(2026, 1, 1)) == date(2026, 1, 1)


@pytest.mark.parametrize(("read", "message"), [
    (lambda q: query_params.integer(q, "from", error=Bad, unit="epoch seconds"),
     "from: missing, expected an integer (epoch seconds)"),
    (lambda q: query_params.integer(q, "n", error=Bad, default=0), "n: got '1.5', expected an integer"),
    (lambda q: query_params.integer(q, "big", error=Bad, default=0, low=0, high=10), "big: got 11, allowed: 0 to 10"),
    (lambda q: query_params.integer(q, "neg", error=Bad, default=0, low=0), "neg: got -2, allowed: 0 or more"),
    (lambda q: query_params.integer(q, "big", error=Bad, default=0, high=5), "big: got 11, allowed: 5 or less"),
    (lambda q: query_params.decimal(q, "inf", error=Bad, default=0), "inf: got 'inf', expected a finite number"),
    (lambda q: query_params.decimal(q, "huge", error=Bad, default=0), "huge: got '1e999', expected a finite number"),
    (lambda q: query_params.decimal(q, "neg", error=Bad, default=0, low=0), "neg: got -2.0, allowed: 0 or more"),
    (lambda q: query_params.day(q, "d", error=Bad, default=date(2026, 1, 1)), "d: got '29.03.2026', expected YYYY-MM-DD"),
    (lambda q: query_params.day(q, "absent", error=Bad), "absent: missing, expected a date (YYYY-MM-DD)"),
])
def test_bad_values_raise_the_callers_error(read: Callable[[dict[str, str]], object], message: str) -> None:
    query = {"n": "1.5", "big": "11", "neg": "-2", "inf": "inf", "huge": "1e999", "d": "29.03.2026"}
    with pytest.raises(Bad) as raised:
        read(query)
    assert str(raised.value) == message
