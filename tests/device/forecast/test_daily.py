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


def test_quarter_profile_learns_the_pattern_inside_the_hour_and_forecasts_keep_it() -> None:
    from device.forecast.daily import quarter_profile

    index = pd.date_range("2025-10-06T22:00Z", periods=96 * 10, freq="15min", tz="UTC")
    hourly_level = 50 + 10 * (index.hour % 5)
    ramp = np.tile([-3.0, -1.0, 1.0, 3.0], len(index) // 4)  # the same shape in every hour
    shape = quarter_profile(pd.Series(hourly_level + ramp, index=index), TZ)
    assert shape is not None and shape.shape == (24, 4)
    assert np.allclose(shape, [-3.0, -1.0, 1.0, 3.0])
    slots = expand_day(date(2025, 10, 20), np.full(24, 80.0), TZ, 900, shape)
    assert [v for _, v in slots[:4]] == [77.0, 79.0, 81.0, 83.0]
    assert expand_day(date(2025, 10, 20), np.full(24, 80.0), TZ, 3600, shape)[0][1] == 80.0
    hourly_only = pd.Series(np.ones(24 * 10), index=pd.date_range("2024-06-01", periods=240, freq="1h", tz="UTC"))
    assert quarter_profile(hourly_only, TZ) is None  # before the 15-minute market: no profile
