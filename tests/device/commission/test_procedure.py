"""The whole inverter part: check every register, and the harmless write, verified."""

from __future__ import annotations

from pathlib import Path

from device.commission import commission_inverter
from device.commission.report import WriteCheck
from device.modbus.registermap import load_map
from device.simulator import Simulator
from device.simulator.modes import apply_control, recognise
from tests.conftest import PtyPair
from tests.device.commission.conftest import FAST, NOON, problems, run_inverter, shipped

DEYE = ["deye_hybrid_1p"]  # the scan among every map is test_scan's; here the check and the write


async def test_over_a_serial_pty_scan_check_and_write_pass(pty_pair: PtyPair) -> None:
    sim = Simulator(shipped("huawei_sun2000_luna2000"), baudrate=FAST, start_time=NOON)
    await sim.serve_serial(pty_pair.b)
    try:
        report = await run_inverter(f"serial://{pty_pair.a}", units=[1])  # every map asked where it answers
    finally:
        await sim.close()
    assert report.ok, problems(report)
    assert report.found is not None and report.found.regmap.family == "huawei_sun2000_luna2000"
    readable = [r.name for r in report.found.regmap.telemetry_registers()]
    assert [c.name for c in report.registers] == readable
    assert {c.verdict for c in report.registers} <= {"ok", "unchecked"}
    assert report.write is not None and report.write.ok
    assert sim.stats.functions[16] == 1 and sim.stats.violations == 0


async def test_a_faulty_register_value_is_flagged(deye: tuple[Simulator, str]) -> None:
    sim, port = deye
    sim.image.set("grid_voltage", 500.0)
    sim.image.set("battery_voltage", 12.0)
    report = await run_inverter(port, DEYE)
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
    report = await commission_inverter(port, [load_map(wrong)], timeout_s=0.5, retries=0, write="skip")
    balance = next(c for c in report.roles if c.name == "balance")
    assert balance.verdict == "fail" and "a sign or scale in the map is wrong" in balance.reason
    assert report.found is not None and report.found.regmap.path == wrong


async def test_rewrite_keeps_the_value_and_is_verified(deye: tuple[Simulator, str]) -> None:
    sim, port = deye
    sim.image.set("max_sell_power", 4200)
    report = await run_inverter(port, DEYE, write_register="max_sell_power")
    assert report.write == WriteCheck(
        "rewrite", True, "max_sell_power rewritten with its value 4200 and read back", {"max_sell_power": 4200.0})
    assert sim.image.get("max_sell_power") == 4200 and sim.stats.functions[16] == 1


async def test_self_consumption_puts_the_inverter_in_its_safe_mode(deye: tuple[Simulator, str]) -> None:
    sim, port = deye
    apply_control(sim.image, sim.regmap, "charge", power_w=2000)
    sim.active = recognise(sim.regmap, sim.image)
    assert sim.mode == "charge"
    report = await run_inverter(port, DEYE, write="self_consumption")
    assert report.ok, problems(report)
    assert report.write is not None and report.write.registers == {
        "time_of_use": 0, "grid_charge_enable": 0, "limit_control": 2, "solar_sell": 1}
    assert sim.mode == "self_consumption"


async def test_a_refused_write_fails_commissioning(deye: tuple[Simulator, str]) -> None:
    _, port = deye
    report = await run_inverter(port, DEYE, write_register="run_state")
    assert report.write is not None and not report.write.ok
    assert report.problems == ["write: register 'run_state' is read-only (access 'r')"]
