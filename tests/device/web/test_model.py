from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from device.modbus.registermap import load_map
from device.store import Reading
from device.web.model import day_bounds, raw_value, registers, tomorrow_state

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize("day, slots", [(date(2025, 3, 30), 92), (date(2025, 10, 26), 100), (date(2025, 6, 1), 96)])
def test_local_days_have_92_96_or_100_slots(day: date, slots: int) -> None:
    start, end = day_bounds(day, BERLIN)
    assert (end - start) // 900 == slots


@pytest.mark.parametrize("known, hour, state", [(96, 9, "known"), (0, 9, "pending"), (0, 15, "late")])
def test_tomorrow_state(known: int, hour: int, state: str) -> None:
    now = datetime(2025, 6, 1, hour, 0, tzinfo=BERLIN).timestamp()
    assert tomorrow_state(known, BERLIN, now, (14, 0)) == state


def test_register_rows_have_live_and_raw_values() -> None:
    regmap = load_map("deye_hybrid_1p")
    rows = {r["name"]: r for r in registers(regmap, Reading(0, {}, {"battery_temperature": 25.0, "pv1_voltage": 350.2}))}
    assert set(rows) == set(regmap.registers)
    assert rows["battery_temperature"]["raw"] == 1250 and rows["battery_temperature"]["unit"] == "°C"
    assert rows["pv1_voltage"]["raw"] == 3502
    assert rows["battery_soc"]["value"] is None and rows["battery_soc"]["raw"] is None
    assert raw_value(regmap.registers["battery_soc"], 1e9) is None  # not representable: no crash
