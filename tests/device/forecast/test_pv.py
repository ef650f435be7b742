from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from device import config
from device.forecast.pv import clear_sky, forecast_pv, solar_position

T0 = int(datetime(2024, 6, 1, tzinfo=UTC).timestamp())
BERLIN = (52.52, 13.40)


def test_clear_sky_follows_the_sun_in_berlin() -> None:
    ts = T0 + 900 * np.arange(96)
    ghi = clear_sky(ts, *BERLIN)
    noon = int(np.argmax(ghi))
    assert 10.5 <= noon / 4 <= 11.5  # solar noon ≈ 11:07 UTC at 13.4° E
    assert 800 < ghi[noon] < 1000
    assert ghi[0] == 0 and ghi[95] == 0  # midnight
    winter = clear_sky(np.array([int(datetime(2024, 12, 21, 11, tzinfo=UTC).timestamp())]), *BERLIN)
    assert winter[0] < 0.4 * ghi[noon]


def test_history_ratio_is_reproduced_and_cold_start_uses_peak_power() -> None:
    days = 15
    ts = T0 + 900 * np.arange((days + 2) * 96)
    cs = clear_sky(ts, *BERLIN)
    now = days * 96
    history = np.r_[cs[:now] * 5.0, np.full(2 * 96, np.nan)]  # a plant making 5 W per W/m²
    fc = forecast_pv(history, cs, now, 96, peak_w=8000)
    assert fc == pytest.approx(cs[now:now + 96] * 5.0, rel=0.05, abs=10)  # dawn: sun moved a little
    cold = forecast_pv(np.full(len(ts), np.nan), cs, now, 96, peak_w=8000)
    assert cold.max() == pytest.approx(8000 * cs[now:now + 96].max() / 1000 * 0.55)


def test_a_grey_last_hour_lowers_the_next_hours() -> None:
    days = 15
    ts = T0 + 900 * np.arange((days + 2) * 96)
    cs = clear_sky(ts, *BERLIN)
    now = days * 96 + 44  # 11:00 UTC
    history = cs * 5.0
    history[now - 4:now] *= 0.3
    fc = forecast_pv(history, cs, now, 96, peak_w=8000)
    assert fc[0] < 0.5 * cs[now] * 5.0
    assert fc[40] == pytest.approx(cs[now + 40] * 5.0, rel=0.1, abs=5)


def test_sun_position_matches_the_reference() -> None:
    """NREL's solar position algorithm's worked example (Reda & Andreas 2004): Golden, Colorado,
    2003-10-17 12:30:30 local (UTC−7): zenith 50.11162°, azimuth 194.34024° (the SPA's own
    accuracy is 0.0003°; NOAA's fractional-year formulas here are good to about 0.2°)."""
    t = np.array([datetime(2003, 10, 17, 19, 30, 30, tzinfo=UTC).timestamp()])
    cos_z, azimuth = solar_position(t, 39.742476, -105.1786)
    assert np.degrees(np.arccos(cos_z[0])) == pytest.approx(50.11162, abs=0.3)
    assert np.degrees(azimuth[0]) == pytest.approx(194.34024, abs=0.3)
    # Berlin at the June solstice: due south at solar noon, 90 − 52.52 + 23.44 = 60.92° high
    day = datetime(2024, 6, 20, tzinfo=UTC).timestamp() + 60 * np.arange(24 * 60)
    cos_z, azimuth = solar_position(day, *BERLIN)
    noon = int(np.argmax(cos_z))
    assert 90 - np.degrees(np.arccos(cos_z[noon])) == pytest.approx(60.92, abs=0.2)
    assert np.degrees(azimuth[noon]) == pytest.approx(180.0, abs=1.0)
    assert np.degrees(azimuth[noon - 180]) < 135 and np.degrees(azimuth[noon + 180]) > 225  # east, then west


def test_flat_plane_gets_the_global_irradiance_and_a_plane_facing_the_sun_the_most() -> None:
    ts = T0 + 900 * np.arange(96)
    ghi = clear_sky(ts, *BERLIN)
    assert clear_sky(ts, *BERLIN, tilt_deg=0.0, azimuth_deg=90.0) == pytest.approx(ghi)
    noon = int(np.argmax(ghi))
    cos_z, _ = solar_position(np.array([ts[noon] + 450.0]), *BERLIN)
    facing = clear_sky(ts[noon:noon + 1], *BERLIN, tilt_deg=float(np.degrees(np.arccos(cos_z[0]))), azimuth_deg=180.0)
    for tilt in (0, 15, 50, 70):
        assert facing[0] >= clear_sky(ts[noon:noon + 1], *BERLIN, tilt_deg=tilt, azimuth_deg=180.0)[0] - 1e-6


def test_a_south_facing_tilted_plant_yields_more_at_winter_noon_than_a_flat_one() -> None:
    noon = np.array([int(datetime(2024, 12, 21, 11, tzinfo=UTC).timestamp())])
    flat = clear_sky(noon, *BERLIN)[0]
    south = clear_sky(noon, *BERLIN, tilt_deg=30.0, azimuth_deg=180.0)[0]
    assert south > 1.5 * flat  # the sun is 14° high: a 30° plane faces it far better
    assert forecast_pv(np.full(1, np.nan), clear_sky(noon, *BERLIN, tilt_deg=30.0), 0, 1, 8000)[0] > \
        forecast_pv(np.full(1, np.nan), clear_sky(noon, *BERLIN), 0, 1, 8000)[0]


def test_an_east_facing_plant_peaks_before_noon_and_a_west_facing_one_after() -> None:
    ts = T0 + 900 * np.arange(96)
    solar_noon = int(np.argmax(clear_sky(ts, *BERLIN)))
    cold = np.full(96, np.nan)
    east = forecast_pv(cold, clear_sky(ts, *BERLIN, tilt_deg=30.0, azimuth_deg=90.0), 0, 96, 8000)
    west = forecast_pv(cold, clear_sky(ts, *BERLIN, tilt_deg=30.0, azimuth_deg=270.0), 0, 96, 8000)
    assert np.argmax(east) < solar_noon - 4  # more than an hour before
    assert np.argmax(west) > solar_noon + 4
    assert east[:solar_noon].sum() > west[:solar_noon].sum() and west[solar_noon:].sum() > east[solar_noon:].sum()


def test_the_learned_yield_takes_over_from_the_configured_orientation() -> None:
    """An east-facing plant configured as south-facing: once two weeks are metered, the forecast
    is the plant's own (peaking before noon), not the configured plane's."""
    days = 15
    ts = T0 + 900 * np.arange((days + 1) * 96)
    east = clear_sky(ts, *BERLIN, tilt_deg=30.0, azimuth_deg=90.0) * 6.0  # the real plant
    configured = clear_sky(ts, *BERLIN, tilt_deg=30.0, azimuth_deg=180.0)
    now = days * 96
    fc = forecast_pv(np.r_[east[:now], np.full(96, np.nan)], configured, now, 96, peak_w=8000)
    day = configured[now:] > 50  # at dawn the ratio is not learned (below 20 W/m², noise)
    assert fc[day] == pytest.approx(east[now:][day], rel=0.05, abs=20)
    assert fc.sum() == pytest.approx(east[now:].sum(), rel=0.05)
    cold = forecast_pv(np.full(len(ts), np.nan), configured, now, 96, peak_w=8000)
    assert np.argmax(fc) < np.argmax(cold) - 4


def test_orientation_is_configured_and_checked(tmp_path: Path) -> None:
    cfg = config.load([config.DEFAULT_FILE], environ={})
    assert (cfg.planner.pv_tilt_deg, cfg.planner.pv_azimuth_deg) == (30.0, 180.0)  # south, a typical roof
    installer = tmp_path / "nattery.yaml"
    installer.write_text("planner:\n  pv_tilt_deg: 20\n  pv_azimuth_deg: 250\n")
    cfg = config.load([config.DEFAULT_FILE, installer], environ={})
    assert (cfg.planner.pv_tilt_deg, cfg.planner.pv_azimuth_deg) == (20.0, 250.0)
    with pytest.raises(config.ConfigError, match=r"planner.pv_tilt_deg: got 95.0, allowed: 0 to 90"):
        config.load([config.DEFAULT_FILE], environ={"NATTERY_PLANNER_PV_TILT_DEG": "95"})
    with pytest.raises(config.ConfigError, match=r"planner.pv_azimuth_deg: got -10.0, allowed: 0 to 360"):
        config.load([config.DEFAULT_FILE], environ={"NATTERY_PLANNER_PV_AZIMUTH_DEG": "-10"})
