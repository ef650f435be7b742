from __future__ import annotations

import numpy as np

from device.forecast.features import AsinhScaler
from device.forecast.lear import ridge_gcv
from device.forecast.metrics import mae, rmae, smape, summary


def test_ridge_recovers_a_linear_relation_and_picks_a_small_penalty() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 10))
    w = rng.normal(size=(10, 3))
    y = x @ w + 0.01 * rng.normal(size=(400, 3))
    x_new = rng.normal(size=(5, 10))
    assert np.abs(ridge_gcv(x, y, x_new) - x_new @ w).max() < 0.1


def test_asinh_scaler_round_trips_spikes_and_negative_prices() -> None:
    prices = np.array([-500.0, -10.0, 0.0, 40.0, 80.0, 936.28])
    scale = AsinhScaler.fit(prices)
    assert np.allclose(scale.inverse(scale.transform(prices)), prices)
    flat = AsinhScaler.fit(np.full(10, 50.0))  # a flat window must not divide by zero
    assert np.isfinite(flat.transform(np.array([60.0]))).all()


def test_metrics_as_epftoolbox_defines_them() -> None:
    a = np.array([10.0, 20.0, 0.0])
    f = np.array([12.0, 18.0, 0.0])
    assert mae(a, f) == 4 / 3
    assert smape(a, f) == 100 * (4 / 22 + 4 / 38 + 0) / 3  # 0/0 counts as 0
    assert rmae(a, f, np.array([20.0, 10.0, 0.0])) == (4 / 3) / (20 / 3)
    assert set(summary(a, f, a)) == {"mae", "rmse", "smape", "rmae"}
