"""Time-of-use programmes as Deye/Sunsynk firmware runs them.

A programme ``N`` is the registers ``progN_<setting>``; ``progN_time`` (unit ``hhmm``) is its start.
Programme N runs from its start until the next programme's start; the last one runs on over
midnight until the first one's start. Where starts are equal the later programme wins (the earlier
one has no time to run), so ``00:00, 23:59, 23:59, …`` leaves programmes 2-5 never running and
programme 6 running from 23:59. Only the running programme's settings (power, SOC target, charge
source) steer the battery: a control that set programme 1 alone does nothing once another runs.
"""

from __future__ import annotations

import re

from device.modbus.mapmodel import RegisterMap
from device.simulator.image import RegisterImage

_PROGRAMME = re.compile(r"^prog(\d+)_(\w+)$")


def programmes(regmap: RegisterMap) -> dict[int, dict[str, str]]:
    """Programme number → setting → register name, for maps with ``progN_time`` (unit hhmm)."""
    found: dict[int, dict[str, str]] = {}
    for name in regmap.registers:
        match = _PROGRAMME.match(name)
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(2)] = name
    return {n: regs for n, regs in sorted(found.items())
            if "time" in regs and regmap.registers[regs["time"]].unit == "hhmm"}


def running(regmap: RegisterMap, image: RegisterImage, hhmm: int) -> int | None:
    """The programme running at local time ``hhmm`` (None if the map has none)."""
    starts = {n: image.get(regs["time"]) for n, regs in programmes(regmap).items()}
    if not starts:
        return None
    started = [n for n, start in starts.items() if start <= hhmm]
    if not started:  # before the first start of the day: the programme running over midnight
        return max(starts, key=lambda n: (starts[n], n))
    return max(started, key=lambda n: (starts[n], n))


def idle_programme_registers(regmap: RegisterMap, image: RegisterImage, hhmm: int | None) -> set[str]:
    """Registers that do not steer the battery at ``hhmm``: the start times (they only choose the
    running programme) and every setting of the programmes not running."""
    if hhmm is None:
        return set()
    now = running(regmap, image, hhmm)
    return {name for n, regs in programmes(regmap).items()
            for setting, name in regs.items() if setting == "time" or n != now}
