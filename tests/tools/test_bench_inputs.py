"""The backtests read hourly and quarter-hour price files, score each day at its resolution and
refuse periods outside the data (small files written here, not the shared data set)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from device.config import TariffSettings
from device.prices.tariff import Tariff
from tools.bench import arbitrage, forecast


def price_file(path: Path, start: str, periods: int, freq: str) -> Path:
    index = pd.date_range(start, periods=periods, freq=freq, tz="UTC")
    hours = index.hour + index.minute / 60
    prices = 80 + 30 * np.sin(hours / 24 * 2 * np.pi) + 2 * (index.minute // 15)  # a shape inside the hour
    pd.DataFrame({"timestamp_utc": index.strftime("%Y-%m-%dT%H:%M:%SZ"), "price_eur_mwh": prices.round(2),
                  "bidding_zone": "DE-LU"}).to_csv(path, index=False)
    return path


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    # local 2025-08-01 .. 2025-09-30 hourly, then 2025-10-01 .. 2025-10-14 in quarter-hours
    hourly = price_file(tmp_path / "hourly.csv", "2025-07-31T22:00Z", 61 * 24, "1h")
    quarters = price_file(tmp_path / "quarters.csv", "2025-09-30T22:00Z", 14 * 96, "15min")
    return [hourly, quarters]


def test_forecast_backtest_scores_quarter_hour_days_per_quarter_hour(
    files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = [a for f in files for a in ("--prices", str(f))]
    forecast.main([*args, "--start", "2025-10-12", "--end", "2025-10-13"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["resolution_minutes"] == 15 and out["slots"] == 2 * 96
    assert out["model"]["mae"] < out["hourly_flat"]["mae"]  # the shape inside the hour was learned
    forecast.main([*args, "--start", "2025-09-29", "--end", "2025-10-01"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["resolution_minutes"] == [15, 60] and out["slots"] == 24 + 24 + 96


def test_forecast_backtest_refuses_a_period_outside_the_prices_in_one_line(files: list[Path]) -> None:
    args = [a for f in files for a in ("--prices", str(f))]
    with pytest.raises(SystemExit) as exc:
        forecast.main([*args, "--start", "2025-10-10", "--end", "2025-10-15"])
    message = str(exc.value)
    assert "\n" not in message and "2025-10-10..2025-10-15" in message and "2025-10-15" in message


def test_arbitrage_takes_each_slots_own_price_and_refuses_a_household_that_does_not_cover_the_period(
    files: list[Path], tmp_path: Path
) -> None:
    series = pd.concat([pd.read_csv(f, index_col="timestamp_utc")["price_eur_mwh"] for f in files])
    series.index = pd.to_datetime(series.index, utc=True)
    slots = np.array([int(t.timestamp()) for t in pd.date_range("2025-09-30T20:00Z", periods=12, freq="15min")])
    got = arbitrage.slot_prices(series, slots)
    assert got[:4].tolist() == [series.iloc[-14 * 96 - 2]] * 4  # an hourly price holds for its quarter-hours
    assert got[8:].tolist() == series.iloc[-14 * 96 : -14 * 96 + 4].tolist()  # quarter-hours their own
    household = tmp_path / "household.csv"
    index = pd.date_range("2024-10-01T22:00Z", periods=5 * 96, freq="15min", tz="UTC")
    pd.DataFrame({"timestamp_utc": index.strftime("%Y-%m-%dT%H:%M:%SZ"), "load_kw": 0.4,
                  "pv_kw_per_kwp": 0.1}).to_csv(household, index=False)
    tariff = Tariff(TariffSettings(), arbitrage.TZ)
    period = arbitrage.read_period(files, household, date(2025, 10, 1), date(2025, 10, 4), tariff, shift_days=364)
    assert period.n == 4 * 96 and np.isfinite(period.import_price).all()
    with pytest.raises(SystemExit, match=r"covers 2025-10-01\.\.2025-10-05 \(shifted by 364 days\), not all of"):
        arbitrage.read_period(files, household, date(2025, 10, 1), date(2025, 10, 8), tariff, shift_days=364)
