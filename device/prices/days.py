"""Delivery days of the day-ahead market and when a day's prices are complete.

The SDAC auction clears per delivery day in market time (CET/CEST, Europe/Brussels) for every
zone we support. Until delivery day 2025-09-30 it cleared hourly (23/24/25 prices a day), since
2025-10-01 in quarter-hours (92/96/100). A day is accepted only with every slot present in the
resolution of its date: anything less is a partial publication (retry), and hourly values for a
quarter-hourly day are not the auction result (SMARD-style hourly means), so they are refused too.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from device.market import MARKET_TZ, resolution_for

__all__ = ["DayPrices", "day_bounds", "expected_slots", "resolution_for", "select_day"]


def day_bounds(day: date, tz: str = MARKET_TZ) -> tuple[datetime, datetime]:
    """UTC start (inclusive) and end (exclusive) of local ``day``."""
    zone = ZoneInfo(tz)
    nxt = day + timedelta(days=1)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def expected_slots(day: date, resolution_s: int | None = None) -> int:
    """92/96/100 quarter-hours or 23/24/25 hours, depending on the clock change."""
    start, end = day_bounds(day)
    return int((end - start).total_seconds()) // (resolution_s or resolution_for(day))


@dataclass(frozen=True)
class DayPrices:
    """The slots of one delivery day found in a response, and whether that is all of them."""

    day: date
    resolution_s: int
    slots: list[tuple[int, float]]  # (UTC epoch s of the slot start, EUR/MWh), in order
    expected: int

    @property
    def complete(self) -> bool:
        return len(self.slots) == self.expected

    @property
    def state(self) -> str:
        """``complete``, ``partial`` or ``missing``."""
        return "complete" if self.complete else ("partial" if self.slots else "missing")


def select_day(slots: Iterable[tuple[int, float]], day: date) -> DayPrices:
    """The slots of delivery ``day`` among ``(UTC epoch s, value)`` pairs, checked for completeness.

    Unknown (NaN) values and slots off the day's grid are left out; of a repeated slot the last
    value counts; hourly values for a quarter-hourly day are refused (not the auction result).
    """
    resolution = resolution_for(day)
    start, end = (int(t.timestamp()) for t in day_bounds(day))
    found: dict[int, float] = {}
    for ts, value in slots:
        if start <= ts < end and (ts - start) % resolution == 0 and not math.isnan(value):
            found.pop(ts, None)  # the last occurrence counts, in its own place
            found[ts] = float(value)
    if resolution == 900 and _spacing(list(found)) > 900:
        found = {}
    return DayPrices(day=day, resolution_s=resolution, slots=list(found.items()),
                     expected=expected_slots(day, resolution))


def _spacing(stamps: list[int]) -> float:
    if len(stamps) < 2:
        return 900.0
    return float(min(b - a for a, b in itertools.pairwise(stamps)))
