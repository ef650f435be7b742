"""Plausibility verdicts on single registers and on the roles together."""

from __future__ import annotations

from device.commission.report import Check
from device.commission.rules import judge, judge_roles
from device.modbus.registermap import load_map


def test_role_rules() -> None:
    regmap = load_map("deye_hybrid_1p")
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
    regmap = load_map("deye_hybrid_1p")
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
