"""Every simulated register agrees with the simulated flows, on every shipped map: commissioning's
rules (single registers, roles, and the contradictions between them) find nothing wrong by day,
by night and while charging from the grid."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from device.commission.rules import judge, judge_consistency, judge_roles
from device.modbus import codec
from device.modbus.registermap import available_maps, load_map
from device.simulator import Simulator
from device.simulator.modes import apply_control, recognise

MAPS = sorted(available_maps())
NOON = datetime(2027, 6, 21, 11, 0, tzinfo=UTC).timestamp()  # 13:00 in Berlin, the sun high
NIGHT = datetime(2027, 6, 21, 23, 0, tzinfo=UTC).timestamp()
CASES = [("noon", NOON, "self_consumption", {}), ("night", NIGHT, "self_consumption", {}),
         ("charging", NIGHT, "charge", {"power_w": 3000.0})]


def simulate(map_name: str, when: float, mode: str, params: dict[str, float]) -> Simulator:
    sim = Simulator(load_map(map_name), start_time=when)
    apply_control(sim.image, sim.regmap, mode, **params)  # as the bridge's control writes leave them
    sim.active = recognise(sim.regmap, sim.image, sim.local_hhmm())
    assert sim.active.name == mode
    sim.step()
    return sim


@pytest.mark.parametrize("map_name", MAPS)
@pytest.mark.parametrize(("case", "when", "mode", "params"), CASES, ids=[c[0] for c in CASES])
def test_commissioning_finds_no_contradiction_in_the_simulator(
    map_name: str, case: str, when: float, mode: str, params: dict[str, float]
) -> None:
    sim = simulate(map_name, when, mode, params)
    regmap = sim.regmap
    values: dict[str, float | None] = {n: sim.image.get(n) for n, r in regmap.registers.items() if r.readable}
    roles = codec.semantic(regmap, values)
    checks = ([judge(regmap, regmap.registers[n], v) for n, v in values.items()]
              + judge_roles(regmap, roles) + judge_consistency(regmap, values, roles))
    assert [c for c in checks if c.verdict == "fail"] == []
    names = {c.name for c in checks}
    assert "pv_v_times_i" in names  # the products were judged (the battery's where it has V and A)
    if any(n.endswith("_current") and "bat" in n for n in values):
        assert "battery_v_times_i" in names
    if case == "charging":
        assert roles["battery_w"] == pytest.approx(-3000.0, abs=1.0)
    if case == "night":
        pv = [n for n in values if n.startswith("pv") and n.endswith(("_voltage", "_current"))]
        assert pv and all(values[n] == 0.0 for n in pv)  # no sun: no string voltage, no current
    if case == "noon":
        assert roles["pv_w"] is not None and roles["pv_w"] > 1000
