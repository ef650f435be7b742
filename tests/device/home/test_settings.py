import json
import time
from pathlib import Path
from typing import Any

import pytest

from device import config as configuration
from device.home.settings import (
    HomeSettings,
    SettingsError,
    SettingsFile,
    make_override,
    update_sections,
)

CFG = configuration.load([configuration.DEFAULT_FILE], environ={})
LIMITS = {"charge": 5000, "discharge": 4000}


def test_changes_are_applied_over_the_configuration() -> None:
    settings = update_sections(HomeSettings(), CFG, {"battery": {"reserve_pct": 30}, "planner": {"mode": "self_consumption"}})
    effective = settings.apply(CFG)
    assert effective.battery.reserve_pct == 30 and effective.planner.mode == "self_consumption"
    assert effective.battery.capacity_wh == CFG.battery.capacity_wh


@pytest.mark.parametrize("changes, field", [
    ({"battery": {"reserve_pct": -1}}, "battery.reserve_pct"),
    ({"tariff": {"export": "barter"}}, "tariff.export"),
    ({"tariff": {"grid_fee_windows": []}}, "tariff.grid_fee_windows"),
    ({"mqtt": {"host": "evil"}}, "mqtt"),
    ({"battery": {"reserve_pct": float("nan")}}, "battery.reserve_pct"),  # silently became the BMS minimum
    ({"tariff": {"vat_pct": float("nan")}}, "tariff.vat_pct"),  # put planning into a crash loop
    ({"tariff": {"markup_eur_mwh": float("inf")}}, "tariff.markup_eur_mwh"),
])
def test_bad_changes_name_the_key(changes: dict, field: str) -> None:
    with pytest.raises(SettingsError) as err:
        update_sections(HomeSettings(), CFG, changes)
    assert err.value.field == field and str(err.value).startswith(field)


@pytest.mark.parametrize("action, power, until_in_s, field", [
    ("charge", 5001, 3600, "power_w"),
    ("discharge", 4500, 3600, "power_w"),
    ("charge", 0, 3600, "power_w"),
    ("charge", 1000.5, 3600, "power_w"),
    ("charge", True, 3600, "power_w"),  # float(True) == 1.0 was a 1 W charge
    ("charge", float("nan"), 3600, "power_w"),
    ("charge", "inf", 3600, "power_w"),
    ("idle", 1000, 3600, "action"),
    ("charge", 1000, -5, "until"),
    ("charge", 1000, 25 * 3600, "until"),
])
def test_override_limits(action: str, power: Any, until_in_s: float, field: str) -> None:
    now = time.time()
    with pytest.raises(SettingsError) as err:
        make_override(action, power, now + until_in_s, now, LIMITS)
    assert err.value.field == field


async def test_file_round_trip_and_expiry(tmp_path: Path) -> None:
    now = time.time()
    store = SettingsFile(tmp_path / "settings.json")
    assert await store.load() == HomeSettings()
    settings = HomeSettings({"battery": {"reserve_pct": 20}}, make_override("charge", "2500", now + 60, now, LIMITS))
    await store.save(settings)
    reloaded = await SettingsFile(tmp_path / "settings.json").load()
    assert reloaded == settings
    assert reloaded.active_override(now) is not None and reloaded.active_override(now + 61) is None
    assert json.loads((tmp_path / "settings.json").read_text())["override"]["power_w"] == 2500
    assert not (tmp_path / "settings.tmp").exists()


@pytest.mark.parametrize("text, reason", [
    ('{"sections": {}, "override": {"action": "charge", "power_w": NaN, "until": 1e12}}', "NaN"),
    ('{"sections": {}, "override": {"action": "charge", "power_w": true, "until": 1e12}}', "override.power_w"),
    ('{"sections": {}, "override": {"action": "charge", "power_w": 2000, "until": "soon"}}', "override.until"),
    ('{"sections": {}, "override": {"action": "explode", "power_w": 2000, "until": 1e12}}', "override.action"),
    ('{"sections": [1, 2]}', "sections"),
    ("[]", "expected a JSON object"),
    ('{"sections": {"battery": {"reserve_pct": 20', "Expecting"),
])
async def test_a_hand_edited_file_that_is_not_settings_is_kept_aside(
    tmp_path: Path, text: str, reason: str
) -> None:
    """It used to crash the app at every start (or charge at NaN watts); now the configuration
    applies, the file is kept for a human and the log says why."""
    from structlog.testing import capture_logs

    (tmp_path / "settings.json").write_text(text)
    with capture_logs() as logs:
        assert await SettingsFile(tmp_path / "settings.json").load() == HomeSettings()
    assert (tmp_path / "settings.json.rejected").read_text() == text
    assert not (tmp_path / "settings.json").exists()
    assert reason in logs[0]["error"] and logs[0]["kept"].endswith("settings.json.rejected")
