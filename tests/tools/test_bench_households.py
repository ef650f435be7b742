"""The arbitrage benchmark runs any household against another year's prices (days mapped by ISO
week and weekday on the local clock), with the plant's parameters, and over a folder of homes
(small files written here, not the shared data set)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.tools.test_bench_inputs import price_file
from tools.bench import arbitrage


def household_file(path: Path, first_local_day: str, days: int, level_kw: float = 0.4) -> Path:
    """Load = level + the local wall-clock hour/100 (so a value says when it was metered)."""
    first = pd.Timestamp(first_local_day, tz=arbitrage.TZ)
    end = pd.Timestamp(date.fromisoformat(first_local_day) + pd.Timedelta(days=days).to_pytimedelta(), tz=arbitrage.TZ)
    utc = pd.date_range(first.tz_convert("UTC"), end.tz_convert("UTC"), freq="15min", inclusive="left")
    wall = utc.tz_convert(arbitrage.TZ)
    pd.DataFrame({"timestamp_utc": utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "load_kw": (level_kw + (wall.hour + wall.minute / 60) / 100).round(4),
                  "pv_kw_per_kwp": np.where((wall.hour >= 10) & (wall.hour < 15), 0.5, 0.0)}).to_csv(path, index=False)
    return path


def test_price_year_keeps_iso_week_and_weekday() -> None:
    for day, year in ((date(2024, 3, 4), 2019), (date(2024, 1, 1), 2016), (date(2024, 12, 31), 2019)):
        moved = day + pd.Timedelta(days=arbitrage.price_year_shift(day, year)).to_pytimedelta()
        assert moved.isocalendar()[1:] == day.isocalendar()[1:] and moved.isocalendar().year == year
    assert arbitrage.price_year_shift(date(2024, 1, 1), 2024) == 0


def test_household_moves_on_the_local_clock_across_different_clock_changes(tmp_path: Path) -> None:
    # 2024-03-31 (Sunday, week 13) lost an hour; in 2016 the same ISO day, 2016-04-03, did not
    source = household_file(tmp_path / "h.csv", "2024-03-30", 3)
    shift = arbitrage.price_year_shift(date(2024, 3, 30), 2016)
    ts, load, _ = arbitrage.household_on_days(source, shift)
    wall = pd.DatetimeIndex(pd.to_datetime(ts, unit="s", utc=True)).tz_convert(arbitrage.TZ)
    assert str(wall[0].date()) == "2016-04-02" and str(wall[-1].date()) == "2016-04-04"
    assert len(ts) == 3 * 96  # no clock change in 2016's days: full days, nothing missing
    code = 0.4 + (wall.hour + wall.minute / 60) / 100
    sunday = (wall.day == 3) & (wall.hour == 2)  # 02:00-02:45 did not exist on 2024-03-31
    assert np.allclose(load[~sunday], code[~sunday])  # 07:15 stays 07:15
    assert np.allclose(load[sunday], 0.4 + 1.75 / 100)  # the quarter-hour before the gap


def test_households_folder_reports_worst_and_median_with_the_plants_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = price_file(tmp_path / "p.csv", "2019-02-01T00:00Z", 60 * 24, "1h")
    homes = tmp_path / "homes"
    homes.mkdir()
    household_file(homes / "small.csv", "2024-02-19", 21, level_kw=0.2)
    household_file(homes / "large.csv", "2024-02-19", 21, level_kw=0.9)
    out = arbitrage.main(["--prices", str(prices), "--households", str(homes), "--price-year", "2019",
                          "--start", "2024-03-04", "--end", "2024-03-05", "--strategies", "",
                          "--price-forecast", "naive", "--kwp", "4"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out
    homes_out = out["households"]
    assert isinstance(homes_out, list) and [h["household"].split(",")[0] for h in homes_out] == ["large.csv", "small.csv"]
    assert all(h["start"] == "2019-03-04" and h["end"] == "2019-03-05" for h in homes_out)  # Monday, week 10
    assert all(h["mean_pv_w"] == pytest.approx(4000 * 0.5 * 5 / 24, rel=1e-3) for h in homes_out)
    assert all(h["saving_vs_self_consumption_eur"]["self_consumption"] == 0 for h in homes_out)
    shares = [h["captured_share"]["self_consumption"] for h in homes_out]
    assert out["worst"]["captured_share"]["self_consumption"] == min(shares)  # type: ignore[index]
    assert out["median"]["captured_share"]["self_consumption"] == pytest.approx(np.median(shares), abs=1e-4)  # type: ignore[index]
    scaled = arbitrage.main(["--prices", str(prices), "--household", str(homes / "small.csv"), "--price-year", "2019",
                             "--start", "2024-03-04", "--end", "2024-03-05", "--strategies", "",
                             "--price-forecast", "naive", "--annual-load", "8760"])
    assert scaled["mean_load_w"] == pytest.approx(1000.0, rel=1e-3)  # 8,760 kWh a year is 1 kW on average
    with pytest.raises(SystemExit):
        arbitrage.main(["--prices", str(prices), "--household", str(homes / "small.csv"), "--year", "2024",
                        "--annual-load", "lots"])
    assert "--annual-load: got 'lots'" in capsys.readouterr().err


def test_price_forecasts_are_cached_for_the_same_period_and_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prices = price_file(tmp_path / "p.csv", "2019-02-01T00:00Z", 60 * 24, "1h")
    home = household_file(tmp_path / "h.csv", "2019-03-01", 10)
    tariff = arbitrage.Tariff(arbitrage.TariffSettings(), arbitrage.TZ)
    year = arbitrage.read_period([prices], home, date(2019, 3, 4), date(2019, 3, 5), tariff)
    made: list[int] = []

    def forecaster(y: arbitrage.Year, *_: object) -> tuple[dict[date, dict[int, float]], str]:
        made.append(1)
        return {date(2019, 3, 4): {int(y.ts[0]): 42.5 + len(made)}}, "device forecaster"

    monkeypatch.setattr(arbitrage, "device_price_forecasts", forecaster)
    cache = tmp_path / "forecasts.json"
    first = arbitrage.cached_price_forecasts(cache, year, [prices], [], (56,), None)
    again = arbitrage.cached_price_forecasts(cache, year, [prices], [], (56,), None)
    assert made == [1] and again[0] == first[0] == {date(2019, 3, 4): {int(year.ts[0]): 43.5}}
    assert again[1] == f"device forecaster (read from {cache})"
    arbitrage.cached_price_forecasts(cache, year, [prices], [], (56, 84), None)  # other windows: made anew
    assert made == [1, 1]
