"""Query-string parameters of the aggregator's APIs: a whole number or a decimal within bounds, or
a date, with a default when the parameter is absent (none: it is required).

A bad value raises the caller's own error type (any callable taking the message, as
:func:`common.numbers.finite_number` takes one), the message naming the parameter, the value and
what is allowed: each API keeps its error class and status, the parsing is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date

from common.numbers import finite_float

Error = Callable[[str], Exception]


def integer(query: Mapping[str, str], name: str, *, error: Error, default: int | None = None,
            low: int | None = None, high: int | None = None, unit: str = "") -> int:
    """``query[name]`` as an int in ``[low, high]`` (either bound optional); ``default`` when absent.
    ``unit`` is said in the message (``"epoch seconds"``)."""
    raw = _raw(query, name, default, "an integer", unit, error)
    if raw is None:
        assert default is not None
        return default
    try:
        value = int(raw)
    except ValueError:
        raise error(f"{name}: got {raw!r:.40}, expected an integer{_unit(unit)}") from None
    _check_bounds(name, value, low, high, error)
    return value


def decimal(query: Mapping[str, str], name: str, *, error: Error, default: float | None = None,
            low: float | None = None, high: float | None = None) -> float:
    """``query[name]`` as a finite float in ``[low, high]``; ``default`` when absent."""
    raw = _raw(query, name, default, "a number", "", error)
    if raw is None:
        assert default is not None
        return default
    try:
        value = finite_float(float(raw))
    except ValueError:
        value = None
    if value is None:
        raise error(f"{name}: got {raw!r:.40}, expected a finite number")
    _check_bounds(name, value, low, high, error)
    return value


def day(query: Mapping[str, str], name: str, *, error: Error, default: date | None = None) -> date:
    """``query[name]`` as a calendar date (``YYYY-MM-DD``); ``default`` when absent."""
    raw = _raw(query, name, default, "a date", "YYYY-MM-DD", error)
    if raw is None:
        assert default is not None
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise error(f"{name}: got {raw!r:.40}, expected YYYY-MM-DD") from None


def _raw(query: Mapping[str, str], name: str, default: object, kind: str, unit: str, error: Error) -> str | None:
    """The parameter's text; ``None`` if absent and there is a default, the error if required."""
    raw = query.get(name)
    if raw is None and default is None:
        raise error(f"{name}: missing, expected {kind}{_unit(unit)}")
    return raw


def _check_bounds(name: str, value: float, low: float | None, high: float | None, error: Error) -> None:
    if (low is None or value >= low) and (high is None or value <= high):
        return
    if high is None:
        raise error(f"{name}: got {value}, allowed: {low} or more")
    if low is None:
        raise error(f"{name}: got {value}, allowed: {high} or less")
    raise error(f"{name}: got {value}, allowed: {low} to {high}")


def _unit(unit: str) -> str:
    return f" ({unit})" if unit else ""
