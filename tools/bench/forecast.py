"""Walk-forward backtest of the price forecast.

    python -m tools.bench.forecast --prices CSV [--prices CSV ...] [--exog CSV ...] --start DATE --end DATE \
        [--model FILE]

For each delivery day D+1 in [start, end] the forecast is made as on day D at 11:00
Europe/Berlin: prices up to D, the exogenous day-ahead series (load, solar, wind, EXAA) for
D+1, nothing later. The linear model is recalibrated each day on the history before it, the
network runs with frozen weights. Several price files are joined in time order (an hourly
history followed by quarter-hours).

Each day is scored at the resolution its prices cleared in, which the files tell: hourly days on
their 24 local hours (the clock-change days' 23/25 hours mapped as in
:mod:`device.forecast.daily`), quarter-hour days on every quarter-hour (92 on the spring day; the
autumn day's two 02:00 hours averaged quarter by quarter, so 96), each quarter-hour forecast as
the device does it: the hourly forecast plus the intra-hour shape refitted on the quarter-hours
known at forecast time (:mod:`device.forecast.intrahour`). Baselines at the same resolution:
the day before, the week before, ``hourly_ramp``, the model's hourly forecast with the prior's
shape only (nothing learned from the quarter-hours seen), and ``hourly_flat``, spread flat
over the quarter-hours (the gain from the intra-hour shape).

With ``--lead-days 2`` the day after is scored instead (what the 48-hour plan runs on): made on
D at 11:00, recursively through a D+1 forecast, with no inputs for D+2; "day_before" is then
the last day known at forecast time.

Prints a human summary, then one JSON object as the last line: MAE, RMSE, sMAPE and rMAE (MAE
over the weekly-naive MAE on the same days, as epftoolbox) for the model, its two halves, the
fallback and the naive baselines, plus ``model_bytes`` and timings (p50 per delivery day):
``inference_ms_p50`` = network inputs + LiteRT, ``recalibration_ms_p50`` = the linear model's
daily fit, ``forecast_day_ms_p50`` = both plus blending.
"""

from __future__ import annotations

import os

# One BLAS thread: the daily refits are many small problems, and a multi-threaded OpenBLAS on a
# shared 2-core machine (or a Pi running the app) spends more time contending than computing.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np

from device.forecast import fallback, lear
from device.forecast.daily import has_quarters
from device.forecast.history import MarketHistory, read_csv
from device.forecast.intrahour import IntraHourModel
from device.forecast.metrics import summary
from device.forecast.price import PriceForecaster

SERIES = ("model", "network", "linear", "fallback", "hourly_ramp", "hourly_flat", "day_before", "week_before")
QUARTER_ONLY = ("hourly_ramp", "hourly_flat")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prices", type=Path, action="append", required=True,
                        help="price file, hourly or quarter-hourly (repeatable: joined in time order)")
    parser.add_argument("--exog", type=Path, action="append", default=[], help="exogenous inputs (repeatable)")
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--end", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--model", type=Path, help="model file (.tflite); none: linear model only")
    parser.add_argument("--tz", default="Europe/Berlin")
    parser.add_argument("--lead-days", type=int, choices=(1, 2), default=1,
                        help="2: forecast D+2 (made on D at 11:00 via a D+1 forecast, no inputs for D+2)")
    parser.add_argument("--windows", default=",".join(map(str, lear.DEFAULT_WINDOWS)),
                        help="linear model calibration windows in days")
    args = parser.parse_args(argv)

    history = read_csv(args.prices, args.exog or None, args.tz)
    windows = tuple(int(w) for w in args.windows.split(","))
    forecaster = PriceForecaster(args.model, args.tz, windows)
    first, last = history.row(args.start), history.row(args.end)
    refusal = period_refusal(history, first, last)
    if refusal:
        sys.exit(f"--start/--end: {args.start}..{args.end}: {refusal}")
    quarter_days = has_quarters(history.quarters) if history.quarters is not None else np.zeros(len(history.days), bool)

    series: dict[str, list[np.ndarray]] = {k: [] for k in SERIES}
    actual, methods, minutes = [], [], []
    net_ms, lin_ms, day_ms = [], [], []
    lead = args.lead_days
    for t in range(first, last + 1):
        known = history.as_of(history.day(t - lead + 1))
        if lead == 2:  # made on D-1: D's prices and inputs unknown; D+1 forecast without inputs
            known = known.extended(1)
        naive = fallback.naive_blend(known.prices, t, (t + known.first_weekday) % 7)
        if lead == 2:
            known.prices[t - 1] = forecaster.forecast_day(known, t - 1).values
        result = forecaster.forecast_day(known, t)
        methods.append(result.method)
        net_ms.append(result.network_ms)
        lin_ms.append(result.linear_ms)
        day_ms.append(result.network_ms + result.linear_ms)
        nan = np.full(24, np.nan)
        hourly = {
            "model": result.values, "network": nan if result.network is None else result.network,
            "linear": nan if result.linear is None else result.linear,
            "fallback": naive if naive is not None else nan,
        }
        before = known.prices[t - 1, -1]
        if quarter_days[t]:
            assert history.quarters is not None
            minutes.append(15)
            shape = forecaster.intrahour_for(known, t - lead + 1)
            cells = history.quarters[t]
            scored = np.isfinite(cells)
            actual.append(cells[scored])
            for name, values in hourly.items():
                series[name].append(shaped(shape, values, before)[scored])
            series["hourly_ramp"].append(shaped(forecaster.intrahour_prior, result.values, before)[scored])
            series["hourly_flat"].append(np.repeat(result.values[:, None], 4, axis=1)[scored])
            series["day_before"].append(quarter_cells(history, t - lead)[scored])
            series["week_before"].append(quarter_cells(history, t - 7)[scored])
        else:
            minutes.append(60)
            actual.append(history.prices[t])
            for name, values in hourly.items():
                series[name].append(values)
            series["hourly_ramp"].append(result.values)
            series["hourly_flat"].append(result.values)
            series["day_before"].append(history.prices[t - lead])  # the last day known then
            series["week_before"].append(history.prices[t - 7])

    a = np.concatenate(actual)
    weekly = np.concatenate(series["week_before"])
    figures = {}
    for name, days in series.items():
        v = np.concatenate(days)
        if np.isfinite(v).all() and (name not in QUARTER_ONLY or 15 in minutes):
            figures[name] = summary(a, v, weekly)
    resolutions = sorted(set(minutes))
    out = {
        "start": str(args.start), "end": str(args.end), "days": int(last - first + 1), "lead_days": lead,
        "resolution_minutes": resolutions[0] if len(resolutions) == 1 else resolutions,
        "slots": len(a),
        "exog": sorted(history.exog),
        "model_file": None if args.model is None else str(args.model),
        "model_bytes": forecaster.network.bytes if forecaster.network else 0,
        "methods": {m: methods.count(m) for m in sorted(set(methods))},
        **figures,
        "inference_ms_p50": round(float(np.median(net_ms)), 3),
        "recalibration_ms_p50": round(float(np.median(lin_ms)), 3),
        "forecast_day_ms_p50": round(float(np.median(day_ms)), 3),
    }
    print(f"Backtest {args.start} → {args.end} ({out['days']} days, {out['slots']} slots of "
          f"{out['resolution_minutes']} min), model {out['model_file']} ({out['model_bytes']} bytes), "
          f"methods {out['methods']}")
    print(f"{'':12} {'MAE':>8} {'RMSE':>8} {'sMAPE%':>8} {'rMAE':>7}")
    for name, f in figures.items():
        print(f"{name:12} {f['mae']:8.3f} {f['rmse']:8.3f} {f['smape']:8.2f} {f['rmae']:7.3f}")
    print(f"p50 per day: network {out['inference_ms_p50']} ms, linear recalibration "
          f"{out['recalibration_ms_p50']} ms, total {out['forecast_day_ms_p50']} ms")
    print(json.dumps(out))


def period_refusal(history: MarketHistory, first: int, last: int) -> str | None:
    """Why ``[first, last]`` cannot be backtested (``None`` if it can): every day must have all its
    prices and a week of history before it."""
    if first > last:
        return "the start is after the end"
    if first < 8 or last >= len(history.days):
        return f"outside the prices ({history.day(8)}..{history.day(len(history.days) - 1)} can be backtested)"
    complete = np.isfinite(history.prices).all(axis=1)
    missing = np.flatnonzero(~complete[first : last + 1])
    if len(missing):
        end = history.last_complete_price_row()
        gaps = " with gaps" if not complete[: end + 1].all() else ""
        return (f"{len(missing)} day(s) without complete prices, the first {history.day(first + int(missing[0]))} "
                f"(the prices cover {history.day(0)}..{history.day(end)}{gaps})")
    return None


def shaped(shape: IntraHourModel, hourly: np.ndarray, before: float) -> np.ndarray:
    """An hourly day forecast as quarter-hours (NaN stays NaN: that half did not run)."""
    if not np.isfinite(hourly).all():
        return np.full((24, 4), np.nan)
    return shape.quarters(hourly, before)


def quarter_cells(history: MarketHistory, row: int) -> np.ndarray:
    """Row ``row``'s quarter-hour prices (24, 4); an hourly day repeats each hour four times."""
    assert history.quarters is not None
    cells = history.quarters[row].copy()
    missing = ~np.isfinite(cells)
    cells[missing] = np.repeat(history.prices[row][:, None], 4, axis=1)[missing]
    return cells


if __name__ == "__main__":
    main()
