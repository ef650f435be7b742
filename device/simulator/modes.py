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

from device.modbus.mapmodel import RegisterMap
from device.simulator.image import RegisterImage

DEFAULT_MODE = "self_consumption"


@dataclass(frozen=True)
class ActiveMode:
    name: str = DEFAULT_MODE
    params: dict[str, float] = field(default_factory=dict)


def _matches(image: RegisterImage, register: str, value: float) -> bool:
    reg = image.regmap.registers[register]
    return abs(image.get(register) - value) <= abs(reg.scale) / 2


def recognise(regmap: RegisterMap, image: RegisterImage) -> ActiveMode:
    best: tuple[int, str] | None = None
    for name, control in regmap.controls.items():
        literal = control.literal_writes
        if all(_matches(image, reg, value) for reg, value in literal.items()):
            if best is None or len(literal) > best[0]:
                best = (len(literal), name)
    if best is None:
        return ActiveMode()
    control = regmap.controls[best[1]]
    params = {
        w.param: (image.get(w.register) - w.offset) / w.factor
        for w in control.writes
        if w.param is not None and w.factor != 0
    }
    return ActiveMode(best[1], params)


def apply_control(image: RegisterImage, regmap: RegisterMap, mode: str, **params: float) -> None:
    """Set the registers of a control directly (the simulator's power-on settings, tests)."""
    for write in regmap.controls[mode].writes:
        image.set(write.register, write.resolve(params))
