"""The linear half of the forecaster, recalibrated on the device for every delivery day.

LEAR (Lago et al. 2021) re-estimates a regularised linear model each day on a rolling window of
past days, one model per hour, on asinh-transformed inputs, and averages the forecasts of a few
window lengths (56, 84, 1092 and 1456 days). Recalibrating every day tracks shifts in the price
level that a network with frozen weights cannot follow. We use ridge instead of LASSO so one SVD
per window gives the coefficients of all 24 hourly models and the leave-one-out error of every
penalty in closed form (generalised cross-validation): some tens of ms per window on one core,
numpy only. It uses whichever exogenous series are present at forecast time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from device.forecast.features import (
    AsinhScaler,
    FeatureSpec,
    build_blocks,
    weekday_onehot,
)
from device.forecast.history import MarketHistory

DEFAULT_WINDOWS = (56, 84, 1092, 1456)
ALPHAS = np.logspace(-1, 3.5, 19)
MIN_TRAIN_DAYS = 42  # fewer rows than this: no linear model (fallback or network only)


@dataclass(frozen=True)
class LinearForecast:
    values: np.ndarray  # (24,) EUR/MWh
    windows: tuple[int, ...]  # the window lengths that contributed


def _flat(spec: FeatureSpec, history: MarketHistory, rows: np.ndarray, groups: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    blocks = build_blocks(spec, history.prices, history.exog, rows, history.first_weekday)
    parts = [blocks.prices.reshape(len(rows), -1)] + [blocks.exog[g].reshape(len(rows), -1) for g in groups]
    return np.concatenate(parts, axis=1), weekday_onehot(blocks.weekday)


def ridge_gcv(x: np.ndarray, y: np.ndarray, x_new: np.ndarray, alphas: np.ndarray = ALPHAS) -> np.ndarray:
    """Ridge forecasts for ``x_new`` with the penalty chosen per output by leave-one-out MAE."""
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc = x - x_mean
    # SVD through the small Gram matrix: eigh of (p x p) is several times faster than an SVD
    # of the (n x p) matrix; directions with (numerically) zero variance are dropped.
    eigval, v = np.linalg.eigh(xc.T @ xc)
    keep = eigval > eigval.max() * 1e-10
    s, vt = np.sqrt(eigval[keep]), v[:, keep].T
    u = (xc @ vt.T) / s
    uty = u.T @ (y - y_mean)
    u2 = u**2
    best_err = np.full(y.shape[1], np.inf)
    best_alpha = np.zeros(y.shape[1])
    for alpha in alphas:
        shrink = s**2 / (s**2 + alpha)
        fitted = u @ (shrink[:, None] * uty)
        leverage = np.minimum(u2 @ shrink, 0.999)
        err = np.mean(np.abs((y - y_mean - fitted) / (1 - leverage)[:, None]), axis=0)
        better = err < best_err
        best_err[better], best_alpha[better] = err[better], alpha
    proj = (x_new - x_mean) @ vt.T  # (m, k)
    gain = s[None, :] / (s[None, :] ** 2 + best_alpha[:, None])  # (outputs, k)
    return y_mean + np.einsum("mk,ok,ko->mo", proj, gain, uty)


def forecast_day(
    spec: FeatureSpec,
    history: MarketHistory,
    target: int,
    groups: Sequence[str],
    windows: Sequence[int] = DEFAULT_WINDOWS,
) -> LinearForecast | None:
    """Recalibrate on the days before row ``target`` and forecast its 24 hours.

    ``history`` must hold the inputs of ``target`` (lagged prices, exogenous series of
    ``groups``). Returns ``None`` when there are too few complete past days.
    """
    longest = max(windows)
    first = max(spec.max_lag, target - longest)
    rows = np.arange(first, target)
    x, dow = _flat(spec, history, np.append(rows, target), groups)
    y = history.prices[rows]
    ok = np.isfinite(x[:-1]).all(axis=1) & np.isfinite(y).all(axis=1)
    if not np.isfinite(x[-1]).all():
        return None
    preds: list[np.ndarray] = []
    used: list[int] = []
    for window in windows:
        sel = ok & (rows >= target - window)
        if sel.sum() < MIN_TRAIN_DAYS:
            continue
        xs = AsinhScaler.fit(x[:-1][sel], axis=0)
        ys = AsinhScaler.fit(y[sel], axis=0)
        train = np.hstack([xs.transform(x[:-1][sel]), dow[:-1][sel]])
        new = np.hstack([xs.transform(x[-1:]), dow[-1:]])
        preds.append(ys.inverse(ridge_gcv(train, ys.transform(y[sel]), new)[0]))
        used.append(window)
    if not preds:
        return None
    return LinearForecast(values=np.mean(preds, axis=0), windows=tuple(used))
