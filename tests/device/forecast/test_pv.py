from datetime import UTC, datetime

import numpy as np
import pytest

from device.forecast.pv import clear_sky_ghi, forecast_pv

T0 = int(datetime(2024, 6, 1, tzinfo=UTC).timestamp())
BERLIN = (52.52, 13.40)


def test_clear_sky_follows_the_sun_in_berlin() -> None:
    ts = T0 + 900 * np.arange(96)
    ghi = clear_sky_ghi(ts, *BERLIN)
    noon = int(np.argmax(ghi))
    assert 10.5 <= noon / 4 <= 11.5  # solar noon ≈ 11:07 UTC at 13.4° E
    assert 800 < ghi[noon] < 1000
    assert ghi[0] == 0 and ghi[95] == 0  # midnight
    winter = clear_sky_ghi(np.array([int(datetime(2024, 12, 21, 11, tzinfo=UTC).timestamp())]), *BERLIN)
    assert winter[0] < 0.4 * ghi[noon]


def test_history_ratio_is_reproduced_and_cold_start_uses_peak_power() -> None:
    days = 15
    ts = T0 + 900 * np.arange((days + 2) * 96)
    cs = clear_sky_ghi(ts, *BERLIN)
    now = days * 96
    history = np.r_[cs[:now] * 5.0, np.full(2 * 96, np.nan)]  # a plant making 5 W per W/m²
    fc = forecast_pv(history, cs, now, 96, peak_w=8000)
    assert fc == pytest.approx(cs[now:now + 96] * 5.0, rel=0.05, abs=10)  # dawn: sun moved a little
    cold = forecast_pv(np.full(len(ts), np.nan), cs, now, 96, peak_w=8000)
    assert cold.max() == pytest.approx(8000 * cs[now:now + 96].max() / 1000 * 0.55)


def test_a_grey_last_hour_lowers_the_next_hours() -> None:
    days = 15
    ts = T0 + 900 * np.arange((days + 2) * 96)
    cs = clear_sky_ghi(ts, *BERLIN)
    now = days * 96 + 44  # 11:00 UTC
    history = cs * 5.0
    history[now - 4:now] *= 0.3
    fc = forecast_pv(history, cs, now, 96, peak_w=8000)
    assert fc[0] < 0.5 * cs[now] * 5.0
    assert fc[40] == pytest.approx(cs[now + 40] * 5.0, rel=0.1, abs=5)
