"""Plausibility rules: is a register value, and are the roles together, what a working inverter shows?

Verdicts go by what the map declares (enum values, the register's ``min``/``max``), then by unit
with the bands below (a grid voltage, a battery bank, a PV string), then for the roles: SOC
0–100 %, counters never negative, and the power balance load ≈ pv + grid + battery, which is
what exposes a wrong sign or scale in a map.
"""

from __future__ import annotations

import math

from device.commission.report import Check, Verdict
from device.modbus.mapmodel import Register, RegisterMap

# Plausibility bands: (low, high) ranges any of which is fine, by unit.
GRID_V = ((184.0, 264.5),)  # 230 V −20 %/+15 %
BATTERY_V = ((40.0, 60.0), (80.0, 1000.0))  # 48 V low-voltage bank, or a high-voltage stack
PV_V = ((0.0, 1000.0),)  # 0 at night; 1000 V is the residential string limit
FREQUENCY_HZ = ((47.5, 52.5), (57.0, 63.0))  # 50 Hz and 60 Hz grids
TEMPERATURE_C = ((-30.0, 90.0),)
CURRENT_A = ((-1000.0, 1000.0),)
POWER_W = ((-100_000.0, 100_000.0),)
# load ≈ pv + grid + battery: the inverter's own use, conversion losses and reading the blocks
# a few milliseconds apart leave a gap; more than this means a sign or a scale is wrong.
BALANCE_BASE_W = 150.0
BALANCE_SHARE = 0.10


def judge(regmap: RegisterMap, reg: Register, value: float | None) -> Check:
    """The verdict on one register value: its enum, its declared limits, then its unit's band."""
    def check(verdict: Verdict, reason: str = "") -> Check:
        return Check(reg.name, value, reg.unit, verdict, reason)

    if value is None:
        return check("fail", "not read (the block failed)")
    if not math.isfinite(value):
        return check("fail", "not a finite number")
    if reg.enum:
        label = reg.enum.get(int(value)) if value == int(value) else None
        if label is None:
            return check("fail", f"unknown code {value:g}; known: "
                         + ", ".join(f"{k} {v}" for k, v in sorted(reg.enum.items())))
        return check("ok", label)
    if (reg.min is not None and value < reg.min) or (reg.max is not None and value > reg.max):
        return check("fail", f"outside the register's range {reg.min:g}..{reg.max:g}"
                     if reg.min is not None and reg.max is not None else "outside the register's range")
    bands = _bands(regmap, reg)
    if bands is None:
        return check("ok" if reg.min is not None or reg.max is not None else "unchecked",
                     "within the register's range" if reg.min is not None or reg.max is not None else "")
    if any(lo <= value <= hi for lo, hi in bands):
        return check("ok")
    if value == 0 and reg.unit in ("V", "Hz") and _kind(reg) == "grid":
        return check("warn", "no grid? (0 is expected only off-grid or during a power cut)")
    shown = " or ".join(f"{lo:g}..{hi:g}" for lo, hi in bands)
    return check("fail", f"expected {shown} {reg.unit}")


def _kind(reg: Register) -> str:
    name = reg.name.lower()
    if "pv" in name:
        return "pv"
    if "bat" in name or "bms" in name:
        return "battery"
    return "grid"


def _non_negative(regmap: RegisterMap) -> set[str]:
    """Registers that alone (or summed with like terms) make ``pv_w`` or ``load_w``: never < 0."""
    names: set[str] = set()
    for role in ("pv_w", "load_w"):
        spec = regmap.roles.get(role)
        if spec is not None and all(factor > 0 for _, factor in spec.terms):
            names.update(spec.registers)
    return names


def _bands(regmap: RegisterMap, reg: Register) -> tuple[tuple[float, float], ...] | None:
    unit = reg.unit
    if unit == "%":
        return ((0.0, 100.0),)
    if unit == "V":
        return {"pv": PV_V, "battery": BATTERY_V}.get(_kind(reg), GRID_V)
    if unit == "Hz":
        return FREQUENCY_HZ
    if unit == "°C":
        return TEMPERATURE_C
    if unit == "Wh":
        return ((0.0, math.inf),)
    if unit == "A":
        return CURRENT_A
    if unit == "W":
        return ((0.0, POWER_W[0][1]),) if reg.name in _non_negative(regmap) else POWER_W
    return None


def judge_roles(regmap: RegisterMap, roles: dict[str, float | None]) -> list[Check]:
    """Role rules: SOC 0–100, pv/load ≥ 0, energy counters ≥ 0, and the power balance."""
    checks: list[Check] = []

    def add(name: str, value: float | None, unit: str, ok: bool, rule: str) -> None:
        verdict: Verdict = "ok" if ok and value is not None else "fail"
        checks.append(Check(name, value, unit, verdict, "not read" if value is None else rule))

    for role, value in roles.items():
        if role == "soc_pct":
            add(role, value, "%", value is not None and 0 <= value <= 100, "0..100 %")
        elif role in ("pv_w", "load_w"):
            add(role, value, "W", value is not None and value >= 0, "never below 0 W")
        elif role.startswith("energy_"):
            add(role, value, "Wh", value is not None and value >= 0, "a counter, never below 0")
    flows = [roles.get(r) for r in ("load_w", "pv_w", "grid_w", "battery_w")]
    if all(v is not None for v in flows):
        load, pv, grid, battery = (float(v) for v in flows if v is not None)
        supply = pv + grid + battery
        tolerance = BALANCE_BASE_W + BALANCE_SHARE * (abs(pv) + abs(grid) + abs(battery) + abs(load))
        ok = abs(load - supply) <= tolerance
        add("balance", round(load - supply, 1), "W", ok,
            f"load {load:g} W vs pv + grid + battery {supply:g} W, tolerance {tolerance:.0f} W"
            + ("" if ok else ": a sign or scale in the map is wrong, or a meter is missing"))
    else:
        add("balance", None, "W", False, "")
    return checks
