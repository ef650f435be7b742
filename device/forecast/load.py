"""Household load forecast for the planner, from the device's own metered history.

For each future slot: the weighted mean of the same weekday and quarter-hour in the last four
weeks (weights 4:3:2:1, newest first; missing weeks are skipped), then shifted by how far the
last hour's measurement is off that profile, a correction that fades with a 1.5-hour half-life.
Households repeat their weekly routine but not their exact level; the latest measurement carries
the level (someone is home, the heat pump runs) into the next few hours.

Cold start (no week of history yet): the standard profile in ``data/standard_load_profile.csv``,
a BDEW H25-like shape by month, day type and quarter-hour (derived from the H25 household year
by ``tools/derive_load_profile.py``), scaled to the configured annual consumption, and once a
day is metered to the measured level (:func:`cold_start_scale`).

Spiky homes (a kettle, a water heater, a car) are not one curve: :func:`load_quantiles` gives
quantiles per slot from the same quarter-hour of the last seven days and the same weekday of
the weeks before, spikes included.

The lags are whole UTC weeks, so for one week after a clock change the profile is an hour off
for the shifted hours; the measurement blend absorbs most of it.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
SLOT_S = 900
WEEK = 7 * 96
WEEK_WEIGHTS = (4.0, 3.0, 2.0, 1.0)
BLEND_SLOTS = 4  # the last hour
BLEND_HALF_LIFE = 6.0  # slots
PROFILE_FILE = Path(__file__).with_name("data") / "standard_load_profile.csv"


@lru_cache(maxsize=1)
def _standard_table() -> NDArray[np.float64]:
    """kW per MWh/yr, indexed [month 1-12, day type 0-2, slot 0-95]."""
    table = np.zeros((13, 3, 96))
    with PROFILE_FILE.open() as f:
        for row in csv.DictReader(f):
            table[int(row["month"]), int(row["daytype"]), int(row["slot"])] = float(row["kw_per_mwh_year"])
    return table


def standard_profile_w(ts: NDArray[np.int64], annual_kwh: float, timezone: str) -> FloatArray:
    """Cold-start load (W) for slot starts ``ts``, scaled to ``annual_kwh``."""
    zone = ZoneInfo(timezone)
    table = _standard_table()
    out = np.empty(len(ts))
    for i, t in enumerate(ts.tolist()):
        local = datetime.fromtimestamp(t, UTC).astimezone(zone)
        daytype = local.weekday() - 4 if local.weekday() >= 5 else 0
        out[i] = table[local.month, daytype, local.hour * 4 + local.minute // 15]
    return out * annual_kwh  # kW per MWh/yr × kWh/yr = W


def forecast_load(
    history_w: FloatArray,
    now_index: int,
    horizon: int,
    fallback_w: FloatArray,
) -> FloatArray:
    """Load (W) for slots ``now_index … now_index + horizon − 1``.

    ``history_w`` is a dense per-slot series (NaN = not metered) whose index ``now_index`` is
    the current slot; only entries before it are read. ``fallback_w`` (length ``horizon``) is
    used where no week of history exists, normally :func:`standard_profile_w`.
    """
    target = now_index + np.arange(horizon)
    total = np.zeros(horizon)
    weight = np.zeros(horizon)
    for k, w in enumerate(WEEK_WEIGHTS, start=1):
        lag = target - k * WEEK
        ok = lag >= 0
        vals = np.full(horizon, np.nan)
        vals[ok] = history_w[lag[ok]]
        good = np.isfinite(vals)
        total[good] += w * vals[good]
        weight[good] += w
    profile = np.where(weight > 0, total / np.maximum(weight, 1e-12), fallback_w)
    correction = _level_correction(history_w, now_index)
    if correction:
        fade = 0.5 ** (np.arange(1, horizon + 1) / BLEND_HALF_LIFE)
        profile = profile + correction * fade
    return np.maximum(profile, 0.0)


QUANTILES = (0.1, 0.5, 0.9)
_MIN_SAMPLES = 3


def load_quantiles(
    history_w: FloatArray, now_index: int, horizon: int, fallback_w: FloatArray, qs: tuple[float, ...] = QUANTILES
) -> FloatArray:
    """Load quantiles (W), shape ``(len(qs), horizon)``: per future slot, the empirical quantiles of
    the same quarter-hour on each of the last seven days and the same weekday two to four weeks
    back (up to ten measurements, only those before ``now_index``), as predictive quantiles: the
    q-quantile sits at rank q·(n + 1) of the n sorted measurements (``weibull`` positions), where
    the next measurement falls below it with probability q. The usual interpolation (rank
    1 + q·(n − 1)) makes a band of ten measurements that holds about 65 % of new ones instead of
    80 %. Where fewer than three exist,
    every quantile is ``fallback_w``."""
    target = now_index + np.arange(horizon)
    lags = [d * 96 for d in range(1, 8)] + [k * WEEK for k in range(2, 5)]
    samples = np.full((len(lags), horizon), np.nan)
    for j, lag in enumerate(lags):
        src = target - lag
        ok = (src >= 0) & (src < now_index)
        samples[j, ok] = history_w[src[ok]]
    enough = np.isfinite(samples).sum(axis=0) >= _MIN_SAMPLES
    out = np.tile(np.asarray(fallback_w, dtype=float), (len(qs), 1))
    if enough.any():
        out[:, enough] = np.nanquantile(samples[:, enough], qs, axis=0, method="weibull")
    return out


def cold_start_scale(recent_w: FloatArray, profile_w: FloatArray) -> float:
    """Factor scaling the standard profile to the measured level: measured mean over the profile's
    mean on the same slots, once at least a day is metered (1 before)."""
    ok = np.isfinite(recent_w)
    if ok.sum() < 96 or float(profile_w[ok].sum()) <= 0:
        return 1.0
    return float(recent_w[ok].sum() / profile_w[ok].sum())


def _level_correction(history_w: FloatArray, now_index: int) -> float:
    """Last hour's measured mean minus what the weekly profile said for it (0 when unknown)."""
    start = now_index - BLEND_SLOTS
    if start < WEEK:
        return 0.0
    recent = history_w[start:now_index]
    past = np.array([history_w[start - k * WEEK:now_index - k * WEEK] for k in range(1, 5) if start - k * WEEK >= 0])
    weights = np.array(WEEK_WEIGHTS[: len(past)])
    if not np.all(np.isfinite(recent)) or not np.all(np.isfinite(past)):
        return 0.0
    expected = float((weights[:, None] * past).sum(axis=0).mean() / weights.sum())
    return float(recent.mean()) - expected
