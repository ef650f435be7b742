"""Delivery days of the day-ahead market and when a day's prices are complete.

The SDAC auction clears per delivery day in market time (CET/CEST, Europe/Brussels) for every
zone we support. Until delivery day 2025-09-30 it cleared hourly (23/24/25 prices a day), since
2025-10-01 in quarter-hours (92/96/100). A day is accepted only with every slot present in the
resolution of its date: anything less is a partial publication (retry), and hourly values for a
quarter-hourly day are not the auction result (SMARD-style hourly means), so they are refused too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from device.market import MARKET_TZ, resolution_for


def day_bounds(day: date, tz: str = MARKET_TZ) -> tuple[pd.Timestamp, pd.Timestamp]:
    """UTC start (inclusive) and end (exclusive) of local ``day``."""
    zone = ZoneInfo(tz)
    nxt = day + timedelta(days=1)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    return pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")


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


def select_day(series: pd.Series, day: date) -> DayPrices:
    """The slots of delivery ``day`` in a UTC- or tz-indexed series, checked for completeness."""
    resolution = resolution_for(day)
    start, end = day_bounds(day)
    s = series.dropna()
    if len(s):
        idx = pd.DatetimeIndex(s.index)
        s = pd.Series(s.to_numpy(dtype=float), index=idx.tz_convert("UTC") if idx.tz else idx.tz_localize("UTC"))
        s = s[(s.index >= start) & (s.index < end)]
        s = s[~s.index.duplicated(keep="last")]
        on_grid = ((s.index - start).total_seconds().astype(int) % resolution) == 0
        s = s[on_grid]
        if resolution == 900 and len(s) and _spacing(s) > 900:
            s = s.iloc[0:0]  # hourly values for a quarter-hourly day: not the auction result
    slots = [(int(t.timestamp()), float(v)) for t, v in s.items()] if len(s) else []
    return DayPrices(day=day, resolution_s=resolution, slots=slots, expected=expected_slots(day, resolution))


def _spacing(series: pd.Series) -> float:
    if len(series) < 2:
        return 900.0
    return float(pd.Series(series.index).diff().dropna().dt.total_seconds().min())
