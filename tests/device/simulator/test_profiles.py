"""PV and load sources: clear-sky day and recorded 15-minute profiles."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from device.simulator.profiles import ClearSky, Profile


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_clear_sky_follows_the_sun_and_the_season() -> None:
    sky = ClearSky(latitude=52.5, longitude=13.4)
    assert sky.pv_w_per_kwp(epoch("2026-06-21T23:00:00")) == 0.0
    june, december = sky.pv_w_per_kwp(epoch("2026-06-21T11:00:00")), sky.pv_w_per_kwp(epoch("2026-12-21T11:00:00"))
    assert 600.0 < june < 850.0
    assert 0.0 < december < june / 2
    assert sky.pv_w_per_kwp(epoch("2026-06-21T08:00:00")) < june


def test_clear_sky_load_peaks_in_the_evening_by_local_time() -> None:
    sky = ClearSky(timezone="Europe/Berlin")
    evening, night = sky.load_w(epoch("2026-01-15T18:00:00")), sky.load_w(epoch("2026-01-15T02:00:00"))
    assert evening > 2 * night > 0


def write_profile(path: Path) -> Path:
    rows = ["timestamp_utc,load_kw,pv_kw_per_kwp"]
    for i in range(96 * 3):
        t = datetime.fromtimestamp(epoch("2024-03-01T00:00:00") + 900 * i, UTC)
        rows.append(f"{t:%Y-%m-%dT%H:%M:%SZ},{0.1 + (i % 96) / 96:.6f},{0.5 if 40 <= i % 96 < 56 else 0.0}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_profile_interpolates_and_maps_any_year_onto_its_days(tmp_path: Path) -> None:
    profile = Profile.from_csv(write_profile(tmp_path / "p.csv"))
    assert profile.load_w(epoch("2024-03-02T00:00:00")) == pytest.approx(100.0)
    assert profile.load_w(epoch("2024-03-02T00:07:30")) == pytest.approx(100.0 + 1000 / 96 / 2, abs=0.01)
    assert profile.pv_w_per_kwp(epoch("2024-03-02T11:00:00")) == pytest.approx(500.0)
    # The same calendar position in a later year reads the same row.
    assert profile.load_w(epoch("2027-03-02T06:00:00")) == pytest.approx(profile.load_w(epoch("2024-03-02T06:00:00")), abs=15)


def test_a_broken_profile_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp_utc,load_kw,pv_kw_per_kwp\n2024-01-01T00:00:00Z,x,0\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.csv:2: expected timestamp_utc"):
        Profile.from_csv(path)
