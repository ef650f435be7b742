from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from device.forecast.daily import day_slots, expand_day, to_day_matrix

TZ = "Europe/Berlin"


def hourly(first: str, last: str, values: object = None) -> pd.Series:
    index = pd.date_range(first, last, freq="1h", tz="UTC")
    return pd.Series(np.arange(len(index), dtype=float) if values is None else values, index=index)


def test_spring_day_gets_its_missing_hour_interpolated() -> None:
    # local 2024-03-31: 23 hours, 02:00 does not exist
    m = to_day_matrix(hourly("2024-03-30T23:00Z", "2024-03-31T21:00Z"), TZ)
    row = m.values[m.index_of(date(2024, 3, 31))]
    assert np.isfinite(row).all()
    assert row[2] == (row[1] + row[3]) / 2


def test_autumn_day_averages_the_repeated_hour() -> None:
    # local 2024-10-27: 25 hours, 02:00 twice (00:00Z and 01:00Z)
    s = hourly("2024-10-26T22:00Z", "2024-10-27T22:00Z")
    m = to_day_matrix(s, TZ)
    row = m.values[m.index_of(date(2024, 10, 27))]
    assert row[2] == (s.iloc[2] + s.iloc[3]) / 2 and row[3] == s.iloc[4]


def test_quarter_hours_are_averaged_to_hours() -> None:
    index = pd.date_range("2025-10-13T22:00Z", periods=96, freq="15min", tz="UTC")
    m = to_day_matrix(pd.Series(np.arange(96, dtype=float), index=index), TZ)
    assert m.values[0, 0] == 1.5 and m.values[0, 23] == 93.5


def test_expand_day_gives_every_real_slot() -> None:
    hours = np.arange(24, dtype=float)
    assert len(expand_day(date(2025, 10, 26), hours, TZ, 900)) == 100
    assert len(expand_day(date(2026, 3, 29), hours, TZ, 900)) == 92
    autumn = expand_day(date(2024, 10, 27), hours, TZ, 3600)
    assert [v for _, v in autumn][:5] == [0, 1, 2, 2, 3]  # both 02:00 hours take hour 2
    assert day_slots(date(2025, 10, 14), TZ, 900)[0].isoformat() == "2025-10-14T00:00:00+02:00"


def test_expand_day_takes_quarter_hour_values_per_quarter_and_their_mean_per_hour() -> None:
    cells = np.arange(96, dtype=float).reshape(24, 4)
    quarters = expand_day(date(2025, 10, 20), cells, TZ, 900)
    assert [v for _, v in quarters[:5]] == [0, 1, 2, 3, 4] and len(quarters) == 96
    assert [v for _, v in expand_day(date(2025, 10, 20), cells, TZ, 3600)][:2] == [1.5, 5.5]
    autumn = expand_day(date(2025, 10, 26), cells, TZ, 900)  # both 02:00 hours take hour 2's quarters
    assert [v for _, v in autumn[8:16]] == [8, 9, 10, 11, 8, 9, 10, 11]


def test_quarter_matrix_keeps_quarter_hours_and_leaves_hourly_days_without() -> None:
    from device.forecast.daily import has_quarters, to_quarter_matrix

    hourly_part = hourly("2025-09-29T22:00Z", "2025-09-30T21:00Z")  # local 2025-09-30, hourly market
    index = pd.date_range("2025-09-30T22:00Z", periods=96, freq="15min", tz="UTC")  # local 2025-10-01
    series = pd.concat([hourly_part, pd.Series(np.arange(96, dtype=float), index=index)])
    days = pd.date_range("2025-09-30", "2025-10-01", freq="D")
    cells = to_quarter_matrix(series, TZ, days)
    assert list(has_quarters(cells)) == [False, True]
    assert cells[1, 0].tolist() == [0, 1, 2, 3] and cells[1, 23, 3] == 95
    assert np.isfinite(cells[0, :, 0]).all() and not np.isfinite(cells[0, :, 1:]).any()
