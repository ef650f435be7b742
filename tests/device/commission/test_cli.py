"""`nattery commission` in-process: --json, exit status, options refused before the line is touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from device.cli import main
from device.simulator import Simulator
from tests.device.commission.conftest import invoke


async def test_cli_json_output_is_parseable(deye: tuple[Simulator, str], tmp_path: Path) -> None:
    _, port = deye
    result = await invoke("--port", port, "--json", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["problems"] == []
    assert report["found"] == {"map": "deye_hybrid_1p", "unit_id": 1, "line": "9600 8N1", "baudrate": 9600,
                               "also_fits": []}
    assert {p["map"]: p["outcome"] for p in report["scan"]} == {
        "deye_hybrid_1p": "fits", "deye_hybrid_3p": "other_family", "huawei_sun2000_luna2000": "exception",
        "sungrow_sh_hybrid": "exception", "fronius_gen24": "other_family", "kostal_plenticore": "no_reply",
        "sma_hybrid": "no_reply",
        "goodwe_et_hybrid": "no_reply"}  # GoodWe's own unit id is 247, the Deye answers at 1
    soc = next(r for r in report["registers"] if r["name"] == "battery_soc")
    assert soc["unit"] == "%" and soc["verdict"] == "ok" and 0 <= soc["value"] <= 100
    assert report["write"]["ok"] is True and report["files"] == {}
    assert not (tmp_path / "nattery.yaml").exists()  # nothing written without --write-config


async def test_cli_failed_check_writes_no_inverter_settings(deye: tuple[Simulator, str], tmp_path: Path) -> None:
    sim, port = deye
    sim.image.set("grid_frequency", 0.5)
    result = await invoke("--port", port, "--map", "deye_hybrid_1p", "--write-config", "--json",
                          "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["problems"] == [
        "check: grid_frequency 0.5 Hz: expected 47.5..52.5 or 57..63 Hz"]
    assert report["files"] == {"inverter": "not written: commissioning of the inverter failed"}
    assert not (tmp_path / "nattery.yaml").exists()


@pytest.mark.parametrize(("args", "input", "message"), [
    (["--scan-units", "0-3"], None, "--scan-units: '0-3' outside 1..247"),
    (["--scan-units", "a"], None, "--scan-units: 'a' is not a list of unit ids"),
    (["--scan-bauds", "9601"], None, "--scan-bauds: got '9601'; allowed: 1200, 2400"),
    (["--map", "nope"], None, "unknown inverter map 'nope'"),
    (["--port", "com1"], None, "inverter.port: 'com1' has scheme ''"),
    (["--homeowner-password"], "short\nshort\n", "homeowner password: at least 8 characters"),
    (["--homeowner-password"], "installer\ninstaller\n", "homeowner password: choose one that is not"),
    (["--tariff", "TARIFF"], None, "tariff.vat_pct: got 250.0, allowed: 0 to 100"),
])
async def test_cli_refuses_bad_options_before_touching_the_line(
        tmp_path: Path, args: list[str], input: str | None, message: str) -> None:
    tariff = tmp_path / "tariff.yaml"
    tariff.write_text("vat_pct: 250\n")
    args = [str(tariff) if a == "TARIFF" else a for a in args]
    # one map: the command loads its maps before it checks the other options (parsing every
    # shipped map costs tenths of a second per case); a second --map adds to it
    result = await invoke("--port", f"serial://{tmp_path}/none", "--map", "deye_hybrid_1p",
                          "--data-dir", str(tmp_path), *args, input=input)
    assert result.exit_code == 1
    assert message in result.stderr
    assert "cannot open" not in result.stderr  # refused before the scan


def test_help_names_every_option() -> None:
    result = CliRunner().invoke(main, ["commission", "--help"])
    assert result.exit_code == 0
    for option in ("--port", "--map", "--scan-units", "--scan-bauds", "--scan-timeout", "--write-test",
                   "--write-register", "--write-config", "--tariff", "--homeowner-password", "--data-dir",
                   "--json"):
        assert option in result.output
