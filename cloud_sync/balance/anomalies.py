"""Metering data that cannot be right, found before it is settled.

Per metering location, over the settled slots (``metered``: slot → (import Wh, export Wh)) with
up to four weeks of earlier metered history:

- ``negative``: an import or export below zero (a meter counts up; negative consumption is a
  sign or parsing error);
- ``above_limit``: a quarter-hour's import or export above what the connection can carry
  (``limit_w`` × ¼ h);
- ``flat_day``: a local day whose quarter-hours all carry the same import and export, not both
  zero (a stuck meter or a constant filled in; a home whose battery covered the whole day
  shows zero all day, legitimately);
- ``repeated_day``: a local day identical, slot by slot, to an earlier day (a day copied in);
- ``jump``: a local day's import over ``JUMP_FACTOR`` times, or under 1/``JUMP_FACTOR`` of, the
  median of the member's earlier days (with at least ``JUMP_MIN_DAYS`` of them, median at least
  ``JUMP_MIN_WH``).

Each anomaly covers slots ``[start, end)``; the run lists them and, by the operator's choice,
settles them as metered (``flag``), leaves them out (``exclude``: settled as scheduled) or
replaces them by the member's substitute profile (``substitute``).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from cloud_sync.balance.timegrid import MARKET_ZONE, SLOT_S, day_bounds, iso, local_day

KINDS = ("negative", "above_limit", "flat_day", "repeated_day", "jump")
CHOICES = ("flag", "exclude", "substitute")
JUMP_FACTOR = 4
JUMP_MIN_DAYS = 7
JUMP_MIN_WH = 1000


@dataclass(frozen=True)
class Anomaly:
    melo: str
    kind: str
    start: int
    end: int
    detail: str

    def to_json(self) -> dict[str, object]:
        return {"melo": self.melo, "kind": self.kind, "start": iso(self.start), "end": iso(self.end),
                "detail": self.detail}


@dataclass(frozen=True)
class DayFigures:
    """A metered local day in figures the database computes as well as Python: the number of
    slots, the range of import and export, and the sums Σx, Σy, Σi·x, Σi·y, Σi²·x, Σi²·y over
    the day's slots (i = position in the day from 1, x import, y export). Two days agreeing on
    all of them are taken as one repeated (a copied day always does; different days would have
    to agree on seven sums at once)."""

    day: date
    start: int
    end: int
    slots: int
    min_import: int
    max_import: int
    min_export: int
    max_export: int
    sums: tuple[int, int, int, int, int, int]

    @property
    def import_wh(self) -> int:
        return self.sums[0]


def day_figures(metered: Mapping[int, tuple[int, int]], zone: ZoneInfo = MARKET_ZONE) -> list[DayFigures]:
    """The :class:`DayFigures` of each local day in ``metered`` (slot → (import, export))."""
    out = []
    for day, slots in _days(metered, zone).items():
        first = day_bounds(day, zone)[0]
        values = [(1 + (t - first) // SLOT_S, *metered[t]) for t in slots]
        sums = (sum(x for _, x, _ in values), sum(y for _, _, y in values),
                sum(i * x for i, x, _ in values), sum(i * y for i, _, y in values),
                sum(i * i * x for i, x, _ in values), sum(i * i * y for i, _, y in values))
        out.append(DayFigures(day, slots[0], slots[-1] + SLOT_S, len(slots),
                              min(x for _, x, _ in values), max(x for _, x, _ in values),
                              min(y for _, _, y in values), max(y for _, _, y in values), sums))
    return out


def _days(metered: Mapping[int, tuple[int, int]], zone: ZoneInfo) -> dict[date, list[int]]:
    days: dict[date, list[int]] = {}
    for ts in sorted(metered):
        days.setdefault(local_day(ts, zone), []).append(ts)
    return days


def check_slots(melo: str, rows: Iterable[tuple[int, int, int]], limit_w: int | None) -> list[Anomaly]:
    """``negative`` and ``above_limit`` among ``(slot, import, export)`` rows."""
    found = []
    limit_wh = None if limit_w is None else limit_w * SLOT_S // 3600
    for ts, imp, exp in sorted(rows):
        if imp < 0 or exp < 0:
            found.append(Anomaly(melo, "negative", ts, ts + SLOT_S, f"import {imp} Wh, export {exp} Wh"))
        elif limit_wh is not None and max(imp, exp) > limit_wh:
            found.append(Anomaly(melo, "above_limit", ts, ts + SLOT_S,
                                 f"{max(imp, exp)} Wh in a quarter-hour, the connection carries at most "
                                 f"{limit_wh} Wh ({limit_w} W)"))
    return found


def check_days(melo: str, days: Iterable[DayFigures], history: Iterable[DayFigures]) -> list[Anomaly]:
    """``flat_day``, ``repeated_day`` and ``jump`` of the settled ``days`` against the earlier ones."""
    found = []
    earlier = sorted(history, key=lambda d: d.start)
    seen = {(d.slots, d.sums): d.day for d in earlier}
    totals = [d.import_wh for d in earlier]
    for d in sorted(days, key=lambda d: d.start):
        if d.slots > 1 and d.min_import == d.max_import and d.min_export == d.max_export and (d.max_import or d.max_export):
            found.append(Anomaly(melo, "flat_day", d.start, d.end, f"{d.day}: all {d.slots} quarter-hours are "
                                 f"{d.min_import} Wh import, {d.min_export} Wh export"))
        elif (d.slots, d.sums) in seen:
            found.append(Anomaly(melo, "repeated_day", d.start, d.end, f"{d.day} repeats {seen[d.slots, d.sums]} "
                                                                       "slot by slot"))
        if len(totals) >= JUMP_MIN_DAYS:
            median = statistics.median(totals)
            if median >= JUMP_MIN_WH and (d.import_wh > JUMP_FACTOR * median or d.import_wh * JUMP_FACTOR < median):
                found.append(Anomaly(melo, "jump", d.start, d.end, f"{d.day}: {d.import_wh} Wh import against a "
                                     f"median of {median:g} Wh over the {len(totals)} days before"))
        seen.setdefault((d.slots, d.sums), d.day)
        totals.append(d.import_wh)
    return found


def check_member(
    melo: str, metered: Mapping[int, tuple[int, int]], history: Mapping[int, tuple[int, int]],
    limit_w: int | None, zone: ZoneInfo = MARKET_ZONE,
) -> list[Anomaly]:
    """The anomalies of one metering location's settled slots ``metered``."""
    slots = check_slots(melo, [(t, *v) for t, v in metered.items()], limit_w)
    return slots + check_days(melo, day_figures(metered, zone), day_figures(history, zone))
