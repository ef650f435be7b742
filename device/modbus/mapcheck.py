"""``nattery maps check``: what someone adding an inverter family runs before shipping a map.

The loader (:mod:`~device.modbus.registermap`) already refuses a map that cannot work: schema,
types, address overlaps, roles, controls writing read-only registers or values their register
cannot hold, indistinguishable controls. It stops at the first error. The checker reports that
error, and on a map that loads adds what a map needs to be *safe on real hardware*, all at once:
identity words (of each device the map names), cited sources, every writable register bounded, sane ranges, time-of-use
programmes whose start times ascend. Each problem is one line: ``file: entry: reason``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

from device.modbus.mapmodel import Control, RegisterMap
from device.modbus.registermap import MapError, available_maps, load_map

MAX_POWER_W = 100_000.0  # no residential inverter controls more; a larger param is a typo


def check_file(path: Path) -> list[str]:
    """The problems of one map file (empty if it is fit to ship)."""
    try:
        regmap = load_map(path)
    except MapError as exc:
        return [str(exc)]
    return [f"{path}: {entry}: {reason}" for entry, reason in _lint(regmap)]


def check_files(paths: Iterable[Path] | None = None) -> dict[Path, list[str]]:
    """Problems per file; ``paths`` default to every shipped map."""
    return {path: check_file(path) for path in (paths or available_maps().values())}


def _lint(regmap: RegisterMap) -> Iterable[tuple[str, str]]:
    if not regmap.identity:
        yield "identity", "missing: name the words that prove the family (device type, model name)"
    if not regmap.sources:
        yield "sources", "missing: cite the protocol documents the map was checked against"
    for device, unit in regmap.protocol.devices:  # a further device behind the link (a meter)
        where = f"protocol.devices.{device}"
        if not any(reg.device == device and reg.readable for reg in regmap.registers.values()):
            yield where, f"unit {unit}: no readable register of the map is on it"
        if not any(check.device == device for check in regmap.identity):
            yield where, f"unit {unit}: no identity words prove it is the device the map expects"
    for reg in regmap.registers.values():
        where = f"registers[{reg.name}]"
        if reg.writable and (reg.min is None or reg.max is None):
            yield where, "writable without min and max: the firmware's range must be stated"
        if reg.min is not None and reg.max is not None and reg.min > reg.max:
            yield where, f"min {reg.min:g} above max {reg.max:g}"
        if reg.enum and reg.writable and reg.min is not None and reg.max is not None:
            outside = [k for k in reg.enum if not reg.min <= k <= reg.max]
            if outside:
                yield where, f"enum values {outside} outside min..max {reg.min:g}..{reg.max:g}"
    for control in regmap.controls.values():
        yield from _lint_control(regmap, control)


def _lint_control(regmap: RegisterMap, control: Control) -> Iterable[tuple[str, str]]:
    where = f"controls.{control.name}"
    for pname, spec in control.params.items():
        if spec.unit == "W" and (spec.min < 0 or spec.max > MAX_POWER_W):
            yield f"{where}.params.{pname}", f"{spec.min:g}..{spec.max:g} W: a power is 0..{MAX_POWER_W:g} W"
    # Time-of-use programmes (registers with unit ``hhmm``): the firmware orders programmes by
    # start time, so equal or descending times (in address order) leave empty windows.
    times = sorted((regmap.registers[w.register].address, w.register, w.value) for w in control.writes
                    if w.value is not None and regmap.registers[w.register].unit == "hhmm")
    for (_, prev, a), (_, name, b) in itertools.pairwise(times):
        if b <= a:
            yield where, f"programme start times must ascend: {prev} {a:04.0f} then {name} {b:04.0f}"
    for _, name, value in times:
        if value % 100 >= 60:
            yield where, f"{name} {value:04.0f} is not a time of day (HHMM)"
