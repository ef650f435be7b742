"""Price series ↔ local-day matrices (one row per local delivery day, 24 local hours).

Price models think in delivery days of 24 local hours (the auction clears per local day). Real
series are in UTC, with 23- or 25-hour days at the clock changes and, since delivery day
2025-10-01, in quarter-hours. This module is the one place that maps between the two:

* quarter-hours are averaged to hours (an hour's mean is what an hourly model sees);
* the missing spring hour (02:00 local) is interpolated from its neighbours;
* the two autumn 02:00 hours are averaged into one;
* quarter-hour prices are also kept as they are, by local day, hour and quarter (the cells the
  intra-hour model of :mod:`device.forecast.intrahour` learns from);
* going back, each real slot (hour or quarter-hour, 23/24/25 hours a day) takes the value of its
  local hour (and quarter), so a forecast always has exactly the slots of the real day.
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


def expand_day(day: date, values: np.ndarray, tz: str, resolution_s: int) -> list[tuple[int, float]]:
    """Real slots of ``day`` as ``(utc_epoch_s, value)``.

    ``values`` is per local hour, shape (24,), or per local hour and quarter, shape (24, 4) (see
    :func:`to_quarter_matrix`). Each slot takes the value of its local hour (and quarter): an
    hourly value repeats over its four quarter-hours, quarter-hour values make an hourly slot
    their mean; both autumn 02:00 hours take hour 2.
    """
    cells = np.asarray(values, dtype=float)
    if cells.ndim == 2 and resolution_s == 3600:
        cells = cells.mean(axis=1)
    out = []
    for t in day_slots(day, tz, resolution_s):
        value = cells[t.hour] if cells.ndim == 1 else cells[t.hour, t.minute // 15]
        out.append((int(t.timestamp()), float(value)))
    return out


def to_quarter_matrix(series: pd.Series, tz: str, days: pd.DatetimeIndex) -> np.ndarray:
    """Quarter-hour values by local day, hour and quarter: shape (len(days), 24, 4).

    Only real quarter-hour data fill it: an hourly series leaves every cell but ``[:, :, 0]``
    NaN (use :func:`has_quarters` to tell the two apart), the missing spring hour stays NaN and
    the two autumn 02:00 hours are averaged quarter by quarter.
    """
    out = np.full((len(days), HOURS, 4), np.nan)
    s = series.dropna()
    if s.empty:
        return out
    idx = pd.DatetimeIndex(s.index)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    local = idx.tz_convert(ZoneInfo(tz))
    frame = pd.DataFrame({
        "row": (local.tz_localize(None).normalize() - days[0]).days,
        "hour": local.hour, "quarter": local.minute // 15, "v": s.to_numpy(dtype=float),
    })
    frame = frame[(frame["row"] >= 0) & (frame["row"] < len(days))]
    cells = frame.groupby(["row", "hour", "quarter"])["v"].mean()
    rows, hours, quarters = (cells.index.get_level_values(k).to_numpy() for k in range(3))
    out[rows, hours, quarters] = cells.to_numpy()
    return out


def has_quarters(cells: np.ndarray) -> np.ndarray:
    """Per day of a quarter matrix: True where any hour has all four quarter-hours (a 15-minute day)."""
    return np.asarray(np.isfinite(cells).all(axis=2).any(axis=1))
