from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from structlog.testing import capture_logs

from device.forecast.features import build_blocks
from device.forecast.history import MarketHistory, read_csv
from device.forecast.network import (
    Network,
    load_meta,
    network_inputs,
    recent_price_scale,
)
from device.forecast.price import PriceForecaster
from device.resources import MODELS_DIR
from device.resources import PRICE_SAMPLE as SAMPLE

MODEL = MODELS_DIR / "price_de_lu.tflite"
BERLIN = ZoneInfo("Europe/Berlin")


def sample_history(days: int, last_price_day: date) -> MarketHistory:
    """``days`` days of real DE-LU data (the shipped sample, repeated) ending the day after
    ``last_price_day``: that day has the exogenous inputs but no prices yet (as at 11:00)."""
    base = read_csv(SAMPLE, SAMPLE, "Europe/Berlin")
    n = 35
    reps = days // n + 2
    index = pd.date_range(end=pd.Timestamp(last_price_day) + pd.Timedelta(days=1), periods=days, freq="D")
    offset = (index[0] - base.days[0]).days % n
    take = (np.arange(days) + offset) % n
    prices = np.tile(base.prices[:n], (reps, 1))[take]
    prices[-1] = np.nan
    exog = {k: np.tile(v[:n], (reps, 1))[take] for k, v in base.exog.items()}
    return MarketHistory(days=index, prices=prices, exog=exog)


def test_shipped_model_runs_in_litert_with_the_right_shapes() -> None:
    assert MODEL.stat().st_size <= 2 * 1024 * 1024
    meta = load_meta(MODEL)
    net = Network(MODEL)
    history = sample_history(60, date(2025, 10, 13))
    target = np.array([len(history.days) - 1])
    blocks = build_blocks(meta.spec, history.prices, history.exog, target, history.first_weekday)
    scale = recent_price_scale(history.prices, target, meta.price_window)
    rows = network_inputs(meta, blocks, scale)
    assert rows.shape == (1, net.input_width) and rows.dtype == np.float32
    out = scale.inverse(net.run(rows))
    assert out.shape == (1, 24) and np.isfinite(out).all()
    # a sane day: within the range of the last four weeks' prices, give or take
    recent = history.prices[-29:-1]
    assert recent.min() - 50 < out.mean() < recent.max() + 50
    with pytest.raises(ValueError, match="expects"):
        net.run(rows[:, :-1])


def test_forecast_covers_48_hours_in_quarter_hours_across_the_autumn_clock_change() -> None:
    forecaster = PriceForecaster(MODEL)
    history = sample_history(120, date(2025, 10, 25))
    now = datetime(2025, 10, 25, 11, 0, tzinfo=BERLIN)
    result = forecaster.predict(history, now, horizon_h=48, resolution_s=900)
    ts = [t for t, _ in result.slots]
    assert ts[0] == int(datetime(2025, 10, 26, tzinfo=BERLIN).timestamp())  # right after the last known price
    assert np.all(np.diff(ts) == 900)
    assert len(ts) == 100 + 96  # 2025-10-26 has 25 hours
    assert ts[-1] + 900 >= now.timestamp() + 48 * 3600
    assert result.methods == {"2025-10-26": "blend", "2025-10-27": "blend"}
    assert all(np.isfinite(v) for _, v in result.slots)


def test_hourly_market_gets_hourly_slots() -> None:
    result = PriceForecaster(MODEL).predict(sample_history(120, date(2024, 3, 30)),
                                            datetime(2024, 3, 30, 11, tzinfo=BERLIN), 24, 3600)
    assert len(result.slots) == 23  # spring clock change


def test_without_a_model_the_linear_model_or_the_naive_blend_runs() -> None:
    now = datetime(2025, 10, 14, 11, tzinfo=BERLIN)
    linear = PriceForecaster(None).predict(sample_history(80, date(2025, 10, 14)), now, 24)
    assert set(linear.methods.values()) == {"linear"}
    naive = PriceForecaster(None).predict(sample_history(10, date(2025, 10, 14)), now, 24)
    assert set(naive.methods.values()) == {"fallback"}
    assert len(naive.slots) == 96


def test_a_broken_model_file_degrades_with_a_warning(tmp_path: Path) -> None:
    broken = tmp_path / "price_x.tflite"
    broken.write_bytes(b"not a model")
    with capture_logs() as logs:
        forecaster = PriceForecaster(broken)
    assert forecaster.network is None and logs[0]["event"] == "price_model_unavailable"
    result = forecaster.predict(sample_history(80, date(2025, 10, 14)), datetime(2025, 10, 14, 11, tzinfo=BERLIN), 24)
    assert set(result.methods.values()) == {"linear"}


def test_no_prices_at_all_is_a_clear_error() -> None:
    history = sample_history(10, date(2025, 10, 14))
    empty = MarketHistory(days=history.days, prices=np.full_like(history.prices, np.nan), exog={})
    with pytest.raises(ValueError, match="no complete day of prices"):
        PriceForecaster(None).predict(empty, datetime(2025, 10, 14, 11, tzinfo=BERLIN))


def test_quarter_hours_follow_the_intra_hour_shape_the_device_has_seen() -> None:
    history = sample_history(80, date(2025, 10, 14))
    pattern = np.array([20.0, -20.0, -20.0, 20.0])  # each hour: dear edges, cheap middle
    now = datetime(2025, 10, 14, 11, tzinfo=BERLIN)
    errors = []
    for seen_days in (7, 56):  # the 15-minute market: the last days known
        quarters = history.prices[:, :, None] + pattern
        quarters[: -1 - seen_days] = np.nan
        seen = MarketHistory(days=history.days, prices=history.prices, exog=history.exog, quarters=quarters)
        learned = np.array([v for _, v in PriceForecaster(MODEL).predict(seen, now, 24).slots]).reshape(24, 4)
        errors.append(np.abs(learned - learned.mean(axis=1, keepdims=True) - pattern).mean())
    assert errors[1] < 0.5 * errors[0] and errors[1] < 8.0  # more quarter-hour days, closer to what was seen
    # hourly history only: the shipped prior, which keeps each hour's forecast as the mean of its quarters
    result = PriceForecaster(MODEL).predict(history, now, 24)
    prior = np.array([v for _, v in result.slots]).reshape(24, 4)
    assert prior.mean(axis=1) == pytest.approx(result.days[0].values)
    assert np.abs(prior - prior.mean(axis=1, keepdims=True) - pattern).mean() > errors[0]


def test_forecast_across_the_switch_to_the_15_minute_market_has_each_days_resolution() -> None:
    from device.prices.days import resolution_for

    now = datetime(2025, 9, 29, 11, tzinfo=BERLIN)
    result = PriceForecaster(MODEL).predict(sample_history(80, date(2025, 9, 29)), now, 48, resolution_for)
    ts = np.array([t for t, _ in result.slots])
    switch = int(datetime(2025, 10, 1, tzinfo=BERLIN).timestamp())
    assert len(ts[ts < switch]) == 24 and np.all(np.diff(ts[ts < switch]) == 3600)
    assert len(ts[ts >= switch]) == 96 and np.all(np.diff(ts[ts >= switch]) == 900)
