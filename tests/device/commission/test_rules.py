"""Plausibility verdicts on single registers and on the roles together."""

from __future__ import annotations

from collections.abc import Mapping

from device.commission.report import Check
from device.commission.rules import judge, judge_consistency, judge_roles
from tests.device.commission.conftest import shipped


def test_role_rules() -> None:
    regmap = shipped("deye_hybrid_1p")
    roles: dict[str, float | None] = {"soc_pct": 101.0, "pv_w": 2000.0, "grid_w": -500.0, "battery_w": -1000.0,
                                      "load_w": 520.0, "energy_import_wh": -1.0, "energy_export_wh": 0.0}
    verdicts = {c.name: c.verdict for c in judge_roles(regmap, roles)}
    assert verdicts == {"soc_pct": "fail", "pv_w": "ok", "load_w": "ok", "energy_import_wh": "fail",
                        "energy_export_wh": "ok", "balance": "ok"}
    roles["load_w"] = 1500.0  # 1000 W missing: more than 150 W + 10 % of the flows
    assert {c.name: c.verdict for c in judge_roles(regmap, roles)}["balance"] == "fail"
    roles["grid_w"] = None
    balance = [c for c in judge_roles(regmap, roles) if c.name == "balance"]
    assert balance == [Check("balance", None, "W", "fail", "not read")]


def test_register_rules() -> None:
    regmap = shipped("deye_hybrid_1p")
    regs = regmap.registers

    def verdict(name: str, value: float | None) -> str:
        return judge(regmap, regs[name], value).verdict

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


def test_signed_percentages_and_a_load_summed_from_other_roles() -> None:
    """A GoodWe eco-mode power is a signed % of the rated power (-60 % charges), not a state of
    charge; SunSpec's load is inverter output + grid meter, both of which may be negative (the
    inverter takes power from the AC side while it charges from the grid), PV strings may not."""
    goodwe, sunspec = shipped("goodwe_et_hybrid"), shipped("fronius_gen24")
    assert judge(goodwe, goodwe.registers["eco1_power"], -60).verdict == "ok"
    assert judge(goodwe, goodwe.registers["eco1_power"], -120).verdict == "fail"
    assert judge(goodwe, goodwe.registers["battery_soc"], 150).verdict == "fail"
    assert judge(sunspec, sunspec.registers["inverter_power"], -3000).verdict == "ok"
    assert judge(sunspec, sunspec.registers["meter_power"], -2000).verdict == "ok"
    assert judge(sunspec, sunspec.registers["pv1_power"], -5).verdict == "fail"


def _verdicts(map_name: str, values: Mapping[str, float | None], roles: Mapping[str, float | None]) -> dict[str, str]:
    return {c.name: f"{c.verdict}: {c.reason}" for c in judge_consistency(shipped(map_name), values, roles)}


def test_a_state_that_contradicts_the_flows_fails() -> None:
    """What the issue saw: off-grid while importing 3.8 kW; battery and meter offline while the battery moved 803 W."""
    deye = _verdicts("deye_hybrid_1p", {"grid_connected": 0}, {"grid_w": 3800.0, "battery_w": 0.0})
    assert deye["grid_connected"] == "fail: says off_grid while the grid moves 3800 W"
    assert _verdicts("deye_hybrid_1p", {"grid_connected": 0}, {"grid_w": 0.0})["grid_connected"].startswith("ok")
    assert _verdicts("deye_hybrid_1p", {"grid_connected": 1}, {"grid_w": 3800.0}) == {}
    huawei = _verdicts("huawei_sun2000_luna2000", {"battery_status": 0, "meter_status": 0},
                       {"battery_w": -803.0, "grid_w": 1200.0})
    assert huawei["battery_status"] == "fail: says offline while the battery moves 803 W"
    assert huawei["meter_status"] == "fail: says offline while the grid moves 1200 W"


def test_a_limit_below_the_measured_power_fails() -> None:
    huawei = _verdicts("huawei_sun2000_luna2000", {"max_charging_power": 0, "max_discharging_power": 0},
                       {"battery_w": -803.0})
    assert huawei["max_charging_power"] == "fail: charge limit 0 W, but the battery's charge is 803 W"
    assert huawei["max_discharging_power"].startswith("ok")  # nothing discharges
    deye = _verdicts("deye_hybrid_1p", {"battery_voltage": 51.0, "max_charge_current": 5, "max_sell_power": 0},
                     {"battery_w": -3000.0})
    assert deye["max_charge_current"] == "fail: charge limit 5 A × 51 V = 255 W, but the battery's charge is 3000 W"
    assert "max_sell_power" not in deye  # not a battery limit
    assert _verdicts("deye_hybrid_1p", {"battery_voltage": 51.0, "max_charge_current": 100},
                     {"battery_w": -3000.0})["max_charge_current"].startswith("ok")


def test_voltage_times_current_must_match_the_power() -> None:
    battery = _verdicts("deye_hybrid_1p", {"battery_voltage": 51.0, "battery_current": 5.0}, {"battery_w": -3000.0})
    assert battery["battery_v_times_i"] == "fail: battery 51 V × 5 A = 255 W vs battery_w 3000 W"
    assert _verdicts("deye_hybrid_1p", {"battery_voltage": 51.0, "battery_current": -58.8},
                     {"battery_w": -3000.0})["battery_v_times_i"].startswith("ok")
    night = {"pv1_voltage": 380.0, "pv1_current": 5.0, "pv2_voltage": 380.0, "pv2_current": 5.0,
             "pv1_power": 0.0, "pv2_power": 0.0}
    assert _verdicts("deye_hybrid_1p", night, {"pv_w": 0.0})["pv_v_times_i"] == (
        "fail: pv1 380 V × 5 A + pv2 380 V × 5 A = 3800 W vs pv1_power + pv2_power 0 W")
    huawei = _verdicts("huawei_sun2000_luna2000", {"pv1_voltage": 380.0, "pv1_current": 5.0}, {"pv_w": 0.0})
    assert huawei["pv_v_times_i"].startswith("fail: pv1 380 V × 5 A = 1900 W vs pv_w 0 W")
