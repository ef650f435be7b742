"""Reading ``cmd/<action>`` messages safely: strict JSON, a string ``id``, fresh and not retained.

Every MQTT consumer parses payloads with :func:`loads`, which refuses what Python's ``json``
would let through or die on: ``NaN``/``Infinity`` (and numbers like ``1e999`` that overflow to
infinity) and nesting deep enough to raise ``RecursionError``. Commands additionally go through
:func:`parse_command`: a retained command (the broker replays it to every new subscriber, so it
would run again at each start-up) or one whose ``ts`` is more than :data:`MAX_AGE_S` away from
our clock is refused, naming why. The bridge and the planner's ``dr_event`` answer such refusals
on ``cmd/result`` with the caller's ``id`` whenever the payload had one.
"""

from __future__ import annotations

import json
import math
from typing import Any

from common.numbers import finite_float, finite_number, short_repr
from common.utc import format_utc, parse_utc

MAX_AGE_S = 10.0  # a command this much older (or newer) than our clock is stale, not delayed


class BadCommand(ValueError):
    """A command message that cannot be executed; the text goes to ``cmd/result``."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; numbers must be finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range; numbers must be finite")
    return value


def loads(payload: bytes | str) -> Any:
    """Strict JSON: only finite numbers, bounded nesting; every refusal is a ``ValueError``."""
    try:
        return json.loads(payload, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"payload is not UTF-8: {exc}") from None


def caller_id(payload: bytes) -> str | None:
    """The ``id`` of a payload that is refused anyway, so the caller can match the refusal."""
    try:
        message = json.loads(payload)  # lenient on purpose: a NaN elsewhere must not hide the id
    except (ValueError, RecursionError):
        return None
    found = message.get("id") if isinstance(message, dict) else None
    return found if isinstance(found, str) and found else None


def parse_command(payload: bytes, *, now: float, retained: bool = False, max_age_s: float = MAX_AGE_S) -> dict[str, Any]:
    """A command's JSON object with a non-empty string ``id`` (``ts`` removed once checked
    against ``now``: at most ``max_age_s`` old or ahead).

    Raises :class:`BadCommand` naming the field, the value and what is allowed."""
    try:
        message = loads(payload)
    except ValueError as exc:
        raise BadCommand(f"payload is not valid JSON: {exc}") from None
    if not isinstance(message, dict):
        raise BadCommand(f"payload must be a JSON object, got {type(message).__name__}")
    if not isinstance(message.get("id"), str) or not message["id"]:
        raise BadCommand(f"'id' must be a non-empty string, got {message.get('id')!r}")
    if retained:
        raise BadCommand("retained commands are refused (a broker replays them at every start); "
                         "publish commands with retain=false")
    if "ts" in message:
        sent = timestamp(message.pop("ts"), "ts")
        if abs(now - sent) > max_age_s:
            age = f"{now - sent:.1f} s old" if now > sent else f"{sent - now:.1f} s ahead"
            raise BadCommand(f"ts {format_utc(sent)} is {age} by the receiver's clock; commands more than "
                             f"{max_age_s:g} s old or ahead are refused (is a clock wrong, or the broker slow?)")
    return message


def timestamp(value: Any, name: str) -> float:
    """Epoch seconds (a finite number) or ISO-8601 with an offset or Z → epoch seconds."""
    if (seconds := finite_float(value)) is not None:
        return seconds
    if isinstance(value, str):
        try:
            return parse_utc(value)
        except ValueError:
            pass
    raise BadCommand(f"{name} must be epoch seconds or ISO-8601 with Z, got {short_repr(value)}")


def number(value: Any, name: str, *, minimum: float | None = None, above: float | None = None) -> float:
    """A finite JSON number (``true``/``false`` are not numbers) within the bound given."""
    return finite_number(value, name, minimum=minimum, above=above, error=BadCommand)
