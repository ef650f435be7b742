from __future__ import annotations

import pytest

from device.energy import SLOT_S, Sample, integrate

T0 = 1_795_000_500  # a slot start (multiple of 900)


def power(ts: float, grid: float = 1000.0, battery: float = -500.0, pv: float = 2000.0, load: float = 500.0,
          **counters: float) -> Sample:
    return Sample(ts, grid, battery, pv, load, counters)


def test_constant_power_integrates_to_exact_watt_hours() -> None:
    samples = [power(T0 - 5 + 5 * i) for i in range(2 * 180 + 3)]
    slots = integrate(samples, T0, T0 + 2 * SLOT_S, max_gap_s=60)
    assert [s["ts"] for s in slots] == [T0, T0 + SLOT_S]
    first = slots[0]
    assert first["import_wh"] == pytest.approx(250.0)  # 1000 W for a quarter hour
    assert first["charge_wh"] == pytest.approx(125.0)
    assert first["pv_wh"] == pytest.approx(500.0)
    assert first["export_wh"] == first["discharge_wh"] == 0.0
    assert (first["samples"], first["covered_s"], first["complete"], first["source"]) == (180, 900.0, 1, "power")


def test_sign_changes_split_import_and_export() -> None:
    samples = [power(T0 + 5 * i, grid=800.0 if i < 90 else -400.0, battery=300.0) for i in range(182)]
    (slot,) = integrate(samples, T0, T0 + SLOT_S, max_gap_s=60)
    assert slot["import_wh"] == pytest.approx(800 * 450 / 3600)
    assert slot["export_wh"] == pytest.approx(400 * 450 / 3600)
    assert slot["discharge_wh"] == pytest.approx(300 * 900 / 3600)


def test_a_gap_is_not_integrated_and_marks_the_slot_incomplete() -> None:
    before = [power(T0 + 5 * i) for i in range(60)]           # 0 .. 295 s
    after = [power(T0 + 600 + 5 * i) for i in range(62)]     # 600 .. 905 s
    (slot,) = integrate(before + after, T0, T0 + SLOT_S, max_gap_s=60)
    assert slot["covered_s"] == pytest.approx(295 + 300)
    assert slot["import_wh"] == pytest.approx(1000 * 595 / 3600, abs=0.001)
    assert slot["complete"] == 0


def test_unread_power_roles_count_as_a_gap() -> None:
    samples = [power(T0 + 5 * i) for i in range(182)]
    samples[10] = Sample(samples[10].ts, None, None, None, None)
    (slot,) = integrate(samples, T0, T0 + SLOT_S, max_gap_s=60)
    assert slot["covered_s"] == pytest.approx(895.0)
    assert slot["complete"] == 0


def test_counters_win_over_power_and_telescope() -> None:
    names = ("import_wh", "export_wh", "charge_wh", "discharge_wh", "pv_wh", "load_wh")
    samples = []
    for i in range(2 * 180 + 2):
        wh = 1000 + (i // 36) * 100.0  # a 0.1 kWh counter, ticking every 3 minutes
        samples.append(power(T0 + 5 * i, **{n: wh for n in names}))
    slots = integrate(samples, T0, T0 + 2 * SLOT_S, max_gap_s=60)
    assert [s["source"] for s in slots] == ["counter", "counter"]
    assert [s["import_wh"] for s in slots] == [500.0, 500.0]
    assert sum(s["pv_wh"] for s in slots) == samples[360].counters["pv_wh"] - samples[0].counters["pv_wh"]


def test_counter_reset_falls_back_to_power_for_that_quantity() -> None:
    samples = [power(T0 + 5 * i, import_wh=5000.0 - (4000 if i > 100 else 0) + i) for i in range(182)]
    (slot,) = integrate(samples, T0, T0 + SLOT_S, max_gap_s=60)
    assert slot["source"] == "power"
    assert slot["import_wh"] == pytest.approx(250.0)


def test_slots_without_any_data_are_left_out() -> None:
    samples = [power(T0 + 5 * i) for i in range(10)] + [power(T0 + 3 * SLOT_S + 5 * i) for i in range(10)]
    slots = integrate(samples, T0, T0 + 4 * SLOT_S, max_gap_s=60)
    assert [s["ts"] for s in slots] == [T0, T0 + 3 * SLOT_S]
    assert all(s["complete"] == 0 for s in slots)
