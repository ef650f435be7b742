"""The one finite-number check: what decoded JSON/YAML may hold where a number is meant."""

from __future__ import annotations

import json

import pytest

from common.numbers import finite_float, finite_number, short_repr


@pytest.mark.parametrize("value", [True, False, None, "1", [1], {"a": 1}, float("nan"), float("inf"),
                                   float("-inf"), 10**400, json.loads("1e400")])
def test_anything_but_a_finite_number_is_none(value: object) -> None:
    assert finite_float(value) is None


@pytest.mark.parametrize(("value", "expected"), [(0, 0.0), (-3, -3.0), (2.5, 2.5), (10**300, 1e300)])
def test_finite_numbers_come_back_as_floats(value: object, expected: float) -> None:
    result = finite_float(value)
    assert result == expected and type(result) is float


class Refused(ValueError):
    pass


@pytest.mark.parametrize(("value", "bounds", "message"), [
    (True, {}, "power_w must be a finite number, got True"),
    ("x" * 100, {}, "power_w must be a finite number, got '" + "x" * 56 + "..."),
    (-1, {"minimum": 0}, "power_w must be >= 0, got -1"),
    (0, {"above": 0}, "power_w must be > 0, got 0"),
])
def test_finite_number_raises_the_callers_error_naming_field_value_and_bound(
        value: object, bounds: dict[str, float], message: str) -> None:
    with pytest.raises(Refused) as caught:
        finite_number(value, "power_w", error=Refused, **bounds)
    assert str(caught.value) == message


def test_finite_number_at_the_bounds_passes() -> None:
    assert finite_number(0, "cap_w", minimum=0) == 0.0
    assert finite_number(0.5, "hold_s", above=0) == 0.5


def test_short_repr_cuts_long_values() -> None:
    assert short_repr("ab") == "'ab'"
    assert len(short_repr("y" * 1000)) == 60
