"""PV forecast for the planner: the plant's own recent output, shaped by the clear-sky sun course.

For each quarter-hour of the (UTC) day the plant's recent yield relative to clear sky is learnt
from the last two weeks (newer days weigh more): ``ratio[slot] = Σ w·pv / Σ w·clearsky``. It
captures orientation, shading, size and the typical cloudiness of the season at once. The
forecast is ``clearsky(t) × ratio[slot(t)]``, so the day gets longer or shorter with the sun,
not with last week. The last hour's measured clear-sky index, relative to that expectation,
scales the next hours (fading with a 2-hour half-life): a grey morning stays grey for a while.

Clear sky is the Haurwitz global horizontal irradiance for the sun position (NOAA formulas)
at the configured latitude/longitude. Cold start (no history in daylight): the configured
peak power × clear-sky GHI / 1000 W/m² × 0.55, a German-average performance/cloud factor
(≈ 1,000 kWh/kWp/yr against ≈ 1,850 kWh/m² of clear-sky GHI at 52° N).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
SLOT_S = 900
DAY = 96
HISTORY_DAYS = 14
DAY_DECAY = 0.85
COLD_START_FACTOR = 0.55
BLEND_SLOTS = 4
BLEND_HALF_LIFE = 8.0  # slots
_MIN_CLEARSKY = 20.0  # W/m²: below this the ratio is noise (dawn, dusk)


def clear_sky_ghi(ts: NDArray[np.int64], latitude: float, longitude: float) -> FloatArray:
    """Haurwitz clear-sky GHI (W/m²) at the middle of each slot starting at ``ts`` (epoch s)."""
    t = np.asarray(ts, dtype=np.float64) + SLOT_S / 2
    days = t / 86400.0 - 10957.5  # days since J2000.0 (2000-01-01 12:00 UTC)
    gamma = 2 * np.pi * (days % 365.25) / 365.25
    decl = (
        0.006918 - 0.399912 * np.cos(gamma) + 0.070257 * np.sin(gamma) - 0.006758 * np.cos(2 * gamma)
        + 0.000907 * np.sin(2 * gamma) - 0.002697 * np.cos(3 * gamma) + 0.00148 * np.sin(3 * gamma)
    )
    eot_min = 229.18 * (
        0.000075 + 0.001868 * np.cos(gamma) - 0.032077 * np.sin(gamma)
        - 0.014615 * np.cos(2 * gamma) - 0.040849 * np.sin(2 * gamma)
    )
    utc_min = (t % 86400.0) / 60.0
    solar_min = utc_min + eot_min + 4.0 * longitude
    hour_angle = np.radians(solar_min / 4.0 - 180.0)
    lat = np.radians(latitude)
    cos_z = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    cos_z = np.clip(cos_z, 0.0, 1.0)
    with np.errstate(divide="ignore", over="ignore"):
        ghi = 1098.0 * cos_z * np.exp(-0.057 / np.where(cos_z > 0, cos_z, 1.0))
    return np.where(cos_z > 0.01, ghi, 0.0)


def forecast_pv(
    history_w: FloatArray,
    clearsky: FloatArray,
    now_index: int,
    horizon: int,
    peak_w: float,
) -> FloatArray:
    """PV (W) for slots ``now_index … now_index + horizon − 1``.

    ``history_w`` and ``clearsky`` are dense per-slot series on the same index (``clearsky``
    must reach ``now_index + horizon``); only history before ``now_index`` is read (NaN = not
    metered). ``peak_w`` is the plant size for the cold start.
    """
    target = now_index + np.arange(horizon)
    cs_target = clearsky[target]
    num = np.zeros(horizon)
    den = np.zeros(horizon)
    ahead_days = (target - now_index) // DAY
    for d in range(1, HISTORY_DAYS + 1):
        lag = target - DAY * (d + ahead_days)
        ok = lag >= 0
        pv = np.full(horizon, np.nan)
        pv[ok] = history_w[lag[ok]]
        cs = np.zeros(horizon)
        cs[ok] = clearsky[lag[ok]]
        good = np.isfinite(pv) & (cs > _MIN_CLEARSKY)
        w = DAY_DECAY ** (d - 1)
        num[good] += w * pv[good]
        den[good] += w * cs[good]
    cold = peak_w * cs_target / 1000.0 * COLD_START_FACTOR
    forecast = np.where(den > 0, cs_target * num / np.maximum(den, 1e-9), cold)
    forecast *= _recent_index(history_w, clearsky, now_index, horizon)
    return np.clip(forecast, 0.0, None)


def _recent_index(
    history_w: FloatArray,
    clearsky: FloatArray,
    now_index: int,
    horizon: int,
) -> FloatArray:
    """Multiplier from the last hour: measured output over what the learnt ratio expected."""
    start = now_index - BLEND_SLOTS
    if start < DAY:
        return np.ones(horizon)
    recent = history_w[start:now_index]
    cs_recent = clearsky[start:now_index]
    if not np.all(np.isfinite(recent)) or cs_recent.sum() < BLEND_SLOTS * _MIN_CLEARSKY * 5:
        return np.ones(horizon)
    # The learnt ratio at those slots: the same slots of the previous days.
    past = [history_w[start - DAY * d:now_index - DAY * d] for d in range(1, HISTORY_DAYS + 1) if start - DAY * d >= 0]
    past_cs = [clearsky[start - DAY * d:now_index - DAY * d] for d in range(1, HISTORY_DAYS + 1) if start - DAY * d >= 0]
    weights = DAY_DECAY ** np.arange(len(past))
    p, c = np.array(past), np.array(past_cs)
    if not np.all(np.isfinite(p)):
        return np.ones(horizon)
    expected_ratio = float((weights[:, None] * p).sum() / max((weights[:, None] * c).sum(), 1e-9))
    if expected_ratio <= 1e-6:
        return np.ones(horizon)
    index = float(recent.sum() / cs_recent.sum()) / expected_ratio
    index = min(max(index, 0.0), 3.0)
    fade = 0.5 ** (np.arange(1, horizon + 1) / BLEND_HALF_LIFE)
    return 1.0 + (index - 1.0) * fade
