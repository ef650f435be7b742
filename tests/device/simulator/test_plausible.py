"""Power-on values an installer would call sensible."""

from __future__ import annotations

from device.modbus.registermap import load_map
from device.simulator import Simulator


def test_power_on_values_look_like_a_running_installation() -> None:
    deye = Simulator(load_map("deye_hybrid_1p")).image
    assert deye.get("grid_voltage") == 230.0
    assert deye.get("battery_voltage") == 51.2
    assert deye.get("grid_frequency") == 50.0
    assert deye.regmap.registers["run_state"].enum[int(deye.get("run_state"))] == "normal"
    huawei = Simulator(load_map("huawei_sun2000_luna2000")).image
    assert huawei.regmap.registers["device_status"].enum[int(huawei.get("device_status"))] == "on_grid"
    # Settings stay inside their limits: Huawei's charging cutoff allows only 90..100 %.
    assert 90.0 <= huawei.get("charging_cutoff_soc") <= 100.0
