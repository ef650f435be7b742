"""Hand-over: the installer file (validated by device.config.load), tariff, homeowner password."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from device import config as configuration
from device.commission import CommissionError
from device.commission.handover import update_installer_file
from device.simulator import Simulator
from common.passwords import verify_password
from tests.device.commission.conftest import invoke


def test_installer_file_update_refuses_an_invalid_result(tmp_path: Path) -> None:
    path = tmp_path / "nattery.yaml"
    path.write_text("web:\n  port: 8080\n")
    with pytest.raises(CommissionError, match=r"not written, the result would be invalid: inverter.unit_id"):
        update_installer_file(path, {"inverter": {"unit_id": 999}})
    assert path.read_text() == "web:\n  port: 8080\n" and not list(tmp_path.glob("*.tmp"))


async def test_cli_writes_a_valid_installer_file_tariff_and_password(
        deye: tuple[Simulator, str], tmp_path: Path) -> None:
    _, port = deye
    data = tmp_path / "data"
    data.mkdir()
    installer = data / "nattery.yaml"
    installer.write_text("device:\n  id: site-42\ninverter:\n  unit_id: 7\n  poll_interval_s: 2\n")
    (data / "settings.json").write_text(json.dumps(
        {"sections": {"tariff": {"vat_pct": 7}, "battery": {"reserve_pct": 30}}, "override": None}))
    tariff = tmp_path / "tariff.yaml"
    tariff.write_text("tariff:\n  markup_eur_mwh: 21.5\n  export: spot\n  grid_fee_windows:\n"
                      "    - {start: '00:00', end: '06:00', fee_eur_mwh: 30.0}\n")
    market = tmp_path / "market.yaml"
    market.write_text("malo_id: '51238696781'\nmelo_id: DE0001234567890000000000000000001\n"
                      "sender_id: '9900000000003'\nreceiver_id: '9800000000007'\nreceiver_qualifier: '332'\n")
    password = "correct horse battery"
    result = await invoke("--port", port, "--map", "deye_hybrid_1p", "--scan-units", "1", "--write-config",
                          "--tariff", str(tariff), "--market", str(market), "--homeowner-password",
                          "--data-dir", str(data),
                          input=f"{password}\n{password}\n")
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.stdout and password not in result.output

    cfg = configuration.load([configuration.DEFAULT_FILE, installer], environ={})
    assert (cfg.inverter.map, cfg.inverter.port, cfg.inverter.unit_id) == ("deye_hybrid_1p", port, 1)
    assert cfg.inverter.baudrate is None and cfg.inverter.poll_interval_s == 2 and cfg.device.id == "site-42"
    assert (cfg.tariff.markup_eur_mwh, cfg.tariff.export) == (21.5, "spot")
    assert [(w.start, w.end, w.fee_eur_mwh) for w in cfg.tariff.grid_fee_windows] == [("00:00", "06:00", 30.0)]
    assert (cfg.market.malo_id, cfg.market.receiver_id, cfg.market.receiver_qualifier) == (
        "51238696781", "9800000000007", "332")
    assert yaml.safe_load((data / "nattery.yaml.bak").read_text())["inverter"]["unit_id"] == 7
    assert installer.stat().st_mode & 0o777 == 0o600

    settings = json.loads((data / "settings.json").read_text())
    assert settings["sections"] == {"battery": {"reserve_pct": 30}}  # the new tariff counts
    users = json.loads((data / "web-users.json").read_text())
    assert verify_password(password, users["homeowner"]["password_hash"])
    assert users["homeowner"]["must_change"] is False
    assert users["installer"]["must_change"] is True  # seeded from the default, as the web app does


async def test_wrong_market_identities_are_refused_before_anything_runs(tmp_path: Path) -> None:
    market = tmp_path / "market.yaml"
    market.write_text("market:\n  malo_id: '51238696782'\n  melo_id: DE0001234567890000000000000000001\n"
                      "  sender_id: '9900000000003'\n  receiver_id: '9900000000003'\n")
    data = tmp_path / "data"
    data.mkdir()
    result = await invoke("--port", "serial:///dev/nonexistent", "--market", str(market), "--data-dir", str(data))
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: --market {market}: market.malo_id: '51238696782': the check digit (11th) is 2, it should be 1")
    assert not (data / "nattery.yaml").exists()
