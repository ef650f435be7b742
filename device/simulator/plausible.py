"""Power-on values for registers the physics does not drive (voltages, settings, states).

An installer checking "does every value read sensibly" against the simulator should see a grid
at 230 V and 50 Hz, a battery bank near 51 V, settings inside their limits — not zeros. The
guesses go by unit and name; the register's own ``min``/``max`` and type always win.
"""

from __future__ import annotations

from device.modbus.mapmodel import Register
from device.simulator.image import representable

_BY_UNIT = {"V": 230.0, "A": 5.0, "Hz": 50.0, "°C": 25.0, "%": 50.0, "PF": 1.0}
RATED_W = 5000.0  # the simulated inverter's nameplate: PhysicsSettings' default AC limit
_RUNNING_WORDS = ("normal", "running", "on_grid", "on-grid", "on grid", "operating", "mppt", "grid")


def plausible_value(reg: Register) -> float:
    if reg.enum:  # a status reads "running"/"on grid"; a setting its first choice
        return float(min(reg.enum)) if reg.writable else running_state(reg)
    if reg.writable and reg.unit in ("A", "W") and reg.max is not None:
        return reg.max  # a limit as rated: a current or power limit must not throttle the battery
    name = reg.name.lower()
    value = _BY_UNIT.get(reg.unit, 0.0)
    if reg.unit == "W" and "rated" in name:
        value = RATED_W  # a nameplate power (GoodWe 35001): controls give percentages of it
    if reg.unit == "V" and ("bat" in name or "bms" in name):
        value = 51.2
    elif reg.unit == "V" and "pv" in name:
        value = 380.0
    return representable(reg, value)


#: The scale factor (power of ten) a SunSpec device would choose for a value of each unit.
_EXPONENT_BY_UNIT = {"V": -1, "A": -2, "Hz": -2, "°C": -1, "%": -1}


def plausible_exponent(reg: Register) -> int:
    """The scale factor the simulated device reports for ``reg``: tenths or hundredths for
    voltages, currents, frequencies, temperatures and percentages, whole watts and watt-hours."""
    return _EXPONENT_BY_UNIT.get(reg.unit, 0)


def running_state(reg: Register) -> float:
    """The enum value meaning "running normally" (else the register's plausible value)."""
    for word in _RUNNING_WORDS:
        for key, label in sorted(reg.enum.items()):
            if word in label.lower():
                return float(key)
    return plausible_value(reg) if not reg.enum else float(min(reg.enum))  # no running word: the first
