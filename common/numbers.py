"""Is this decoded JSON/YAML value a number we can use: finite, and not a boolean.

Python's parsers let ``NaN``, ``Infinity``, ``1e400`` (∞) and integers beyond any float through,
and ``True`` is an ``int`` that equals 1; none of them is ever a power, a price or a setting.
Callers keep their own error types and wording; the test itself is written once, here.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def finite_float(value: object) -> float | None:
    """``value`` as a finite float, or ``None`` for anything else (text, booleans, NaN, ±∞, an
    integer too large for a float, lists)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def finite_number(value: object, field: str, *, minimum: float | None = None, above: float | None = None,
                  error: Callable[[str], Exception] = ValueError) -> float:
    """``value`` as a finite float at least ``minimum`` / more than ``above``; otherwise raises
    ``error(message)`` with a message naming ``field``, the value and what is allowed."""
    number = finite_float(value)
    if number is None:
        raise error(f"{field} must be a finite number, got {short_repr(value)}")
    if minimum is not None and number < minimum:
        raise error(f"{field} must be >= {minimum:g}, got {value!r}")
    if above is not None and number <= above:
        raise error(f"{field} must be > {above:g}, got {value!r}")
    return number


def short_repr(value: object) -> str:
    """``repr(value)``, cut to 60 characters: an error message quotes the value, not a megabyte of it."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
