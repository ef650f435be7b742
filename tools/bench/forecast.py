"""Walk-forward backtest of the price forecast.

    python -m tools.bench.forecast --prices CSV [--exog CSV] --start DATE --end DATE [--model FILE]

For each delivery day D+1 in [start, end] the forecast is made as on day D at 11:00
Europe/Berlin: prices up to D, the exogenous day-ahead series (load, solar, wind, EXAA) for
D+1, nothing later. The linear model is recalibrated each day on the history before it, the
network runs with frozen weights. Errors are computed on the 24 local hours of each day (the
clock-change days' 23/25 hours are mapped as in :mod:`device.forecast.daily`).

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
from device.forecast.history import read_csv
from device.forecast.metrics import summary
from device.forecast.price import PriceForecaster


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prices", type=Path, required=True)
    parser.add_argument("--exog", type=Path)
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--end", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--model", type=Path, help="model file (.tflite); none: linear model only")
    parser.add_argument("--tz", default="Europe/Berlin")
    parser.add_argument("--lead-days", type=int, choices=(1, 2), default=1,
                        help="2: forecast D+2 (made on D at 11:00 via a D+1 forecast, no inputs for D+2)")
    parser.add_argument("--windows", default=",".join(map(str, lear.DEFAULT_WINDOWS)),
                        help="linear model calibration windows in days")
    args = parser.parse_args(argv)

    history = read_csv(args.prices, args.exog, args.tz)
    windows = tuple(int(w) for w in args.windows.split(","))
    forecaster = PriceForecaster(args.model, args.tz, windows)
    first, last = history.row(args.start), history.row(args.end)
    if first < 8 or last >= len(history.days) or first > last:
        sys.exit(f"--start/--end: {args.start}..{args.end} must lie within "
                 f"{history.day(7)}..{history.day(len(history.days) - 1)}")

    series: dict[str, list[np.ndarray]] = {k: [] for k in
                                           ("model", "network", "linear", "fallback", "day_before", "week_before")}
    actual, methods = [], []
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
        actual.append(history.prices[t])
        series["model"].append(result.values)
        nan = np.full(24, np.nan)
        series["network"].append(nan if result.network is None else result.network)
        series["linear"].append(nan if result.linear is None else result.linear)
        series["fallback"].append(naive if naive is not None else np.full(24, np.nan))
        series["day_before"].append(history.prices[t - lead])  # the last day known then
        series["week_before"].append(history.prices[t - 7])

    a = np.array(actual)
    weekly = np.array(series["week_before"])
    figures = {}
    for name, values in series.items():
        v = np.array(values)
        if np.isfinite(v).all():
            figures[name] = summary(a, v, weekly)
    out = {
        "start": str(args.start), "end": str(args.end), "days": int(last - first + 1), "lead_days": lead,
        "model_file": None if args.model is None else str(args.model),
        "model_bytes": forecaster.network.bytes if forecaster.network else 0,
        "methods": {m: methods.count(m) for m in sorted(set(methods))},
        **figures,
        "inference_ms_p50": round(float(np.median(net_ms)), 3),
        "recalibration_ms_p50": round(float(np.median(lin_ms)), 3),
        "forecast_day_ms_p50": round(float(np.median(day_ms)), 3),
    }
    print(f"Backtest {args.start} → {args.end} ({out['days']} days), model {out['model_file']} "
          f"({out['model_bytes']} bytes), methods {out['methods']}")
    print(f"{'':12} {'MAE':>8} {'RMSE':>8} {'sMAPE%':>8} {'rMAE':>7}")
    for name, f in figures.items():
        print(f"{name:12} {f['mae']:8.3f} {f['rmse']:8.3f} {f['smape']:8.2f} {f['rmae']:7.3f}")
    print(f"p50 per day: network {out['inference_ms_p50']} ms, linear recalibration "
          f"{out['recalibration_ms_p50']} ms, total {out['forecast_day_ms_p50']} ms")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
