from __future__ import annotations

from datetime import date

import pandas as pd

from device.prices.csv_source import CsvSource
from device.prices.days import day_bounds, select_day


async def test_replays_the_sample_for_any_day_in_todays_resolution() -> None:
    src = CsvSource()
    for day, slots in [(date(2025, 10, 26), 100), (date(2026, 3, 29), 92), (date(2027, 1, 4), 96),
                       (date(2024, 10, 27), 25)]:
        got = select_day(await src.day_ahead("DE_LU", *day_bounds(day)), day)
        assert got.complete and len(got.slots) == slots


async def test_first_sample_day_is_replayed_exactly_and_weekdays_are_kept() -> None:
    src = CsvSource()
    sample = pd.read_csv(src.path)
    got = select_day(await src.day_ahead("DE_LU", *day_bounds(date(2024, 5, 6))), date(2024, 5, 6))
    assert [v for _, v in got.slots] == list(sample["price_eur_mwh"][:24])
    later = select_day(await src.day_ahead("DE_LU", *day_bounds(date(2024, 6, 10))), date(2024, 6, 10))
    assert [v for _, v in later.slots] == [v for _, v in got.slots]  # 35 days later, also a Monday


async def test_inputs_come_from_the_same_file() -> None:
    src = CsvSource()
    start, end = day_bounds(date(2026, 1, 5))
    assert set(await src.market_forecasts("DE_LU", start, end)) == {"load", "solar", "wind_onshore", "wind_offshore"}
    assert len(await src.exaa("DE_LU", start, end)) == 96
