"""Hourly series ↔ local-day matrices (one row per local delivery day, 24 local hours).

Price models think in delivery days of 24 local hours (the auction clears per local day). Real
series are in UTC, with 23- or 25-hour days at the clock changes and, since delivery day
2025-10-01, in quarter-hours. This module is the one place that maps between the two:

* quarter-hours are averaged to hours (an hour's mean is what an hourly model sees);
* the missing spring hour (02:00 local) is interpolated from its neighbours;
* the two autumn 02:00 hours are averaged into one;
* going back, each real slot (hour or quarter-hour, 23/24/25 hours a day) takes the value of its
  local hour, so a forecast always has exactly the slots of the real day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

HOURS = 24


@dataclass(frozen=True)
class DayMatrix:
    """Values per local day and hour: ``values[i, h]`` is hour ``h`` of local day ``days[i]``."""

    days: pd.DatetimeIndex  # naive dates (midnight), consecutive, no gaps
    values: np.ndarray  # shape (len(days), 24), NaN where unknown

    def index_of(self, day: date) -> int:
        """Row of ``day`` (may be ``len(days)`` or beyond: rows not yet known)."""
        return int((pd.Timestamp(day) - self.days[0]).days)


def to_day_matrix(series: pd.Series, tz: str) -> DayMatrix:
    """Turn a UTC-indexed series (hourly or quarter-hourly, gaps allowed) into a :class:`DayMatrix`."""
    s = series.dropna()
    if s.empty:
        raise ValueError("series is empty: no values to arrange by day")
    idx = pd.DatetimeIndex(s.index)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    hourly = pd.Series(s.to_numpy(dtype=float), index=idx).resample("1h").mean()
    local = hourly.index.tz_convert(ZoneInfo(tz))
    frame = pd.DataFrame(
        {"day": local.tz_localize(None).normalize(), "hour": local.hour, "v": hourly.to_numpy()}
    )
    table = frame.groupby(["day", "hour"])["v"].mean().unstack("hour")
    table = table.reindex(columns=range(HOURS))
    days = pd.date_range(table.index.min(), table.index.max(), freq="D")
    table = table.reindex(days)
    values = table.to_numpy(dtype=float, copy=True)
    _fill_spring_hour(values, days, tz)
    return DayMatrix(days=days, values=values)


def _fill_spring_hour(values: np.ndarray, days: pd.DatetimeIndex, tz: str) -> None:
    """Interpolate the local hour that does not exist on spring clock-change days."""
    for i, day in enumerate(days):
        hours = local_hours(day.date(), tz)
        if len(hours) == 23:
            missing = sorted(set(range(HOURS)) - set(hours))
            for h in missing:
                before, after = values[i, h - 1], values[i, min(h + 1, HOURS - 1)]
                values[i, h] = np.nanmean([before, after]) if np.isfinite([before, after]).any() else np.nan


def local_hours(day: date, tz: str) -> list[int]:
    """Local hour of each UTC hour of ``day`` (23, 24 or 25 entries)."""
    return [t.hour for t in day_slots(day, tz, 3600)]


def day_slots(day: date, tz: str, resolution_s: int) -> list[datetime]:
    """Local start times of every delivery slot of local ``day`` (tz-aware, in order)."""
    zone = ZoneInfo(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(ZoneInfo("UTC"))
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).astimezone(ZoneInfo("UTC"))
    count = int((end - start).total_seconds()) // resolution_s
    return [(start + timedelta(seconds=k * resolution_s)).astimezone(zone) for k in range(count)]


def expand_day(
    day: date, hourly: np.ndarray, tz: str, resolution_s: int, quarter_shape: np.ndarray | None = None
) -> list[tuple[int, float]]:
    """Real slots of ``day`` as ``(utc_epoch_s, value)``, each taking its local hour's value.

    An hourly model has no view inside the hour. Quarter-hours repeat their hour's value, plus
    ``quarter_shape[hour, quarter]`` when given (see :func:`quarter_profile`).
    """
    out = []
    for t in day_slots(day, tz, resolution_s):
        value = float(hourly[t.hour])
        if quarter_shape is not None and resolution_s == 900:
            value += float(quarter_shape[t.hour, t.minute // 15])
        out.append((int(t.timestamp()), value))
    return out


def quarter_profile(series: pd.Series, tz: str, days: int = 7) -> np.ndarray | None:
    """Mean deviation of each quarter-hour from its hour's mean over the last ``days`` days.

    Since 2025-10-01 the day-ahead market clears quarter-hours, and prices within an hour follow a
    regular pattern (ramps at the hour's edges). An hourly forecast plus this (24, 4) profile
    keeps the systematic part of it. ``None`` without quarter-hourly data.
    """
    s = series.dropna()
    if len(s) < 2:
        return None
    idx = pd.DatetimeIndex(s.index)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    s = pd.Series(s.to_numpy(dtype=float), index=idx)
    s = s[s.index >= (s.index[-1] - pd.Timedelta(days=days)).ceil("1h")]
    hours = s.groupby(s.index.floor("1h"))
    s = s[hours.transform("count").to_numpy() == 4]  # complete hours only
    if len(s) < 4 * 24:
        return None
    hour_mean = s.groupby(s.index.floor("1h")).transform("mean")
    local = s.index.tz_convert(ZoneInfo(tz))
    frame = pd.DataFrame({"h": local.hour, "q": local.minute // 15, "d": s.to_numpy() - hour_mean.to_numpy()})
    table = frame.groupby(["h", "q"])["d"].mean().unstack("q").reindex(index=range(HOURS), columns=range(4))
    return np.nan_to_num(table.to_numpy(dtype=float, copy=True))
