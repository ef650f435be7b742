"""Deye time-of-use programmes as the firmware runs them: the programme whose start has come
steers the battery, so a control that sets programme 1 alone (or squeezes programmes 2-6 onto one
start time) does nothing once another programme runs."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from device.modbus.registermap import load_map
from device.simulator import Simulator
from device.simulator.modes import apply_control
from device.simulator.tou import running

BERLIN = ZoneInfo("Europe/Berlin")


def at(hhmm: str) -> float:
    """Simulated epoch at that local time on a summer day in Berlin (the simulator's default place)."""
    return datetime.fromisoformat(f"2025-06-15T{hhmm}").replace(tzinfo=BERLIN).timestamp()


@pytest.mark.parametrize(("starts", "clock", "programme"), [
    ([0, 2355, 2356, 2357, 2358, 2359], 1200, 1),
    ([0, 2355, 2356, 2357, 2358, 2359], 2356, 3),
    ([0, 2355, 2356, 2357, 2358, 2359], 2359, 6),
    ([0, 2359, 2359, 2359, 2359, 2359], 2359, 6),  # equal starts: the later programme runs
    ([600, 1200, 1300, 1400, 1500, 1600], 300, 6),  # before the first start: last night's programme
])
def test_the_running_programme(starts: list[int], clock: int, programme: int) -> None:
    sim = Simulator(load_map("deye_hybrid_1p"))
    for i, start in enumerate(starts, 1):
        sim.image.set(f"prog{i}_time", start)
    assert running(sim.regmap, sim.image, clock) == programme


@pytest.mark.parametrize("family", ["deye_hybrid_1p", "deye_hybrid_3p"])
@pytest.mark.parametrize("clock", ["00:00:30", "12:00:00", "23:55:30", "23:59:30"])
def test_the_maps_charge_holds_all_day(family: str, clock: str) -> None:
    sim = Simulator(load_map(family), start_time=at(clock))
    apply_control(sim.image, sim.regmap, "charge", power_w=2000)
    sim.step()
    assert (sim.mode, sim.mode_params) == ("charge", {"power_w": 2000})


def test_programme_1_alone_stops_charging_when_programme_6_starts() -> None:
    """The old sequence (00:00 then five 23:59, only programme 1 set) charges by day, not at 23:59."""
    regmap = load_map("deye_hybrid_1p")
    sim = Simulator(regmap, start_time=at("23:58:50"))
    apply_control(sim.image, regmap, "self_consumption")
    for i, start in enumerate([0, 2359, 2359, 2359, 2359, 2359], 1):
        sim.image.set(f"prog{i}_time", start)
    for name, value in [("prog1_soc", 100), ("prog1_power", 2000), ("prog1_charge", 1),
                        ("grid_charge_enable", 1), ("limit_control", 2), ("solar_sell", 1),
                        ("grid_charge_current", 39), ("time_of_use", 255)]:
        sim.image.set(name, value)
    sim.step()
    assert sim.mode == "charge"  # 23:58: programme 1 still runs
    sim._epoch = at("23:59:10")  # the clock moves on (the simulator is not serving: set its epoch)
    sim.step()
    assert sim.mode == "self_consumption"  # programme 6 (never written) runs from 23:59
