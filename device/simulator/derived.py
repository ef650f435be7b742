"""Registers that follow from the simulated flows besides the roles, so that every value an
installer reads agrees with the others: the battery's current from its power and voltage, each
PV string's voltage and current from its power (0 V and 0 A at night), the inverter's AC power.
Registers not derived here keep their power-on values (:mod:`device.simulator.plausible`)."""

from __future__ import annotations

from device.modbus.mapmodel import RegisterMap
from device.simulator.image import RegisterImage
from device.simulator.physics import Flows

#: A PV string's voltage at its maximum power point while the sun is on it.
PV_MPP_V = 380.0
#: Below this a string produces nothing: its voltage and current read 0.
PV_DARK_W = 1.0


def show_flows(image: RegisterImage, regmap: RegisterMap, flows: Flows) -> None:
    """Write the registers derived from ``flows`` into ``image`` (after its roles are set)."""
    registers = regmap.registers
    strings = [name.removesuffix("_voltage") for name, reg in registers.items()
               if name.endswith("_voltage") and "pv" in name.lower() and f"{name.removesuffix('_voltage')}_current" in registers]
    for string in strings:
        power = (image.get(f"{string}_power") if f"{string}_power" in registers
                 else flows.pv_w / len(strings))
        volts = PV_MPP_V if power >= PV_DARK_W else 0.0
        image.set(f"{string}_voltage", volts)
        image.set(f"{string}_current", power / volts if volts else 0.0)
    battery_role = regmap.roles.get("battery_w")
    sign = 1.0 if battery_role is None or battery_role.terms[0][1] > 0 else -1.0  # as the battery's power register
    for name, reg in registers.items():
        lowered = name.lower()
        if name.endswith("_current") and ("bat" in lowered or "bms" in lowered):
            voltage = f"{name.removesuffix('_current')}_voltage"
            volts = image.get(voltage) if voltage in registers else 0.0
            if volts > 0:  # an unsigned current (Sungrow 13020) is the magnitude
                amps = sign * flows.battery_w / volts
                image.set(name, abs(amps) if reg.type.startswith("U") else amps)
        elif reg.unit == "W" and not reg.writable and "inverter" in lowered and name not in _role_registers(regmap):
            image.set(name, flows.pv_w + flows.battery_w)  # what the inverter puts on the AC side


def _role_registers(regmap: RegisterMap) -> set[str]:
    return {name for spec in regmap.roles.values() for name in spec.registers}
