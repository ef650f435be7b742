"""Forecast error measures: point errors as the epftoolbox benchmark defines them, and the quantile (pinball) loss."""

from __future__ import annotations

import numpy as np


def mae(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean(np.abs(actual - forecast)))


def rmse(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.sqrt(np.mean((actual - forecast) ** 2)))


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE in percent: mean of 2|a - f| / (|a| + |f|); 0/0 counts as 0."""
    den = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(2 * np.abs(actual - forecast), den, out=np.zeros_like(den, dtype=float), where=den > 0)
    return float(100 * np.mean(ratio))


def rmae(actual: np.ndarray, forecast: np.ndarray, weekly_naive: np.ndarray) -> float:
    """MAE relative to the weekly naive forecast (p[t - 168 h]) on the same period (NaN if that is perfect)."""
    naive = mae(actual, weekly_naive)
    return mae(actual, forecast) / naive if naive > 0 else float("nan")


def pinball(actual: np.ndarray, quantile_forecast: np.ndarray, q: float) -> float:
    """Quantile (pinball) loss of the ``q`` quantile forecast: mean of max(q·e, (q − 1)·e), e = actual − forecast."""
    e = actual - quantile_forecast
    return float(np.mean(np.maximum(q * e, (q - 1) * e)))


def summary(actual: np.ndarray, forecast: np.ndarray, weekly_naive: np.ndarray) -> dict[str, float]:
    a, f = np.ravel(actual), np.ravel(forecast)
    return {
        "mae": round(mae(a, f), 3),
        "rmse": round(rmse(a, f), 3),
        "smape": round(smape(a, f), 3),
        "rmae": round(rmae(a, f, np.ravel(weekly_naive)), 4),
    }
