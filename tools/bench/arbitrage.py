"""Benchmark: a period (a whole year) of a home battery in 15-minute steps, six strategies, one JSON line.

    python -m tools.bench.arbitrage --prices ../shared/data/prices/de_lu_day_ahead_hourly_2015_2024.csv \\
        --household ../shared/data/household/de_household_15min_2024.csv --year 2024
    python -m tools.bench.arbitrage --prices HOURLY.csv --prices QUARTER_HOURLY.csv --exog … --exog … \\
        --household ../shared/data/household/de_household_15min_2024.csv --household-shift-days 364 \\
        --start 2025-10-08 --end 2025-12-30
    python -m tools.bench.arbitrage --prices … --households ../shared/data/household/stochastic \\
        --year 2024 --price-year 2019

Set-up (documented in the README): 10 kWh usable / 5 kW battery, 95 % charge and 95 % discharge
efficiency, the whole capacity usable (no reserve), 8 kWp PV (``--kwp``, location ``--lat/--lon``, orientation ``--tilt/--azimuth``: flat by default),
the household's load as measured (``--annual-load`` scales it), the German dynamic tariff of
``device/resources/default.yaml`` (device/prices/tariff.py) with a fixed 7.94 ct/kWh feed-in. Day-ahead
prices are read in their files' resolution: an hourly price holds for its four quarter-hours, a
quarter-hour price (from delivery day 2025-10-01) for its own; planning and billing use each
slot's own price. Several ``--prices`` files are joined in time order; ``--household-shift-days``
moves the household file's days on the local clock (364 days keeps weekdays and clock changes from
2024 to 2025); ``--price-year`` moves them to the same ISO week and weekday of another year, so a
2024 household meets 2016 or 2019 prices (``--year/--start/--end`` name the household's days).
``--households DIR`` runs every household in a folder and reports the worst and the median.
Information is honest: tomorrow's prices become known at 13:00 local time the day before; load and PV are never known in advance
except in the perfect-foresight run. The planner re-plans at every slot, the first slot's
setpoint is executed against the real load and PV, and every strategy is billed on the same
metered flows.

Strategies: ``no_battery``; ``self_consumption`` (the inverter's own rule); ``peers_rule``
(charge from the grid at full power in the N cheapest known slots when the known spread beats
the round-trip loss by a threshold, self-consumption otherwise); ``ours_known_prices`` (the LP
over the known prices only, with the load/PV forecasts); ``ours_forecast`` (the LP over the known
prices extended with the price forecast to at least 24 h ahead, with the load/PV forecasts; 48 h
was tested and did worse in winter, see the README); ``perfect`` (one LP
over the whole year with the real prices, load and PV — the limit).

``captured_share`` = (cost without battery − cost) / (cost without battery − perfect cost).
Price forecast: the device's LiteRT forecaster when ``device.forecast.price`` provides one and a
model file exists, else the documented fallback here (mean of the same slot one day and one
week before, taking the newest known day), and the JSON says which one was used.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from device.config import TariffSettings
from device.forecast.history import read_csv, read_price_series
from device.forecast.load import (
    QUANTILES,
    WEEK,
    cold_start_scale,
    forecast_load,
    load_quantiles,
    standard_profile_w,
)
from device.forecast.metrics import pinball
from device.forecast.price import PriceForecaster
from device.forecast.pv import clear_sky, forecast_pv
from device.plan.baseline import simulate_self_consumption
from device.plan.lp import Solver
from device.plan.model import SLOT_S, Battery, Inputs, Plan, Rules
from device.plan.robust import FEEDBACK_DAYS, ForcingGate
from device.plan.schedule import plan
from device.prices.days import resolution_for
from device.prices.tariff import Tariff
from device.resources import MODELS_DIR

FloatArray = NDArray[np.float64]
DAY = 96
HORIZON = 192  # the longest plan: 48 h (prices known up to 35 h ahead, the rest forecast)
FORECAST_SLOTS = 96  # ours_forecast plans at least 24 h ahead (planner.horizon_h)
TIMING_EVERY = 8  # every 8th slot also solves a full 192-slot plan for the solve-time figures
TZ = "Europe/Berlin"
LAT, LON = 52.38, 13.07  # the PV weather station of the household file (Potsdam)
PV_KWP = 8.0
PEERS_SPREAD_EUR_MWH = 30.0
PUBLISH_HOUR = 13


@dataclass(frozen=True)
class House:
    """The plant: PV peak power, location, and the yearly load the household file is scaled to
    (None: as measured)."""

    kwp: float = PV_KWP
    annual_load_kwh: float | None = None
    lat: float = LAT
    lon: float = LON
    tilt_deg: float = 0.0  # the PV forecast's clear-sky plane (the file's plant is 35°, 180°)
    azimuth_deg: float = 180.0


@dataclass
class Year:
    """The simulated period (a calendar year or ``--start``..``--end``)."""

    ts: NDArray[np.int64]  # slot starts of the period, then HORIZON slots beyond
    n: int  # slots in the period
    spot: FloatArray  # EUR/MWh per slot (NaN where unknown), history before the period included
    first: int  # index in ``spot`` of the period's first slot
    load_w: FloatArray
    pv_w: FloatArray
    import_price: FloatArray  # for the period's slots (real spot)
    export_price: FloatArray
    known_end: NDArray[np.int64]  # per period slot: index (period-relative) where known prices end
    house: House = House()


def read_period(
    prices_csv: list[Path], household_csv: Path, start: date, end: date, tariff: Tariff, shift_days: int = 0,
    house: House | None = None,
) -> Year:
    """Local days ``start``..``end`` (inclusive): household slots (moved by ``shift_days`` on the local
    clock, see :func:`household_on_days`) and the spot price of every quarter-hour, with 15 days of
    price history before."""
    house = house or House()
    zone = ZoneInfo(TZ)
    first_ts = int(datetime(start.year, start.month, start.day, tzinfo=zone).timestamp())
    after = end + timedelta(days=1)
    end_ts = int(datetime(after.year, after.month, after.day, tzinfo=zone).timestamp())
    ts, load_kw, pv_kw_per_kwp = household_on_days(household_csv, shift_days)
    keep = (ts >= first_ts) & (ts < end_ts)
    if keep.sum() != (end_ts - first_ts) // SLOT_S:
        covered = f"{_day(int(ts[0]))}..{_day(int(ts[-1]))}" if len(ts) else "nothing"
        raise SystemExit(f"--household {household_csv}: covers {covered} (shifted by {shift_days} days), "
                         f"not all of {start}..{end}")
    scale = 1.0 if house.annual_load_kwh is None else house.annual_load_kwh / annual_kwh(load_kw)
    ts = ts[keep]
    load = load_kw[keep] * 1000.0 * scale
    pv = pv_kw_per_kwp[keep] * house.kwp * 1000.0
    history_days = 15
    begin = int(ts[0]) - history_days * 86400
    all_ts = np.arange(begin, int(ts[-1]) + SLOT_S * (HORIZON + 1), SLOT_S, dtype=np.int64)
    spot = slot_prices(read_price_series(prices_csv), all_ts)
    first = int((ts[0] - begin) // SLOT_S)
    period_spot = spot[first:first + len(ts)]
    if np.isnan(period_spot).any():
        missing = int(np.flatnonzero(np.isnan(period_spot))[0])
        raise SystemExit(f"--prices: {int(np.isnan(period_spot).sum())} slots of {start}..{end} have no price, "
                         f"the first {datetime.fromtimestamp(int(ts[missing]), UTC):%Y-%m-%dT%H:%MZ}")
    known_end = _known_end(ts, zone)
    return Year(
        ts=all_ts[first:], n=len(ts), spot=spot, first=first, load_w=load, pv_w=pv,
        import_price=tariff.import_price(ts, period_spot), export_price=tariff.export_price(ts, period_spot),
        known_end=np.minimum(known_end, len(ts)),  # nothing is known after the period
        house=house,
    )


def household_on_days(household_csv: Path, shift_days: int) -> tuple[NDArray[np.int64], FloatArray, FloatArray]:
    """The household file (``timestamp_utc,load_kw,pv_kw_per_kwp``) moved by ``shift_days`` on the
    local clock: the value at local 07:15 of day D lands on local 07:15 of day D + shift, whatever
    the clock changes of either year (a wall-clock time the source day lacks takes the quarter-hour
    before; a repeated hour repeats). Returns slot starts (epoch s), load kW, PV kW per kWp."""
    frame = pd.read_csv(household_csv, usecols=["timestamp_utc", "load_kw", "pv_kw_per_kwp"])
    utc = pd.to_datetime(frame["timestamp_utc"], utc=True)
    if len(utc) == 0:
        raise SystemExit(f"--household {household_csv}: no rows")
    local = pd.DatetimeIndex(utc).tz_convert(TZ).tz_localize(None)
    values = frame[["load_kw", "pv_kw_per_kwp"]].set_axis(local)
    values = values[~values.index.duplicated(keep="first")]
    first_day, last_day = local[0].date() + timedelta(days=shift_days), local[-1].date() + timedelta(days=shift_days + 1)
    zone = ZoneInfo(TZ)
    begin = int(datetime(first_day.year, first_day.month, first_day.day, tzinfo=zone).timestamp())
    stop = int(datetime(last_day.year, last_day.month, last_day.day, tzinfo=zone).timestamp())
    ts = np.arange(begin, stop, SLOT_S, dtype=np.int64)
    wall = pd.DatetimeIndex(pd.to_datetime(ts, unit="s", utc=True)).tz_convert(TZ).tz_localize(None)
    source = wall - pd.Timedelta(days=shift_days)
    got = values.reindex(source, method="ffill", tolerance=pd.Timedelta(hours=1, minutes=15))
    ok = got.notna().all(axis=1).to_numpy()
    return ts[ok], got["load_kw"].to_numpy(dtype=float)[ok], got["pv_kw_per_kwp"].to_numpy(dtype=float)[ok]


def price_year_shift(day: date, price_year: int) -> int:
    """Days to move ``day`` so it lands on the same ISO week and weekday in ``price_year`` (a 2024
    household meets 2019 prices Monday on Monday, week on week)."""
    iso = day.isocalendar()
    return (date.fromisocalendar(price_year, 1, 1) - date.fromisocalendar(iso.year, 1, 1)).days


def annual_kwh(load_kw: FloatArray) -> float:
    """Yearly consumption of a quarter-hour load series (kW), scaled from its length to 365 days."""
    return float(np.mean(load_kw)) * 8760.0


def slot_prices(series: pd.Series, slots: NDArray[np.int64]) -> FloatArray:
    """The price of each quarter-hour ``slots`` (epoch s): its own where the market cleared
    quarter-hours, its hour's where it cleared hours; NaN where there is none."""
    index = pd.to_datetime(slots, unit="s", utc=True)
    own = series.reindex(index).to_numpy(dtype=float)
    hour = series.reindex(index.floor("1h")).to_numpy(dtype=float)  # an hourly price holds for its hour
    return np.where(np.isfinite(own), own, hour)


def _day(epoch: int) -> date:
    return datetime.fromtimestamp(epoch, UTC).astimezone(ZoneInfo(TZ)).date()


def _known_end(ts: NDArray[np.int64], zone: ZoneInfo) -> NDArray[np.int64]:
    """Per slot: index after the last slot with a published price (end of today or tomorrow)."""
    ends = np.empty(len(ts), dtype=np.int64)
    index = {int(t): i for i, t in enumerate(ts)}
    for i, t in enumerate(ts.tolist()):
        local = datetime.fromtimestamp(t, UTC).astimezone(zone)
        days = 2 if local.hour >= PUBLISH_HOUR else 1
        end_day = local.date() + timedelta(days=days)
        end_ts = int(datetime(end_day.year, end_day.month, end_day.day, tzinfo=zone).timestamp())
        ends[i] = index.get(end_ts, len(ts) + (end_ts - int(ts[-1])) // SLOT_S - 1)
    return ends


def fallback_price_forecast(spot: FloatArray, known_until: int, targets: NDArray[np.int64]) -> FloatArray:
    """Mean of the same slot one week before and on the newest known day (absolute indices)."""
    week = spot[targets - 7 * DAY]
    days_back = (targets - known_until) // DAY + 1
    recent = spot[targets - days_back * DAY]
    return 0.5 * week + 0.5 * recent


def honest_model(y: Year) -> Path | None:
    """The newest shipped model (``device/resources/models``, ``config/models/benchmarks``) trained only on
    days before the simulated period; None if there is none (the forecaster then runs its linear
    model alone). A model that has seen the period's prices would flatter the result."""
    start = datetime.fromtimestamp(int(y.ts[0]), UTC).astimezone(ZoneInfo(TZ)).date()
    best: tuple[str, Path] | None = None
    benchmarks = Path(__file__).resolve().parents[2] / "config" / "models" / "benchmarks"
    for tflite in sorted(MODELS_DIR.glob("*.tflite")) + sorted(benchmarks.glob("*.tflite")):
        meta_file = tflite.with_suffix(".json")
        try:
            until = str(json.loads(meta_file.read_text())["info"]["trained_until"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if until < start.isoformat() and "de_lu" in tflite.name and (best is None or until >= best[0]):
            best = (until, tflite)
    return None if best is None else best[1]


def device_price_forecasts(
    y: Year, prices_csv: list[Path], exog_csv: list[Path], windows: tuple[int, ...], model_path: Path | None = None
) -> tuple[dict[date, dict[int, float]], str]:
    """The device's price forecaster (``device.forecast.price``), run as on the device: once a
    day at 13:00, when tomorrow's prices are in, for the days after, in each day's market
    resolution; exogenous forecasts only up to tomorrow (the later ones are not published yet).
    Keyed by the local day it was made, one value per quarter-hour."""
    model = model_path if model_path is not None else honest_model(y)
    forecaster = PriceForecaster(model, TZ, lear_windows=windows)
    history = read_csv(prices_csv, exog_csv or None, TZ)
    zone = ZoneInfo(TZ)
    first = datetime.fromtimestamp(int(y.ts[0]), UTC).astimezone(zone).date() - timedelta(days=1)
    last = datetime.fromtimestamp(int(y.ts[y.n - 1]), UTC).astimezone(zone).date()
    out: dict[date, dict[int, float]] = {}
    methods: dict[str, int] = {}
    day = first
    while day <= last:
        target = day + timedelta(days=2)
        if history.row(target) < len(history.days):
            known = history.as_of(target)
            for matrix in known.exog.values():
                matrix[known.row(target):] = np.nan
            now = datetime(day.year, day.month, day.day, PUBLISH_HOUR, tzinfo=zone)
            result = forecaster.predict(known, now, horizon_h=60.0, resolution_s=resolution_for)
            ts = np.array([t for t, _ in result.slots], dtype=np.int64)
            series = pd.Series([v for _, v in result.slots], index=pd.to_datetime(ts, unit="s", utc=True))
            quarters = np.arange(ts[0], ts[-1] + 3600, SLOT_S, dtype=np.int64)  # to the end of the last hour
            values = slot_prices(series, quarters)
            out[day] = {int(t): float(v) for t, v in zip(quarters, values, strict=True) if np.isfinite(v)}
            for m in result.methods.values():
                methods[m] = methods.get(m, 0) + 1
        day += timedelta(days=1)
    name = "device forecaster (" + (f"model file {model.name}" if model else "no model trained before the period") + \
        f", LEAR windows {list(windows)}): " + ", ".join(f"{k} {v} days" for k, v in sorted(methods.items()))
    return out, name


def cached_price_forecasts(
    cache: Path | None, y: Year, prices_csv: list[Path], exog_csv: list[Path], windows: tuple[int, ...],
    model_path: Path | None,
) -> tuple[dict[date, dict[int, float]], str]:
    """:func:`device_price_forecasts`, kept in ``cache`` (a JSON file) for the next run of the same
    period: they depend only on the price and exogenous files, the windows, the model and the days,
    not on the household or the planner, and take minutes."""
    key = {"prices": [str(p.resolve()) for p in prices_csv], "exog": [str(p.resolve()) for p in exog_csv],
           "windows": list(windows), "model": str(model_path if model_path is not None else honest_model(y)),
           "first": int(y.ts[0]), "last": int(y.ts[y.n - 1])}
    if cache is not None and cache.exists():
        stored = json.loads(cache.read_text())
        if stored["key"] == key:
            days = {date.fromisoformat(d): {int(t): v for t, v in slots.items()} for d, slots in stored["days"].items()}
            return days, str(stored["name"]) + f" (read from {cache})"
        print(f"--price-forecasts-cache {cache}: made for another run, computing anew", file=sys.stderr)
    forecasts, name = device_price_forecasts(y, prices_csv, exog_csv, windows, model_path)
    if cache is not None:
        days_json = {d.isoformat(): {str(t): v for t, v in slots.items()} for d, slots in forecasts.items()}
        cache.write_text(json.dumps({"key": key, "name": name, "days": days_json}))
    return forecasts, name


def _slot_costs(y: Year, battery_w: FloatArray) -> FloatArray:
    """EUR per slot of the period for a battery run (W > 0 discharge)."""
    energy_mwh = (y.load_w - y.pv_w - battery_w) * 0.25 / 1e6
    return np.where(energy_mwh > 0, energy_mwh * y.import_price, energy_mwh * y.export_price)


def bill_slot(y: Year, i: int, grid_w: float) -> float:
    """EUR for slot ``i``'s grid flow (W, > 0 import)."""
    mwh = grid_w * 0.25 / 1e6
    return mwh * float(y.import_price[i] if mwh > 0 else y.export_price[i])


def _local_days(ts: NDArray[np.int64]) -> NDArray[np.int64]:
    """Local calendar day number of each slot start."""
    local = pd.DatetimeIndex(pd.to_datetime(ts, unit="s", utc=True)).tz_convert(TZ)
    return np.asarray((local.normalize().tz_localize(None) - pd.Timestamp("1970-01-01")).days, dtype=np.int64)


def bill(y: Year, grid_w: FloatArray) -> float:
    """EUR for the period's grid flows (W per slot, > 0 import)."""
    energy_mwh = grid_w * 0.25 / 1e6
    return float(np.sum(np.where(energy_mwh > 0, energy_mwh * y.import_price, energy_mwh * y.export_price)))


def step(action: str | None, power_w: float, load: float, pv: float, soc_wh: float, bat: Battery) -> tuple[float, float]:
    """Execute one setpoint for one slot against the real load/PV: (battery W > 0 discharge, SoC Wh)."""
    dt = 0.25
    floor, ceil = bat.floor_pct / 100 * bat.capacity_wh, bat.max_soc_pct / 100 * bat.capacity_wh
    room_w = max(ceil - soc_wh, 0.0) / bat.charge_efficiency / dt
    avail_w = max(soc_wh - floor, 0.0) * bat.discharge_efficiency / dt
    if action == "self_consumption":
        want = load - pv
    elif action == "charge":
        want = -power_w
    elif action == "discharge":
        want = power_w
    else:
        want = 0.0
    if want >= 0:
        b = min(want, bat.max_discharge_w, avail_w)
        return b, soc_wh - b * dt / bat.discharge_efficiency
    b = -min(-want, bat.max_charge_w, room_w)
    return b, soc_wh - b * dt * bat.charge_efficiency


@dataclass
class Run:
    cost: float
    battery_w: FloatArray
    solve_ms: list[float]  # wall clock of each timed 192-slot plan
    extra: dict[str, float]
    solve_cpu_ms: list[float] = field(default_factory=list)  # CPU time of the same plans


def run_peers(y: Year, bat: Battery) -> Run:
    n_cheap = math.ceil(bat.capacity_wh / (bat.max_charge_w * bat.charge_efficiency) / 0.25)
    round_trip = bat.charge_efficiency * bat.discharge_efficiency
    soc = bat.floor_pct / 100 * bat.capacity_wh
    battery = np.zeros(y.n)
    for i in range(y.n):
        window = y.import_price[i:min(y.known_end[i], y.n)]
        cheap = np.partition(window, min(n_cheap, len(window)) - 1)[:n_cheap]
        price = y.import_price[i]
        charge = price <= cheap.max() and window.max() * round_trip - price > PEERS_SPREAD_EUR_MWH
        action = "charge" if charge else "self_consumption"
        battery[i], soc = step(action, bat.max_charge_w, y.load_w[i], y.pv_w[i], soc, bat)
    return Run(bill(y, y.load_w - y.pv_w - battery), battery, [], {})


def run_ours(
    y: Year, bat: Battery, rules: Rules, tariff: Tariff, with_forecast: bool, log_every: int,
    price_forecasts: dict[date, dict[int, float]] | None = None,
    forecast_slots: int = FORECAST_SLOTS,
    gate: ForcingGate | None = None,
) -> Run:
    """Our planner re-planning every slot; with a ``gate``, forcing setpoints pass the forcing
    gate, which learns the one-slot-ahead net-load error and, from each local day's saving
    against the self-consumption counterfactual (its own SoC carried day to day, as accounting
    settles it), its risk multiplier."""
    solver = Solver()
    timing_solver = Solver()
    zone = ZoneInfo(TZ)
    # cold start as configured on the device: the yearly consumption the homeowner entered
    # (--annual-load, or the household's own as measured)
    configured_kwh = y.house.annual_load_kwh or annual_kwh(y.load_w / 1000.0)
    zone_profile = standard_profile_w(y.ts[: y.n + HORIZON], configured_kwh, TZ)
    clearsky = clear_sky(y.ts[: y.n + HORIZON], y.house.lat, y.house.lon, y.house.tilt_deg, y.house.azimuth_deg)
    load_hist = np.r_[y.load_w, np.full(HORIZON, np.nan)]
    pv_hist = np.r_[y.pv_w, np.full(HORIZON, np.nan)]
    soc = bat.floor_pct / 100 * bat.capacity_wh
    battery = np.zeros(y.n)
    solve_ms: list[float] = []
    solve_cpu_ms: list[float] = []
    load_err = pv_err = price_err = 0.0
    err_n = price_n = 0
    sc_cost = _slot_costs(y, _sc_run(y, bat).battery_w)
    sc_soc_wh = simulate_self_consumption(y.load_w, y.pv_w, bat.floor_pct, bat)[1] / 100 * bat.capacity_wh
    held_before = 0.0  # Wh stored beyond the counterfactual's at the last day's end
    days: deque[float] = deque(maxlen=FEEDBACK_DAYS)
    day_ends = set(np.flatnonzero(np.diff(_local_days(y.ts[: y.n])) != 0).tolist())  # last slot of each day
    day_saving = 0.0
    pinball_sum = dict.fromkeys(QUANTILES, 0.0)
    inside = 0.0
    started = time.perf_counter()
    for i in range(y.n):
        end = int(y.known_end[i]) if not with_forecast else max(int(y.known_end[i]), i + forecast_slots)
        horizon = min(max(end - i, 1), HORIZON)
        fallback = zone_profile[i:i + horizon]
        if i < WEEK:  # no week of history: the standard profile at the level metered so far
            fallback = fallback * cold_start_scale(load_hist[max(i - WEEK, 0):i], zone_profile[max(i - WEEK, 0):i])
        load_f = forecast_load(load_hist, i, horizon, fallback)
        pv_f = forecast_pv(pv_hist, clearsky, i, horizon, y.house.kwp * 1000)
        idx = y.first + i + np.arange(horizon)
        spot = y.spot[idx].copy()
        known = (np.arange(horizon) < (int(y.known_end[i]) - i)) & np.isfinite(spot)
        if not known.all():
            spot[~known] = fallback_price_forecast(y.spot, y.first + int(y.known_end[i]), idx[~known])
            if price_forecasts is not None:
                local = datetime.fromtimestamp(int(y.ts[i]), UTC).astimezone(zone)
                made = local.date() - timedelta(days=0 if local.hour >= PUBLISH_HOUR else 1)
                fc = price_forecasts.get(made, {})
                spot[~known] = [fc.get(int(t), v) for t, v in zip(y.ts[i:i + horizon][~known], spot[~known], strict=True)]
            truth = y.spot[idx[~known]]
            ok = np.isfinite(truth)
            price_err += float(np.abs(spot[~known][ok] - truth[ok]).sum())
            price_n += int(ok.sum())
        ts = y.ts[i:i + horizon]
        inputs = Inputs(ts, tariff.import_price(ts, spot), tariff.export_price(ts, spot), load_f, pv_f,
                        soc / bat.capacity_wh * 100)
        result = plan(inputs, bat, rules, solver=solver, gate=gate)
        if with_forecast and i % TIMING_EVERY == 0:
            timed = _timed_full_plan(y, i, bat, rules, tariff, load_hist, pv_hist, zone_profile, clearsky,
                                     price_forecasts, soc, timing_solver, copy.deepcopy(gate))
            solve_ms.append(timed.solve_ms)
            solve_cpu_ms.append(timed.solve_cpu_ms)
        sp = result.setpoints[0]
        battery[i], soc = step(sp.action, sp.power_w, y.load_w[i], y.pv_w[i], soc, bat)
        if gate is not None:
            gate.observe_slot(float(load_f[0]), float(pv_f[0]), float(y.load_w[i]), float(y.pv_w[i]))
            day_saving += float(sc_cost[i]) - bill_slot(y, i, float(y.load_w[i] - y.pv_w[i] - battery[i]))
            if i in day_ends:
                held = soc - float(sc_soc_wh[i])
                day = slice(max(i + 1 - DAY, 0), i + 1)
                value = float(np.mean(y.import_price[day])) * bat.discharge_efficiency
                days.append(day_saving + (held - held_before) / 1e6 * value)
                held_before = held
                gate.replay_days(list(days))  # as the device: the last week's settled days
                day_saving = 0.0
        if i % 4 == 0 and i + horizon <= y.n:
            load_err += float(np.abs(load_f - y.load_w[i:i + horizon]).mean())
            quantiles = load_quantiles(load_hist, i, horizon, fallback)
            for q, qf in zip(QUANTILES, quantiles, strict=True):
                pinball_sum[q] += pinball(y.load_w[i:i + horizon], qf, q)
            inside += float(np.mean((y.load_w[i:i + horizon] >= quantiles[0]) & (y.load_w[i:i + horizon] <= quantiles[-1])))
            pv_err += float(np.abs(pv_f - y.pv_w[i:i + horizon]).mean())
            err_n += 1
        if log_every and i % log_every == 0 and i:
            rate = i / (time.perf_counter() - started)
            print(f"  {'forecast' if with_forecast else 'known'}: slot {i}/{y.n}, {rate:.0f} slots/s", file=sys.stderr)
    extra = {k: float(v) for k, v in (gate.to_json() if gate is not None else {}).items()}
    extra |= {
        "load_mae_w": load_err / max(err_n, 1),
        "load_pinball_w": sum(pinball_sum.values()) / len(QUANTILES) / max(err_n, 1),
        **{f"load_pinball_q{round(q * 100)}_w": v / max(err_n, 1) for q, v in pinball_sum.items()},
        "load_q10_q90_coverage": inside / max(err_n, 1),
        "pv_mae_w": pv_err / max(err_n, 1),
        "price_mae_eur_mwh": price_err / max(price_n, 1),
    }
    return Run(bill(y, y.load_w - y.pv_w - battery), battery, solve_ms, extra, solve_cpu_ms)


def _timed_full_plan(
    y: Year, i: int, bat: Battery, rules: Rules, tariff: Tariff, load_hist: FloatArray, pv_hist: FloatArray,
    zone_profile: FloatArray, clearsky: FloatArray, price_forecasts: dict[date, dict[int, float]] | None,
    soc: float, solver: Solver, gate: ForcingGate | None,
) -> Plan:
    """A full 192-slot plan at slot ``i`` (known prices, then the forecast), for its solve times."""
    idx = y.first + i + np.arange(HORIZON)
    spot = y.spot[idx].copy()
    known = (np.arange(HORIZON) < int(y.known_end[i]) - i) & np.isfinite(spot)
    spot[~known] = fallback_price_forecast(y.spot, y.first + int(y.known_end[i]), idx[~known])
    if price_forecasts is not None:
        local = datetime.fromtimestamp(int(y.ts[i]), UTC).astimezone(ZoneInfo(TZ))
        fc = price_forecasts.get(local.date() - timedelta(days=0 if local.hour >= PUBLISH_HOUR else 1), {})
        spot[~known] = [fc.get(int(t), v) for t, v in zip(y.ts[i:i + HORIZON][~known], spot[~known], strict=True)]
    ts = y.ts[i:i + HORIZON]
    inputs = Inputs(ts, tariff.import_price(ts, spot), tariff.export_price(ts, spot),
                    forecast_load(load_hist, i, HORIZON, zone_profile[i:i + HORIZON]),
                    forecast_pv(pv_hist, clearsky, i, HORIZON, y.house.kwp * 1000), soc / bat.capacity_wh * 100)
    return plan(inputs, bat, rules, solver=solver, gate=gate)


def run_perfect(y: Year, bat: Battery, rules: Rules) -> Run:
    inputs = Inputs(y.ts[: y.n], y.import_price, y.export_price, y.load_w, y.pv_w, bat.floor_pct)
    result = plan(inputs, bat, rules)
    battery = result.discharge_w - result.charge_w
    return Run(bill(y, y.load_w - y.pv_w - battery), battery, [], {"solve_s": result.solve_ms / 1000})


def cycles(battery_w: FloatArray, bat: Battery) -> float:
    discharged_wh = float(np.maximum(battery_w, 0).sum() * 0.25 / bat.discharge_efficiency)
    return discharged_wh / bat.capacity_wh


OPTIONAL = ("peers_rule", "ours_known_prices", "ours_forecast")


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prices", type=Path, action="append", required=True,
                    help="day-ahead CSV (timestamp_utc, price_eur_mwh), hourly or quarter-hourly; repeatable")
    ap.add_argument("--exog", type=Path, action="append", default=[],
                    help="exogenous forecasts CSV (for the LiteRT price model); repeatable")
    ap.add_argument("--household", type=Path, action="append", default=[],
                    help="15-min CSV (timestamp_utc, load_kw, pv_kw_per_kwp); repeatable")
    ap.add_argument("--households", type=Path,
                    help="a folder: every *.csv in it is a household (with --household: those too)")
    ap.add_argument("--household-shift-days", type=int, default=0,
                    help="move the household file by N days (364: 2024's weekdays and clock changes onto 2025)")
    ap.add_argument("--price-year", type=int,
                    help="meet the prices of this year: the household's days move to the same ISO week and "
                         "weekday of it (--year/--start/--end stay the household's days)")
    period = ap.add_mutually_exclusive_group(required=True)
    period.add_argument("--year", type=int, help="local calendar year to simulate")
    period.add_argument("--start", type=date.fromisoformat, help="first local day to simulate (with --end)")
    ap.add_argument("--end", type=date.fromisoformat, help="last local day to simulate (inclusive)")
    ap.add_argument("--days", type=int, default=0, help="only the first N days (quick runs)")
    ap.add_argument("--kwp", type=float, default=PV_KWP, help="PV peak power, kWp (the file's PV is per kWp)")
    ap.add_argument("--annual-load", type=_annual_load, default=None,
                    help="scale the household's load to this many kWh a year, or 'measured' (default: as is)")
    ap.add_argument("--lat", type=float, default=LAT, help="PV plant latitude (the PV forecast's clear sky)")
    ap.add_argument("--lon", type=float, default=LON, help="PV plant longitude")
    ap.add_argument("--tilt", type=_degrees(0, 90), default=0.0,
                    help="PV modules' tilt, degrees from horizontal, for the forecast's clear sky (0: flat)")
    ap.add_argument("--azimuth", type=_degrees(0, 360), default=180.0,
                    help="direction the PV modules face, degrees from north clockwise (180: south)")
    ap.add_argument("--strategies", default=",".join(OPTIONAL),
                    help=f"which of {', '.join(OPTIONAL)} to run (no battery, self-consumption and perfect always run)")
    ap.add_argument("--forcing-gate", choices=("on", "off"), default="on",
                    help="ours_forecast: force only where the gain beats the forecast error's risk (device.plan.robust)")
    ap.add_argument("--degradation", type=float, default=20.0, help="planner wear cost, EUR/MWh cycled")
    ap.add_argument("--progress", type=int, default=0, help="log progress every N slots to stderr")
    ap.add_argument("--price-forecast", choices=("device", "naive"), default="device",
                    help="device: the on-device forecaster (device.forecast.price); naive: the fallback here")
    ap.add_argument("--lear-windows", default="56,84", help="calibration windows (days) of the linear model")
    ap.add_argument("--price-forecasts-cache", type=Path,
                    help="JSON file: read the period's price forecasts from it when an earlier run with the "
                         "same prices, exogenous files, windows, model and days wrote it, else write them to it")
    ap.add_argument("--price-model", type=Path,
                    help="a .tflite price model; default: the newest shipped one trained before the period")
    args = ap.parse_args(argv)
    if args.year is not None:
        start, end = date(args.year, 1, 1), date(args.year, 12, 31)
    elif args.end is None or args.end < args.start:
        ap.error(f"--start {args.start} needs --end on or after it (got {args.end})")
    else:
        start, end = args.start, args.end
    strategies = [s for s in args.strategies.split(",") if s]
    unknown = sorted(set(strategies) - set(OPTIONAL))
    if unknown:
        ap.error(f"--strategies: unknown {', '.join(unknown)}; allowed: {', '.join(OPTIONAL)}")
    households = list(args.household)
    if args.households is not None:
        found = sorted(args.households.glob("*.csv"))
        if not found:
            ap.error(f"--households {args.households}: no *.csv files in it")
        households += found
    if not households:
        ap.error("give --household FILE or --households DIR")
    shift = args.household_shift_days
    if args.price_year is not None:
        if shift:
            ap.error("--price-year and --household-shift-days both move the household: give one")
        shift = price_year_shift(start, args.price_year)
    start, end = start + timedelta(days=shift), end + timedelta(days=shift)

    tariff = Tariff(TariffSettings(), TZ)
    house = House(args.kwp, args.annual_load, args.lat, args.lon, args.tilt, args.azimuth)
    forecasts: dict[date, dict[int, float]] | None = None
    forecast_name = "naive: mean of the same slot 1 day (newest known) and 7 days before"
    summaries: list[dict[str, object]] = []
    for path in households:
        y = read_period(args.prices, path, start, end, tariff, shift, house)
        if args.days:
            y.n = min(y.n, args.days * DAY)
            for name in ("load_w", "pv_w", "import_price", "export_price", "known_end"):
                setattr(y, name, getattr(y, name)[: y.n])
        if args.price_forecast == "device" and forecasts is None:
            t0 = time.perf_counter()
            windows = tuple(int(w) for w in args.lear_windows.split(","))
            forecasts, forecast_name = cached_price_forecasts(
                args.price_forecasts_cache, y, args.prices, args.exog, windows, args.price_model)
            print(f"price forecasts: {forecast_name} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        summary = run_household(y, args, strategies, tariff, forecasts)
        summary.update(year=args.year, start=str(start), end=str(end), price_forecast=forecast_name,
                       household=f"{path.name}, shifted by {shift} days", price_year=args.price_year,
                       price_resolution_minutes=sorted({resolution_for(d) // 60 for d in _days(start, end)}))
        _print_household(summary, house)
        summaries.append(summary)
    if len(summaries) == 1:
        print(json.dumps(summaries[0]))
        return summaries[0]
    result = across(summaries)
    _print_across(result)
    print(json.dumps(result))
    return result


def _annual_load(text: str) -> float | None:
    if text == "measured":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"got {text!r}: give kWh a year above 0, or 'measured'")
    return value


def _degrees(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"got {text!r}: give degrees from {low:g} to {high:g}")
        return value
    return parse


def run_household(
    y: Year, args: argparse.Namespace, strategies: list[str], tariff: Tariff,
    forecasts: dict[date, dict[int, float]] | None,
) -> dict[str, object]:
    """Every strategy on one household's period; the summary (costs, shares, savings, errors)."""
    bat = Battery(capacity_wh=10_000, min_soc_pct=0, max_soc_pct=100, reserve_pct=0,
                  max_charge_w=5000, max_discharge_w=5000, charge_efficiency=0.95, discharge_efficiency=0.95)
    rules = Rules(degradation_eur_mwh=args.degradation)
    plans: dict[str, Callable[[], Run]] = {
        "no_battery": lambda: Run(bill(y, y.load_w - y.pv_w), np.zeros(y.n), [], {}),
        "self_consumption": lambda: _sc_run(y, bat),
        "peers_rule": lambda: run_peers(y, bat),
        "ours_known_prices": lambda: run_ours(y, bat, rules, tariff, False, args.progress),
        "ours_forecast": lambda: run_ours(y, bat, rules, tariff, True, args.progress, forecasts,
                                          gate=_gate(y) if args.forcing_gate == "on" else None),
        "perfect": lambda: run_perfect(y, bat, rules),
    }
    runs: dict[str, Run] = {}
    seconds: dict[str, float] = {}
    for name, fn in plans.items():
        if name in OPTIONAL and name not in strategies:
            continue
        t0 = time.perf_counter()
        runs[name] = fn()
        seconds[name] = time.perf_counter() - t0
        print(f"{name:18s} {runs[name].cost:9.2f} EUR  ({seconds[name]:.1f} s)", file=sys.stderr)
    base, best, sc = runs["no_battery"].cost, runs["perfect"].cost, runs["self_consumption"].cost
    solve = np.array(runs["ours_forecast"].solve_ms if "ours_forecast" in runs else [])
    cpu = np.array(runs["ours_forecast"].solve_cpu_ms if "ours_forecast" in runs else [])
    return {
        "slots": y.n,
        "cost_eur": {k: round(r.cost, 2) for k, r in runs.items()},
        "captured_share": {k: round((base - r.cost) / (base - best), 4) for k, r in runs.items()},
        "saving_vs_self_consumption_eur": {k: round(sc - r.cost, 2) for k, r in runs.items()},
        "battery_cycles": {k: round(cycles(r.battery_w, bat), 1) for k, r in runs.items()},
        "plan_solve_ms_p50": round(float(np.percentile(solve, 50)), 2) if solve.size else None,
        "plan_solve_ms_p99": round(float(np.percentile(solve, 99)), 2) if solve.size else None,
        "plan_solve_cpu_ms_p50": round(float(np.percentile(cpu, 50)), 2) if cpu.size else None,
        "plan_solve_cpu_ms_p99": round(float(np.percentile(cpu, 99)), 2) if cpu.size else None,
        "plan_slots": HORIZON,
        "plan_solves_timed": int(solve.size),
        "forecast_errors": {k: round(v, 2) for k, v in runs["ours_forecast"].extra.items()}
        if "ours_forecast" in runs else {},
        "mean_load_w": round(float(y.load_w.mean()), 1),
        "mean_pv_w": round(float(y.pv_w.mean()), 1),
        "perfect_solve_s": round(runs["perfect"].extra["solve_s"], 1),
        "run_s": {k: round(v, 1) for k, v in seconds.items()},
    }


def _gate(y: Year) -> ForcingGate:
    """The gate as a device configured with this home's yearly consumption starts it."""
    return ForcingGate(prior_load_w=(y.house.annual_load_kwh or annual_kwh(y.load_w / 1000.0)) * 1000 / 8760)


def across(summaries: list[dict[str, object]]) -> dict[str, object]:
    """Several households: each one's summary, and per strategy the worst and the median captured
    share and saving against self-consumption."""
    def per(key: str) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for s in summaries:
            for k, v in s[key].items():  # type: ignore[attr-defined]
                out.setdefault(k, []).append(float(v))
        return out
    shares, savings = per("captured_share"), per("saving_vs_self_consumption_eur")
    p99 = [float(s["plan_solve_ms_p99"]) for s in summaries if s["plan_solve_ms_p99"] is not None]  # type: ignore[arg-type]
    cpu99 = [float(s["plan_solve_cpu_ms_p99"]) for s in summaries if s["plan_solve_cpu_ms_p99"] is not None]  # type: ignore[arg-type]
    return {
        "households": summaries,
        "worst": {"captured_share": {k: min(v) for k, v in shares.items()},
                  "saving_vs_self_consumption_eur": {k: min(v) for k, v in savings.items()}},
        "median": {"captured_share": {k: round(float(np.median(v)), 4) for k, v in shares.items()},
                   "saving_vs_self_consumption_eur": {k: round(float(np.median(v)), 2) for k, v in savings.items()}},
        "plan_solve_ms_p99_max": max(p99) if p99 else None,
        "plan_solve_cpu_ms_p99_max": max(cpu99) if cpu99 else None,
    }


def _print_household(summary: dict[str, object], house: House) -> None:
    shares, savings = summary["captured_share"], summary["saving_vs_self_consumption_eur"]
    print()
    print(f"{summary['start']} → {summary['end']}: {summary['slots']} slots, 10 kWh / 5 kW battery, "
          f"{house.kwp:g} kWp (tilt {house.tilt_deg:g}°, azimuth {house.azimuth_deg:g}°), German dynamic tariff, household {summary['household']}")
    for k, cost in summary["cost_eur"].items():  # type: ignore[attr-defined]
        print(f"  {k:18s} {cost:9.2f} EUR   captured {shares[k]:6.1%}"  # type: ignore[index]
              f"   vs self-consumption {savings[k]:+8.2f} EUR"  # type: ignore[index]
              f"   cycles {summary['battery_cycles'][k]}")  # type: ignore[index]
    print(f"  plan solve (192 slots): CPU p50 {summary['plan_solve_cpu_ms_p50']} ms, p99 {summary['plan_solve_cpu_ms_p99']} ms; "
          f"wall clock p50 {summary['plan_solve_ms_p50']} ms, p99 {summary['plan_solve_ms_p99']} ms")
    print(f"  forecast errors (over each plan's horizon, ours_forecast): {summary['forecast_errors']}")


def _print_across(result: dict[str, object]) -> None:
    print()
    print("  household                                   " + "  ".join(f"{k[:14]:>14s}" for k in OPTIONAL))
    for s in result["households"]:  # type: ignore[attr-defined]
        cells = [f"{s['captured_share'].get(k, math.nan):6.3f} {s['saving_vs_self_consumption_eur'].get(k, math.nan):+7.2f}"
                 for k in OPTIONAL]
        print(f"  {str(s['household'])[:42]:42s}  " + "  ".join(cells))
    for label in ("worst", "median"):
        row = result[label]
        cells = [f"{row['captured_share'].get(k, math.nan):6.3f} "  # type: ignore[index]
                 f"{row['saving_vs_self_consumption_eur'].get(k, math.nan):+7.2f}" for k in OPTIONAL]  # type: ignore[index]
        print(f"  {label:42s}  " + "  ".join(cells))
    print("  (captured share, EUR saved against self-consumption)")


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=k) for k in range((end - start).days + 1)]


def _sc_run(y: Year, bat: Battery) -> Run:
    battery, _ = simulate_self_consumption(y.load_w, y.pv_w, bat.floor_pct, bat)
    return Run(bill(y, y.load_w - y.pv_w - battery), battery, [], {})


if __name__ == "__main__":
    main()
