"""Raw request input → checked values, for the API and the forms alike.

Refusals are :class:`ActionError` (400) naming the field, the value and what is allowed. Numbers must be finite: JSON allows ``NaN``, ``Infinity`` and ``1e400`` (∞) through
Python's parser, and ``float()`` takes ``"nan"`` and ``"inf"`` from a form; none of them is ever a
setting, a power or a price.
"""

from __future__ import annotations

import math
import re
from typing import Any


class ActionError(Exception):
    """Refused or failed; ``field`` names the input at fault, ``status`` is the HTTP status."""

    def __init__(self, message: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


FINITE = "allowed: a finite number"


def nesting_depth(value: Any) -> int:
    """How deeply objects and lists nest in decoded JSON (a scalar: 0). Iterative: a payload
    nested as deeply as the parser allows must not exhaust the stack here or in later code."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth + 1)
        pending.extend((child, depth + 1) for child in children)
    return deepest
_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")


def check_finite(data: Any) -> None:
    """Refuse the first non-finite number anywhere in decoded JSON; the field is its dotted path
    (``battery.reserve_pct``, ``items.2``). Iterative, so any nesting depth JSON allows is fine."""
    pending: list[tuple[str, Any]] = [("", data)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            field = path or "body"
            raise ActionError(f"{field}: got {value!r}, {FINITE}", field)
        if isinstance(value, dict):
            pending.extend((f"{path}.{key}" if path else str(key), item) for key, item in value.items())
        elif isinstance(value, list):
            pending.extend((f"{path}.{index}" if path else str(index), item) for index, item in enumerate(value))


def form_number(text: str, field: str) -> float | str:
    """A number typed into a form (``,`` or ``.`` as decimal mark); text that is no number is
    returned as it is, so the settings check names the field and says a number is expected."""
    try:
        number = float(text.replace(",", "."))
    except ValueError:
        return text
    if not math.isfinite(number):
        raise ActionError(f"{field}: got {text!r}, {FINITE}", field)
    return number


def query_int(query: Any, name: str, default: int, low: int, high: int) -> int:
    """A whole number from the query string, ``low`` to ``high`` (ASCII digits only: ``²`` and
    ``٣`` are digits to Python's ``isdigit`` but no number to ``int``)."""
    raw = query.get(name)
    if raw is None:
        return default
    if not _WHOLE_NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        raise ActionError(f"{name}: got {raw!r}, allowed: {low} to {high}", name)
    return int(raw)
