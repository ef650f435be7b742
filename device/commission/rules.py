"""Plausibility rules: is a register value, and are the roles together, what a working inverter shows?

Verdicts go by what the map declares (enum values, the register's ``min``/``max``), then by unit
with the bands below (a grid voltage, a battery bank, a PV string), then for the roles: SOC
0–100 %, counters never negative, and the power balance load ≈ pv + grid + battery, which is
what exposes a wrong sign or scale in a map.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

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
        return check("fail", "no value: the block failed, or the inverter reports none (its invalid marker, "
                             "e.g. a meter that is not connected)")
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
    """Registers that alone (or summed with like terms) make ``pv_w`` or ``load_w``: never < 0.

    Not a role summed from registers of other roles (SunSpec: load = inverter output + grid
    meter, where the meter is ``grid_w`` and both may be negative)."""
    names: set[str] = set()
    for role in ("pv_w", "load_w"):
        spec = regmap.roles.get(role)
        others = {n for other, o in regmap.roles.items() if other != role for n in o.registers}
        if spec is not None and all(factor > 0 for _, factor in spec.terms) and not others & set(spec.registers):
            names.update(spec.registers)
    return names


def _bands(regmap: RegisterMap, reg: Register) -> tuple[tuple[float, float], ...] | None:
    unit = reg.unit
    if unit == "%":  # a signed percentage (of a rated power: GoodWe, SunSpec rates) has its own range
        return ((0.0, 100.0),) if reg.min is None or reg.min >= 0 else None
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


# A status, a limit or a V × I that contradicts the measured flows by more than this is wrong.
FLOW_SEEN_W = 100.0
PRODUCT_BASE_W = 100.0
PRODUCT_SHARE = 0.15
#: Enum labels that say a part is not there or not working (judged against its flows).
DOWN_LABELS = ("off_grid", "offline")


def judge_consistency(
    regmap: RegisterMap, values: Mapping[str, float | None], roles: Mapping[str, float | None]
) -> list[Check]:
    """Registers that contradict the measured flows: a state (battery or meter offline, off-grid)
    while power flows there, a power or current limit below the power measured in its direction,
    and voltage × current far from the power (battery; PV strings together)."""
    battery, grid = roles.get("battery_w"), roles.get("grid_w")
    checks: list[Check] = []
    for name, value in values.items():
        reg = regmap.registers.get(name)
        if reg is None or value is None or not math.isfinite(value):
            continue
        if reg.enum and not reg.writable:
            checks += _state_vs_flows(reg, value, battery, grid)
        elif reg.writable and reg.unit in ("W", "A") and battery is not None:
            checks += _limit_vs_power(reg, value, battery, _battery_voltage(regmap, values))
    checks += _products(regmap, values, roles)
    return checks


def _state_vs_flows(reg: Register, value: float, battery: float | None, grid: float | None) -> list[Check]:
    label = reg.enum.get(int(value), "") if value == int(value) else ""
    if label not in DOWN_LABELS:
        return []
    flow, where = (battery, "the battery") if _kind(reg) == "battery" else (grid, "the grid")
    if flow is None or abs(flow) < FLOW_SEEN_W:
        return [Check(reg.name, value, "", "ok", f"{label}, and no power flows at {where}")]
    return [Check(reg.name, value, "", "fail", f"says {label} while {where} moves {abs(flow):.0f} W")]


def _direction(reg: Register) -> str | None:
    """"charge" or "discharge" for a battery limit (max_charge_current, max_discharging_power …)."""
    name = reg.name.lower()
    if not any(word in name for word in ("max", "limit")) or "sell" in name or "grid" in name:
        return None
    if "discharg" in name:
        return "discharge"
    return "charge" if "charg" in name else None


def _limit_vs_power(reg: Register, limit: float, battery_w: float, volts: float | None) -> list[Check]:
    direction = _direction(reg)
    if direction is None:
        return []
    moving = -battery_w if direction == "charge" else battery_w
    if reg.unit == "A":
        if volts is None or volts <= 0:
            return []
        allowed, shown = limit * volts, f"{limit:g} A × {volts:g} V = {limit * volts:.0f} W"
    else:
        allowed, shown = limit, f"{limit:g} W"
    if moving <= allowed + PRODUCT_BASE_W + PRODUCT_SHARE * allowed:
        return [Check(reg.name, limit, reg.unit, "ok", f"{direction} limit {shown}")]
    return [Check(reg.name, limit, reg.unit, "fail",
                  f"{direction} limit {shown}, but the battery's {direction} is {moving:.0f} W")]


def _battery_voltage(regmap: RegisterMap, values: Mapping[str, float | None]) -> float | None:
    for name, value in values.items():
        reg = regmap.registers.get(name)
        if reg is not None and reg.unit == "V" and _kind(reg) == "battery" and value:
            return value
    return None


def _products(regmap: RegisterMap, values: Mapping[str, float | None], roles: Mapping[str, float | None]) -> list[Check]:
    """V × I of the battery against ``battery_w``, and Σ V × I of the PV strings against their own
    power registers (``pv1_power`` …) where the map has them, else against ``pv_w``."""
    checks = []
    for kind, role in (("battery", "battery_w"), ("pv", "pv_w")):
        power = roles.get(role)
        pairs = _voltage_current_pairs(regmap, values, kind)
        if power is None or not pairs:
            continue
        own = [values.get(f"{name}_power") for name, _, _ in pairs]
        if kind == "pv" and all(part is not None for part in own):
            power, role = sum(part for part in own if part is not None), " + ".join(f"{n}_power" for n, _, _ in pairs)
        product = sum(abs(v * i) for _, v, i in pairs)
        tolerance = PRODUCT_BASE_W + PRODUCT_SHARE * max(abs(power), product)
        names = " + ".join(f"{name} {v:g} V × {i:g} A" for name, v, i in pairs)
        ok = abs(product - abs(power)) <= tolerance
        checks.append(Check(f"{kind}_v_times_i", round(product, 1), "W", "ok" if ok else "fail",
                            f"{names} = {product:.0f} W vs {role} {abs(power):.0f} W"))
    return checks


def _voltage_current_pairs(
    regmap: RegisterMap, values: Mapping[str, float | None], kind: str
) -> list[tuple[str, float, float]]:
    pairs = []
    for name, volts in values.items():
        reg = regmap.registers.get(name)
        if reg is None or reg.unit != "V" or _kind(reg) != kind or volts is None or not name.endswith("_voltage"):
            continue
        amps = values.get(name.removesuffix("_voltage") + "_current")
        if amps is not None:
            pairs.append((name.removesuffix("_voltage"), volts, amps))
    return pairs
