"""The one owner of the effective settings: changes are stored, applied and announced at once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from device import config as configuration
from device.home.effective import EffectiveSettings
from device.home.settings import (
    HomeSettings,
    SettingsError,
    SettingsFile,
    make_override,
    update_sections,
)


def base(tmp_path: Path) -> configuration.Config:
    return configuration.load([configuration.DEFAULT_FILE], environ={"NATTERY_TARIFF_VAT_PCT": "7"},
                              overrides={"device": {"data_dir": str(tmp_path)}})


async def test_a_change_is_stored_applied_and_announced(tmp_path: Path) -> None:
    settings = await EffectiveSettings.open(base(tmp_path))
    told: list[float] = []
    unsubscribe = settings.subscribe(lambda: told.append(settings.config.battery.reserve_pct))
    await settings.change(lambda home: update_sections(home, settings.base, {"battery": {"reserve_pct": 35}}))
    assert told == [35]  # subscribers see the new value when they are told
    assert settings.config.tariff.vat_pct == 7  # the environment still counts
    assert json.loads((tmp_path / "settings.json").read_text())["sections"] == {"battery": {"reserve_pct": 35}}
    reopened = await EffectiveSettings.open(base(tmp_path))
    assert reopened.config.battery.reserve_pct == 35
    unsubscribe()
    await settings.change(lambda home: update_sections(home, settings.base, {"battery": {"reserve_pct": 20}}))
    assert told == [35]


async def test_a_refused_change_changes_nothing(tmp_path: Path) -> None:
    settings = await EffectiveSettings.open(base(tmp_path))
    told: list[int] = []
    settings.subscribe(lambda: told.append(1))
    with pytest.raises(SettingsError, match=r"battery.reserve_pct"):
        await settings.change(lambda home: update_sections(home, settings.base, {"battery": {"reserve_pct": 300}}))
    assert told == [] and not (tmp_path / "settings.json").exists()
    assert settings.config == settings.base


async def test_concurrent_changes_are_both_kept(tmp_path: Path) -> None:
    settings = await EffectiveSettings.open(base(tmp_path))
    await asyncio.gather(
        settings.change(lambda home: update_sections(home, settings.base, {"battery": {"reserve_pct": 30}})),
        settings.change(lambda home: update_sections(home, settings.base, {"tariff": {"markup_eur_mwh": 25}})),
    )
    reopened = await EffectiveSettings.open(base(tmp_path))
    assert (reopened.config.battery.reserve_pct, reopened.config.tariff.markup_eur_mwh) == (30, 25)


async def test_the_override_runs_until_its_end(tmp_path: Path) -> None:
    settings = await EffectiveSettings.open(base(tmp_path))
    override = make_override("discharge", 1500, 1_003_600.0, 1_000_000.0, {"charge": 5000, "discharge": 5000})
    await settings.change(lambda home: HomeSettings(home.sections, override))
    assert settings.override(1_000_000.0) == override and settings.override(1_003_600.0) is None


async def test_a_broken_hand_edited_file_falls_back_to_the_installer_settings(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text(json.dumps({"sections": {"battery": {"reserve_pct": "lots"}}}))
    with capture_logs() as logs:
        settings = await EffectiveSettings.open(base(tmp_path))
    assert settings.config == settings.base
    assert any(e["event"] == "homeowner settings ignored" and "reserve_pct" in e["error"] for e in logs)


async def test_a_change_starts_from_the_file_another_process_wrote(tmp_path: Path) -> None:
    settings = await EffectiveSettings.open(base(tmp_path))
    await settings.change(lambda home: update_sections(home, settings.base, {"tariff": {"markup_eur_mwh": 25}}))
    await SettingsFile(tmp_path / "settings.json").save(HomeSettings())  # commissioning dropped it
    await settings.change(lambda home: update_sections(home, settings.base, {"battery": {"reserve_pct": 30}}))
    stored = json.loads((tmp_path / "settings.json").read_text())["sections"]
    assert stored == {"battery": {"reserve_pct": 30}}
