"""Recognising the semantic mode from the registers, for every shipped map."""

from __future__ import annotations

import pytest

from device.modbus.mapmodel import MODES, RegisterMap
from device.modbus.registermap import available_maps, load_map
from device.simulator.image import RegisterImage
from device.simulator.modes import apply_control, recognise
from device.simulator.plausible import plausible_exponent, plausible_value


@pytest.fixture(params=sorted(available_maps()))
def regmap(request: pytest.FixtureRequest) -> RegisterMap:
    return load_map(request.param)


def powered_on(regmap: RegisterMap) -> RegisterImage:
    """An image with the simulator's power-on values (a battery voltage to convert power with)."""
    image = RegisterImage(regmap)
    for reg in regmap.registers.values():  # scale factors first: the values depend on them
        if reg.scale_factor is not None:
            image.set(reg.scale_factor, plausible_exponent(reg))
    for reg in regmap.registers.values():
        if not any(r.scale_factor == reg.name for r in regmap.registers.values()):
            image.set(reg.name, plausible_value(image.resolved(reg)))
    return image


@pytest.mark.parametrize("mode", MODES)
def test_each_control_is_recognised_with_its_parameters(regmap: RegisterMap, mode: str) -> None:
    image = powered_on(regmap)
    params = {name: (spec.min + spec.max) // 2 for name, spec in regmap.controls[mode].params.items()}
    apply_control(image, regmap, mode, **params)
    active = recognise(regmap, image)
    assert active.name == mode
    # A parameter comes back to within one step of its register (Deye: 1 A = 50 W; GoodWe:
    # 1 % of the rated power; SunSpec: the scale factor's step of a percentage of WChaMax).
    steps = [abs(image.resolved(regmap.registers[w.register]).scale / w.factor)
             * (image.get(w.divide_by) if w.divide_by else 1.0)
             for w in regmap.controls[mode].writes if w.param is not None]
    assert active.params == pytest.approx(params, abs=max(steps, default=0.0))


def test_a_half_written_control_is_the_firmware_default(regmap: RegisterMap) -> None:
    image = powered_on(regmap)
    apply_control(image, regmap, "self_consumption")
    charge = regmap.controls["charge"]
    apply_control(image, regmap, "charge", power_w=1000)
    assert recognise(regmap, image).name == "charge"
    first = next(w for w in charge.writes if w.param is None and w.value is not None)
    reg = regmap.registers[first.register]
    other = next(v for v in (reg.min, reg.max, 0.0, 1.0) if v is not None and v != first.value)
    image.set(first.register, other)
    assert recognise(regmap, image).name != "charge"
