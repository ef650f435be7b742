"""PV forecast for the planner: the plant's own recent output, shaped by the clear-sky sun course.

For each quarter-hour of the (UTC) day the plant's recent yield relative to clear sky is learnt
from the last two weeks (newer days weigh more): ``ratio[slot] = Σ w·pv / Σ w·clearsky``. It
captures orientation, shading, size and the typical cloudiness of the season at once. The
forecast is ``clearsky(t) × ratio[slot(t)]``, so the day gets longer or shorter with the sun,
not with last week. The last hour's measured clear-sky index, relative to that expectation,
scales the next hours (fading with a 2-hour half-life): a grey morning stays grey for a while.

Clear sky is the irradiance on the plant's plane (:func:`clear_sky`: the configured location,
tilt and azimuth; Haurwitz global irradiance for the sun position by NOAA's formulas, transposed
with the isotropic sky). Cold start (no history in daylight): the configured peak power ×
clear-sky plane irradiance / 1000 W/m² × 0.55, a German-average performance/cloud factor
(≈ 1,000 kWh/kWp/yr against ≈ 1,850 kWh/m² of clear-sky GHI at 52° N; a south-facing 30° plant
sees about a tenth more clear-sky irradiance than a flat one, an east- or west-facing one less).
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
_MIN_COS_ZENITH = 0.065  # sun below 86°: no beam/diffuse split
ALBEDO = 0.2


def solar_position(t: FloatArray, latitude: float, longitude: float) -> tuple[FloatArray, FloatArray]:
    """Cosine of the solar zenith angle and the solar azimuth (radians from north, clockwise) at
    the instants ``t`` (epoch s), by NOAA's fractional-year formulas (about 0.2° off the exact
    position between the polar circles; no refraction)."""
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
    hour_angle = np.radians(solar_min / 4.0 - 180.0)  # 0 at solar noon, > 0 in the afternoon
    lat = np.radians(latitude)
    cos_z = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    azimuth = np.pi + np.arctan2(np.sin(hour_angle), np.cos(hour_angle) * np.sin(lat) - np.tan(decl) * np.cos(lat))
    return np.clip(cos_z, -1.0, 1.0), azimuth


def clear_sky(
    ts: NDArray[np.int64], latitude: float, longitude: float, tilt_deg: float = 0.0, azimuth_deg: float = 180.0
) -> FloatArray:
    """Clear-sky irradiance (W/m²) on the plant's plane at the middle of each slot starting at
    ``ts`` (epoch s); ``tilt_deg`` 0 is flat (the global horizontal irradiance), ``azimuth_deg``
    the direction the modules face (degrees from north, clockwise: 90 east, 180 south).

    Haurwitz global horizontal irradiance, split into beam and diffuse by the Erbs correlation,
    transposed to the plane with the isotropic sky: beam × cos(angle of incidence) + diffuse ×
    (1 + cos tilt)/2 + ground reflection (albedo 0.2) × (1 − cos tilt)/2."""
    t = np.asarray(ts, dtype=np.float64) + SLOT_S / 2
    cos_z, sun_azimuth = solar_position(t, latitude, longitude)
    up = cos_z > 0.01
    safe_cos = np.where(up, cos_z, 1.0)
    with np.errstate(divide="ignore", over="ignore"):
        ghi = np.where(up, 1098.0 * cos_z * np.exp(-0.057 / safe_cos), 0.0)
    tilt = np.radians(tilt_deg)
    if tilt == 0.0:
        return ghi
    gamma = 2 * np.pi * ((t / 86400.0 - 10957.5) % 365.25) / 365.25
    extraterrestrial = 1367.0 * (1.000110 + 0.034221 * np.cos(gamma) + 0.001280 * np.sin(gamma)
                                 + 0.000719 * np.cos(2 * gamma) + 0.000077 * np.sin(2 * gamma))
    beam_ok = cos_z > _MIN_COS_ZENITH  # below it the split is unstable: all diffuse
    kt = np.clip(ghi / (extraterrestrial * np.where(beam_ok, cos_z, 1.0)), 0.0, 1.0)
    diffuse_share = np.where(kt <= 0.22, 1.0 - 0.09 * kt,
                             np.where(kt <= 0.8, 0.9511 - 0.1604 * kt + 4.388 * kt**2 - 16.638 * kt**3 + 12.336 * kt**4,
                                      0.165))
    dhi = np.where(beam_ok, ghi * diffuse_share, ghi)
    dni = np.where(beam_ok, (ghi - dhi) / np.where(beam_ok, cos_z, 1.0), 0.0)
    sin_z = np.sqrt(1.0 - cos_z**2)
    cos_aoi = cos_z * np.cos(tilt) + sin_z * np.sin(tilt) * np.cos(sun_azimuth - np.radians(azimuth_deg))
    poa = dni * np.maximum(cos_aoi, 0.0) + dhi * (1 + np.cos(tilt)) / 2 + ghi * ALBEDO * (1 - np.cos(tilt)) / 2
    return np.where(up, poa, 0.0)


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
