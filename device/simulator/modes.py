"""Which semantic control the simulated firmware is in, judged from its registers alone.

Real firmware has no notion of our "modes": it has settings. After every write the simulator
asks which of the map's controls the settings now amount to: the control whose literal writes
all match the current register values, the one with the most literal writes winning (a forced
charge program also satisfies a weaker pattern). Its parameters are read back through the
write's factor and offset. Anything else is the firmware default, self-consumption, which is
what a half-written or foreign configuration does on a real inverter too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from device.modbus.mapmodel import RegisterMap, WriteSpec
from device.simulator.image import RegisterImage
from device.simulator.tou import idle_programme_registers

DEFAULT_MODE = "self_consumption"


@dataclass(frozen=True)
class ActiveMode:
    name: str = DEFAULT_MODE
    params: dict[str, float] = field(default_factory=dict)


def _matches(image: RegisterImage, write: WriteSpec) -> bool:
    """The register holds the write's literal value (only its ``bits``, for a bit field)."""
    assert write.value is not None
    if write.bits is not None:
        return int(image.get(write.register)) & write.bits == int(write.value)
    reg = image.resolved(image.regmap.registers[write.register])
    return abs(image.get(write.register) - write.value) <= abs(reg.scale) / 2


def recognise(regmap: RegisterMap, image: RegisterImage, hhmm: int | None = None) -> ActiveMode:
    """The control the registers amount to; ``hhmm`` (the inverter's local clock) decides which
    time-of-use programme runs, and only that programme's settings count (see :mod:`tou`)."""
    idle = idle_programme_registers(regmap, image, hhmm)
    best: tuple[int, str] | None = None
    for name, control in regmap.controls.items():
        literal = [w for w in control.writes if w.literal and w.register not in idle]
        if all(_matches(image, w) for w in literal) and (best is None or len(literal) > best[0]):
            best = (len(literal), name)
    if best is None:
        return ActiveMode()
    control = regmap.controls[best[1]]
    params: dict[str, float] = {}
    # a write without divisor gives the param exactly, so it wins over one rounded by a divisor
    for w in sorted(control.writes, key=lambda w: w.divide_by is None):
        if w.param is not None and w.factor != 0 and w.register not in idle:
            divisor = image.get(w.divide_by) if w.divide_by else 1.0
            params[w.param] = (image.get(w.register) * divisor - w.offset) / w.factor
    return ActiveMode(best[1], params)


def apply_control(image: RegisterImage, regmap: RegisterMap, mode: str, **params: float) -> None:
    """Set the registers of a control directly (the simulator's power-on settings, tests),
    reading what it needs (bit fields, sources, divisors) from the image as the bridge would."""
    for write in regmap.controls[mode].writes:
        readings = {name: image.get(name) for name in write.inputs}
        image.set(write.register, write.resolve(params, readings))
