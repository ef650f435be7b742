"""What an item may say, by stream: finite numbers in physical ranges, times near the present.

The aggregator stores readings as sent and sums energy slots; one impossible value (a reading
dated in the year 33,000, an energy figure that is a string) would otherwise be stored and break
every later view of that device. Each check raises :class:`ValueProblem` naming the field, the
value and what is allowed; :mod:`common.sync_protocol` turns it into a 422 naming the item.
"""

from __future__ import annotations

from typing import Any

MAX_AGE_S = 5 * 366 * 86_400  # a device's store keeps far less; older means a broken clock
MAX_AHEAD_S = 86_400  # clock skew of a device that has not synchronised its time yet
MAX_POWER_W = 1_000_000.0  # a home installation is far below a megawatt
MAX_ENERGY_WH = 1e12  # lifetime counters included
MAX_NUMBER = 1e15  # raw register values and anything else numeric
MAX_TEXT = 256
MAX_SAMPLES = 86_400
ENERGY_FIELDS = ("import_wh", "export_wh", "charge_wh", "discharge_wh", "pv_wh", "load_wh")
RESERVED_READING_KEYS = ("ts", "time")  # the operator's view adds these to a reading's data


class ValueProblem(ValueError):
    """``field`` (a dotted path inside the item) holds a value the stream does not allow."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_time(field: str, value: Any, now: float) -> float:
    """Epoch seconds within ``MAX_AGE_S`` before and ``MAX_AHEAD_S`` after ``now``."""
    if not is_number(value):
        raise ValueProblem(field, f"got {value!r}, expected epoch seconds")
    low, high = now - MAX_AGE_S, now + MAX_AHEAD_S
    if not low <= value <= high:
        raise ValueProblem(field, f"got {value!r}, allowed: {low:.0f} to {high:.0f} (the aggregator's clock "
                                  "minus five years to plus one day)")
    return float(value)


def check_range(field: str, value: Any, low: float, high: float) -> None:
    if not is_number(value):
        raise ValueProblem(field, f"got {value!r}, expected a number")
    if not low <= value <= high:
        raise ValueProblem(field, f"got {value!r}, allowed: {low:g} to {high:g}")


class _RoleRanges(dict[str, tuple[float, float]]):
    """The range of a role's value by name, remembered for at most ``_RANGES_KEPT`` names (a
    device choosing new names cannot grow the memory); a hit is one dictionary lookup."""

    def __missing__(self, name: str) -> tuple[float, float]:
        found = _role_range(name)
        if len(self) < _RANGES_KEPT:
            self[name] = found
        return found


class _AnyName(dict[str, tuple[float, float]]):
    """Registers: whatever the name, any number."""

    def __missing__(self, name: str) -> tuple[float, float]:
        return _ANY_NUMBER


def _role_range(name: str) -> tuple[float, float]:
    if name == "soc_pct":
        return 0.0, 100.0
    if name.endswith("_w"):
        return -MAX_POWER_W, MAX_POWER_W
    if name.endswith("_wh"):
        return 0.0, MAX_ENERGY_WH
    if name.endswith("_c"):
        return -100.0, 200.0
    return _ANY_NUMBER


_ANY_NUMBER = (-MAX_NUMBER, MAX_NUMBER)
_RANGES_KEPT = 1024
_ROLE_RANGES = _RoleRanges()
_ANY_NAME = _AnyName()


def _check_scalars(field: str, values: Any, ranges: bool) -> None:
    """An object of numbers (in their role's range when ``ranges``), short strings, booleans or
    null. Every reading of every device passes here, so the common cases come first and cost
    one type lookup each (JSON gives exactly int, float, str, bool, None, list or dict)."""
    if type(values) is not dict:
        raise ValueProblem(field, f"got {values!r:.80}, expected an object")
    if not ranges:
        # Registers are usually all numbers, and when their magnitudes add up to at most
        # MAX_NUMBER each is within ±MAX_NUMBER: one loop in C instead of one in Python (abs
        # refuses strings and null, so those go one by one below, as does a sum too large).
        try:
            if sum(map(abs, values.values())) <= MAX_NUMBER:
                return
        except TypeError:
            pass
    known = _ROLE_RANGES if ranges else _ANY_NAME
    for name, value in values.items():
        kind = type(value)
        if kind is float or kind is int:
            low, high = known[name]
            if low <= value <= high:
                continue
            raise ValueProblem(f"{field}.{name}", f"got {value!r}, allowed: {low:g} to {high:g}")
        if value is None or kind is bool or (kind is str and len(value) <= MAX_TEXT):
            continue
        if kind is str:
            raise ValueProblem(f"{field}.{name}", f"a text of {len(value)} characters, allowed: up to {MAX_TEXT}")
        raise ValueProblem(f"{field}.{name}", f"got {value!r:.80}, expected a number, a string or null")


def check_reading(data: dict[str, Any]) -> None:
    """A snapshot ``{"roles": {...}, "registers": {...}}`` or a minute mean ``{"samples", "roles"}``."""
    for key in RESERVED_READING_KEYS:
        if key in data:
            raise ValueProblem(f"data.{key}", "not allowed (the item's own ts is the reading's time)")
    if "roles" in data:
        _check_scalars("data.roles", data["roles"], ranges=True)
    if "registers" in data:
        _check_scalars("data.registers", data["registers"], ranges=False)
    if "samples" in data:
        check_range("data.samples", data["samples"], 1, MAX_SAMPLES)


def check_document(stream: str, data: dict[str, Any], now: float) -> float | None:
    """Energy slots and settlements carry their slot time ``ts`` and finite figures; EDI files
    carry text; schedules their slots. Returns the document's time (None for EDI files)."""
    if stream == "edi":
        if not isinstance(data.get("content"), str):
            raise ValueProblem("data.content", f"got {data.get('content')!r:.80}, expected the file's text")
        return None
    ts = check_time("data.ts", data.get("ts"), now)
    if stream == "schedules":
        check_schedule(data)
        return ts
    for name, value in data.items():
        if name == "ts" or value is None:
            continue
        if stream == "energy" and name in ENERGY_FIELDS:
            check_range(f"data.{name}", value, 0.0, MAX_ENERGY_WH)
        elif isinstance(value, str):
            if len(value) > MAX_TEXT:
                raise ValueProblem(f"data.{name}", f"a text of {len(value)} characters, allowed: up to {MAX_TEXT}")
        else:
            check_range(f"data.{name}", value, -MAX_NUMBER, MAX_NUMBER)
    return ts


SCHEDULE_KINDS = ("day_ahead", "intraday")
MAX_SCHEDULE_SLOTS = 100  # a local day has 92, 96 or 100 quarter-hours
MAX_SLOT_WH = 250_000  # a quarter-hour at 1 MW


def check_schedule(data: dict[str, Any]) -> None:
    """``{"ts", "day": "YYYY-MM-DD", "revision", "kind", "slots": [[slot start, import Wh, export Wh], …]}``;
    a slot may add the flexibility around it: ``[…, flexibility up Wh, down Wh]`` (device/schedules.py)."""
    day = data.get("day")
    if not (isinstance(day, str) and len(day) == 10 and day[4] == day[7] == "-" and day.replace("-", "").isdigit()):
        raise ValueProblem("data.day", f"got {day!r:.80}, expected YYYY-MM-DD")
    if data.get("kind") not in SCHEDULE_KINDS:
        raise ValueProblem("data.kind", f"got {data.get('kind')!r:.80}, allowed: {', '.join(SCHEDULE_KINDS)}")
    revision = data.get("revision")
    if type(revision) is not int or not 0 <= revision <= 100_000:
        raise ValueProblem("data.revision", f"got {revision!r:.80}, expected an integer 0 to 100000")
    slots = data.get("slots")
    if type(slots) is not list or not 0 < len(slots) <= MAX_SCHEDULE_SLOTS:
        raise ValueProblem("data.slots", f"got {slots!r:.80}, expected 1 to {MAX_SCHEDULE_SLOTS} "
                                         "[slot start, import Wh, export Wh]")
    for n, slot in enumerate(slots):
        if (type(slot) is not list or len(slot) not in (3, 5) or any(type(v) is not int for v in slot)
                or slot[0] % 900 or not all(0 <= v <= MAX_SLOT_WH for v in slot[1:])):
            raise ValueProblem(f"data.slots.{n}", f"got {slot!r:.80}, expected [slot start (a multiple of 900), "
                                                  "import Wh, export Wh] or [..., flexibility up Wh, down Wh] with "
                                                  f"whole Wh 0 to {MAX_SLOT_WH}")


def repair(stream: str, item: dict[str, Any], now: float) -> tuple[dict[str, Any] | None, list[str]]:
    """``item`` without the values the checks above refuse, and the fields removed; None when
    the item itself cannot be stored (its time is impossible, an EDI file has no text, or a
    schedule is malformed: part of a schedule is not one).

    The device uses it when the aggregator refused a batch: an inverter that once reported a
    state of charge of 255 % must not stop every later upload."""
    removed: list[str] = []
    for _ in range(10_000):
        try:
            if stream in ("readings", "readings_1min"):
                check_time("ts", item.get("ts"), now)
                check_reading(item["data"])
            else:
                check_document(stream, item["data"], now)
            return item, removed
        except ValueProblem as problem:
            *parents, leaf = problem.field.split(".")
            whole = stream == "schedules" or problem.field in ("ts", "data.content") or (
                problem.field == "data.ts" and stream not in ("readings", "readings_1min"))
            if whole:
                return None, [*removed, problem.field]
            target: Any = item
            for part in parents:
                target = target[part]
            del target[leaf]
            removed.append(problem.field)
    return None, removed
