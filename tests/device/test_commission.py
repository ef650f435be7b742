"""`nattery commission` against the real simulator over TCP and over a socat pty pair.

The simulator serves its map at a fast line speed (115200) and a fixed simulated time, so the
scans take tenths of a second and the flows are the same on every run. CLI tests run in-process
with click's CliRunner in a thread (the command starts its own event loop while the simulator
keeps serving on the test's).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from device import commission as com
from device import config as configuration
from device.cli import main
from device.modbus.registermap import available_maps, load_map
from device.simulator import Simulator
from device.simulator.modes import apply_control, recognise
from device.web.auth import verify_password
from tests.conftest import PtyPair

NOON = 1_750_000_000.0  # 2025-06-15 ~15:06 UTC: sunny afternoon, battery charging from PV
MAPS = sorted(available_maps())
FAST = 115200


async def simulator(family: str, unit_id: int | None = None) -> tuple[Simulator, str]:
    sim = Simulator(load_map(family), baudrate=FAST, unit_id=unit_id, start_time=NOON)
    port = await sim.serve_tcp("127.0.0.1", 0, "rtu")
    return sim, f"rtu+tcp://127.0.0.1:{port}"


@pytest.fixture
async def deye() -> AsyncIterator[tuple[Simulator, str]]:
    sim, port = await simulator("deye_hybrid_1p")
    yield sim, port
    await sim.close()


def shipped() -> list[Any]:
    return [load_map(m) for m in MAPS]


async def run_inverter(port: str, **kwargs: Any) -> com.Report:
    kwargs.setdefault("scan_timeout_s", 0.1)
    kwargs.setdefault("bauds", [FAST])  # a silent unit costs a timeout plus a maximal late frame
    return await com.commission_inverter(port, shipped(), timeout_s=0.5, retries=0, **kwargs)


async def invoke(*args: str, input: str | None = None) -> Result:
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, main, ["commission", *args], input=input)


def problems(report: com.Report) -> str:
    return "\n".join(report.problems)


# --- scan -----------------------------------------------------------------------------------

@pytest.mark.parametrize("family", MAPS)
async def test_scan_finds_the_map_and_unit_among_the_shipped_maps(family: str) -> None:
    sim, port = await simulator(family, unit_id=3)
    try:
        report = await run_inverter(port, units=[1, 2, 3], write="skip")
    finally:
        await sim.close()
    assert report.ok, problems(report)
    assert report.found is not None
    assert (report.found.regmap.family, report.found.unit_id) == (family, 3)
    outcomes = {(p.unit_id, p.map): p.outcome for p in report.probes}
    assert outcomes == {
        **{(u, m): "no_reply" for u in (1, 2) for m in MAPS},
        **{(3, m): "fits" if m == family else "exception" for m in MAPS},
    }
    assert sim.stats.violations == 0  # strictly one request at a time, gap kept between workers


async def test_over_a_serial_pty_scan_check_and_write_pass(pty_pair: PtyPair) -> None:
    sim = Simulator(load_map("huawei_sun2000_luna2000"), baudrate=FAST, start_time=NOON)
    await sim.serve_serial(pty_pair.b)
    try:
        report = await run_inverter(f"serial://{pty_pair.a}")
    finally:
        await sim.close()
    assert report.ok, problems(report)
    assert report.found is not None and report.found.regmap.family == "huawei_sun2000_luna2000"
    readable = [r.name for r in report.found.regmap.telemetry_registers()]
    assert [c.name for c in report.registers] == readable
    assert {c.verdict for c in report.registers} <= {"ok", "unchecked"}
    assert report.write is not None and report.write.ok
    assert sim.stats.functions[16] == 1 and sim.stats.violations == 0


async def test_a_wrong_unit_id_answers_nothing_and_is_reported() -> None:
    sim, port = await simulator("deye_hybrid_1p", unit_id=5)
    try:
        report = await run_inverter(port, units=[1])
        result = await invoke("--port", port, "--scan-units", "1", "--scan-timeout", "0.1",
                              "--scan-bauds", str(FAST))
    finally:
        await sim.close()
    assert not report.ok and report.found is None
    assert {p.outcome for p in report.probes} == {"no_reply"}
    assert report.problems == ["scan: nothing answered (check wiring, A/B polarity, termination, "
                               "unit id and baud rate)"]
    assert result.exit_code == 1
    assert "no reply" in result.stdout and "FAILED" in result.stdout
    assert "commissioning failed: scan: nothing answered" in result.stderr


async def test_implausible_identifying_values_are_not_a_fit(deye: tuple[Simulator, str]) -> None:
    sim, port = deye
    sim.image.set("run_state", 9)  # no such state: this is not (a working) Deye
    report = await run_inverter(port)
    probe = next(p for p in report.probes if p.map == "deye_hybrid_1p")
    assert probe.outcome == "implausible" and "run_state 9: unknown code 9" in probe.detail
    assert report.problems == ["scan: something answers at unit 1 but no shipped map reads plausible values there"]


async def test_the_port_that_cannot_be_opened_stops_at_once(tmp_path: Path) -> None:
    with pytest.raises(com.CommissionError, match="cannot open serial://.*missing"):
        await run_inverter(f"serial://{tmp_path}/missing")


# --- check ----------------------------------------------------------------------------------

async def test_a_faulty_register_value_is_flagged(deye: tuple[Simulator, str]) -> None:
    sim, port = deye
    sim.image.set("grid_voltage", 500.0)
    sim.image.set("battery_voltage", 12.0)
    report = await run_inverter(port)
    verdicts = {c.name: c for c in report.registers}
    assert verdicts["grid_voltage"].verdict == "fail"
    assert verdicts["grid_voltage"].reason == "expected 184..264.5 V"
    assert verdicts["battery_voltage"].verdict == "fail"
    assert verdicts["grid_frequency"].verdict == "ok"
    assert not report.ok
    assert "check: grid_voltage 500 V: expected 184..264.5 V" in report.problems
    assert report.write is not None and report.write.ok  # the write test still runs and says so


async def test_a_wrong_sign_in_the_map_breaks_the_balance(deye: tuple[Simulator, str], tmp_path: Path) -> None:
    _, port = deye
    text = load_map("deye_hybrid_1p").path.read_text(encoding="utf-8")
    wrong = tmp_path / "deye_wrong_sign.yaml"
    wrong.write_text(text.replace("battery_w: battery_power", "battery_w: {register: battery_power, sign: -1}"))
    report = await com.commission_inverter(port, [load_map(wrong)], scan_timeout_s=0.1, timeout_s=0.5,
                                           retries=0, write="skip")
    balance = next(c for c in report.roles if c.name == "balance")
    assert balance.verdict == "fail" and "a sign or scale in the map is wrong" in balance.reason
    assert report.found is not None and report.found.regmap.path == wrong


def test_role_rules() -> None:
    regmap = load_map("deye_hybrid_1p")
    roles: dict[str, float | None] = {"soc_pct": 101.0, "pv_w": 2000.0, "grid_w": -500.0, "battery_w": -1000.0,
                                      "load_w": 520.0, "energy_import_wh": -1.0, "energy_export_wh": 0.0}
    verdicts = {c.name: c.verdict for c in com.judge_roles(regmap, roles)}
    assert verdicts == {"soc_pct": "fail", "pv_w": "ok", "load_w": "ok", "energy_import_wh": "fail",
                        "energy_export_wh": "ok", "balance": "ok"}
    roles["load_w"] = 1500.0  # 1000 W missing: more than 150 W + 10 % of the flows
    assert {c.name: c.verdict for c in com.judge_roles(regmap, roles)}["balance"] == "fail"
    roles["grid_w"] = None
    balance = [c for c in com.judge_roles(regmap, roles) if c.name == "balance"]
    assert balance == [com.Check("balance", None, "W", "fail", "not read")]


def test_register_rules() -> None:
    regmap = load_map("deye_hybrid_1p")
    regs = regmap.registers

    def verdict(name: str, value: float | None) -> str:
        return com.judge(regmap, regs[name], value).verdict

    assert verdict("battery_soc", 100) == "ok" and verdict("battery_soc", 150) == "fail"
    assert verdict("run_state", 2) == "ok" and verdict("run_state", 7) == "fail"
    assert verdict("pv1_voltage", 0) == "ok" and verdict("pv1_voltage", 1200) == "fail"
    assert verdict("battery_voltage", 52.1) == "ok" and verdict("battery_voltage", 0) == "fail"
    assert verdict("grid_voltage", 0) == "warn" and verdict("grid_frequency", 60) == "ok"
    assert verdict("grid_frequency", 55) == "fail"
    assert verdict("total_pv", -100) == "fail" and verdict("battery_temperature", 120) == "fail"
    assert verdict("pv1_power", -5) == "fail" and verdict("battery_power", -3000) == "ok"
    assert verdict("prog1_time", 2400) == "fail" and verdict("prog1_time", 2359) == "ok"
    assert verdict("grid_power", None) == "fail"


# --- harmless write -------------------------------------------------------------------------

async def test_rewrite_keeps_the_value_and_is_verified(deye: tuple[Simulator, str]) -> None:
    sim, port = deye
    sim.image.set("max_sell_power", 4200)
    report = await run_inverter(port, write_register="max_sell_power")
    assert report.write == com.WriteCheck(
        "rewrite", True, "max_sell_power rewritten with its value 4200 and read back", {"max_sell_power": 4200.0})
    assert sim.image.get("max_sell_power") == 4200 and sim.stats.functions[16] == 1


async def test_self_consumption_puts_the_inverter_in_its_safe_mode(deye: tuple[Simulator, str]) -> None:
    sim, port = deye
    apply_control(sim.image, sim.regmap, "charge", power_w=2000)
    sim.active = recognise(sim.regmap, sim.image)
    assert sim.mode == "charge"
    report = await run_inverter(port, write="self_consumption")
    assert report.ok, problems(report)
    assert report.write is not None and report.write.registers == {
        "time_of_use": 0, "grid_charge_enable": 0, "limit_control": 2}
    assert sim.mode == "self_consumption"


async def test_a_refused_write_fails_commissioning(deye: tuple[Simulator, str]) -> None:
    _, port = deye
    report = await run_inverter(port, write_register="run_state")
    assert report.write is not None and not report.write.ok
    assert report.problems == ["write: register 'run_state' is read-only (access 'r')"]


# --- hand-over and the CLI ------------------------------------------------------------------

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
    password = "correct horse battery"
    result = await invoke("--port", port, "--scan-units", "1", "--scan-timeout", "0.1", "--write-config",
                          "--tariff", str(tariff), "--homeowner-password", "--data-dir", str(data),
                          input=f"{password}\n{password}\n")
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.stdout and password not in result.output

    cfg = configuration.load([configuration.DEFAULT_FILE, installer], environ={})
    assert (cfg.inverter.map, cfg.inverter.port, cfg.inverter.unit_id) == ("deye_hybrid_1p", port, 1)
    assert cfg.inverter.baudrate is None and cfg.inverter.poll_interval_s == 2 and cfg.device.id == "site-42"
    assert (cfg.tariff.markup_eur_mwh, cfg.tariff.export) == (21.5, "spot")
    assert [(w.start, w.end, w.fee_eur_mwh) for w in cfg.tariff.grid_fee_windows] == [("00:00", "06:00", 30.0)]
    assert yaml.safe_load((data / "nattery.yaml.bak").read_text())["inverter"]["unit_id"] == 7
    assert installer.stat().st_mode & 0o777 == 0o600

    settings = json.loads((data / "settings.json").read_text())
    assert settings["sections"] == {"battery": {"reserve_pct": 30}}  # the new tariff counts
    users = json.loads((data / "web-users.json").read_text())
    assert verify_password(password, users["homeowner"]["password_hash"])
    assert users["homeowner"]["must_change"] is False
    assert users["installer"]["must_change"] is True  # seeded from the default, as the web app does


async def test_cli_json_output_is_parseable(deye: tuple[Simulator, str], tmp_path: Path) -> None:
    _, port = deye
    result = await invoke("--port", port, "--scan-timeout", "0.1", "--json", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["problems"] == []
    assert report["found"] == {"map": "deye_hybrid_1p", "unit_id": 1, "line": "9600 8N1", "baudrate": 9600,
                               "also_fits": []}
    assert {p["map"]: p["outcome"] for p in report["scan"]} == {
        "deye_hybrid_1p": "fits", "huawei_sun2000_luna2000": "exception"}
    soc = next(r for r in report["registers"] if r["name"] == "battery_soc")
    assert soc["unit"] == "%" and soc["verdict"] == "ok" and 0 <= soc["value"] <= 100
    assert report["write"]["ok"] is True and report["files"] == {}
    assert not (tmp_path / "nattery.yaml").exists()  # nothing written without --write-config


async def test_cli_failed_check_writes_no_inverter_settings(deye: tuple[Simulator, str], tmp_path: Path) -> None:
    sim, port = deye
    sim.image.set("grid_frequency", 0.5)
    result = await invoke("--port", port, "--scan-timeout", "0.1", "--write-config", "--json",
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
    result = await invoke("--port", f"serial://{tmp_path}/none", "--data-dir", str(tmp_path), *args, input=input)
    assert result.exit_code == 1
    assert message in result.stderr
    assert "cannot open" not in result.stderr  # refused before the scan


def test_installer_file_update_refuses_an_invalid_result(tmp_path: Path) -> None:
    path = tmp_path / "nattery.yaml"
    path.write_text("web:\n  port: 8080\n")
    with pytest.raises(com.CommissionError, match=r"not written, the result would be invalid: inverter.unit_id"):
        com.update_installer_file(path, {"inverter": {"unit_id": 999}})
    assert path.read_text() == "web:\n  port: 8080\n" and not list(tmp_path.glob("*.tmp"))


def test_help_names_every_option() -> None:
    result = CliRunner().invoke(main, ["commission", "--help"])
    assert result.exit_code == 0
    for option in ("--port", "--map", "--scan-units", "--scan-bauds", "--scan-timeout", "--write-test",
                   "--write-register", "--write-config", "--tariff", "--homeowner-password", "--data-dir",
                   "--json"):
        assert option in result.output
