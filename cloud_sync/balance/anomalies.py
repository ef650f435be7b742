"""Metering data that cannot be right, found before it is settled.

Per metering location, over the settled slots (``metered``: slot → (import Wh, export Wh)) with
up to four weeks of earlier metered history:

- ``negative``: an import or export below zero (a meter counts up; negative consumption is a
  sign or parsing error);
- ``above_limit``: a quarter-hour's import or export above what the connection can carry
  (``limit_w`` × ¼ h);
- ``flat_day``: a local day whose quarter-hours all carry the same import and export (a stuck
  meter or a constant filled in);
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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from cloud_sync.balance.timegrid import MARKET_ZONE, SLOT_S, iso, local_day

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


def _days(metered: Mapping[int, tuple[int, int]], zone: ZoneInfo) -> dict[date, list[int]]:
    days: dict[date, list[int]] = {}
    for ts in sorted(metered):
        days.setdefault(local_day(ts, zone), []).append(ts)
    return days


def check_member(
    melo: str, metered: Mapping[int, tuple[int, int]], history: Mapping[int, tuple[int, int]],
    limit_w: int | None, zone: ZoneInfo = MARKET_ZONE,
) -> list[Anomaly]:
    """The anomalies of one metering location's settled slots ``metered``."""
    found = []
    limit_wh = None if limit_w is None else limit_w * SLOT_S // 3600
    for ts in sorted(metered):
        imp, exp = metered[ts]
        if imp < 0 or exp < 0:
            found.append(Anomaly(melo, "negative", ts, ts + SLOT_S, f"import {imp} Wh, export {exp} Wh"))
        elif limit_wh is not None and max(imp, exp) > limit_wh:
            found.append(Anomaly(melo, "above_limit", ts, ts + SLOT_S,
                                 f"{max(imp, exp)} Wh in a quarter-hour, the connection carries at most "
                                 f"{limit_wh} Wh ({limit_w} W)"))
    earlier = _days(history, zone)
    seen = {tuple(history[t] for t in slots): day for day, slots in earlier.items()}
    totals = [sum(history[t][0] for t in slots) for slots in earlier.values()]
    for day, slots in _days(metered, zone).items():
        values = tuple(metered[t] for t in slots)
        span = (slots[0], slots[-1] + SLOT_S)
        if len(slots) > 1 and len(set(values)) == 1:
            found.append(Anomaly(melo, "flat_day", *span, f"{day}: all {len(slots)} quarter-hours are "
                                 f"{values[0][0]} Wh import, {values[0][1]} Wh export"))
        elif values in seen:
            found.append(Anomaly(melo, "repeated_day", *span, f"{day} repeats {seen[values]} slot by slot"))
        total = sum(v[0] for v in values)
        if len(totals) >= JUMP_MIN_DAYS:
            median = statistics.median(totals)
            if median >= JUMP_MIN_WH and (total > JUMP_FACTOR * median or total * JUMP_FACTOR < median):
                found.append(Anomaly(melo, "jump", *span, f"{day}: {total} Wh import against a median of "
                                     f"{median:g} Wh over the {len(totals)} days before"))
        seen.setdefault(values, day)
        totals.append(total)
    return found
