"""The forcing gate: a forcing setpoint stands only where its gain on the forecast beats what the
measured forecast error would cost, and still gains on a forecast moved against it; days that
lost against self-consumption make the device force less."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from device.plan.model import Battery, Inputs
from device.plan.robust import WARMUP_SLOTS, ForcingGate
from device.plan.schedule import plan

BATTERY = Battery(capacity_wh=10_000, min_soc_pct=0, reserve_pct=0)


def arbitrage_inputs() -> Inputs:
    """Cheap now, dear for the next three slots, cheap again: the optimum charges from the grid in
    the first slot (energy left at the end is worth little: the horizon's lower quartile)."""
    n = 8
    price = np.array([100.0] + [400.0] * 3 + [100.0] * 4)
    return Inputs(np.arange(n, dtype=np.int64) * 900, price, np.zeros(n), np.full(n, 2000.0), np.zeros(n), 0.0)


def learned(load_miss_w: float = 0.0) -> ForcingGate:
    """A gate after a day of one-slot-ahead forecasts that missed the load by ``load_miss_w`` either way."""
    gate = ForcingGate()
    for k in range(WARMUP_SLOTS):
        real = 2000.0 + (load_miss_w if k % 2 else -load_miss_w)
        gate.observe_slot(2000.0, 0.0, real, 0.0)
    return gate


def test_a_forcing_setpoint_that_pays_under_the_measured_error_stands() -> None:
    assert plan(arbitrage_inputs(), BATTERY).setpoints[0].action == "charge"  # the optimum, no gate
    gate = learned(load_miss_w=50.0)
    result = plan(arbitrage_inputs(), BATTERY, gate=gate)
    assert result.setpoints[0].action == "charge" and (gate.forced, gate.declined) == (1, 0)


def test_a_fresh_gate_never_forces_and_a_large_error_turns_forcing_into_self_consumption() -> None:
    fresh = ForcingGate()
    assert fresh.risk_eur(arbitrage_inputs(), 0.0, -5000.0) == math.inf
    assert plan(arbitrage_inputs(), BATTERY, gate=fresh).setpoints[0].action == "self_consumption"
    # the load runs 1.9 kW off either way: on the forecast moved against it (load 2 × 0.95 kW
    # lower) the grid charge is mostly left over at the end, worth less than it cost
    gate = learned(load_miss_w=1900.0)
    result = plan(arbitrage_inputs(), BATTERY, gate=gate)
    assert result.setpoints[0].action == "self_consumption" and gate.declined == 1
    assert result.charge_w[0] == 0.0 and result.import_w[0] == 2000.0  # the plan is the one with slot 0 on SC


def test_days_lost_against_self_consumption_raise_the_risk_until_forcing_stops() -> None:
    gate = learned(load_miss_w=0.0)
    gate.load_above_w = 10_000.0  # the load error the first slot takes to the grid (the scenario moves the load down)
    assert plan(arbitrage_inputs(), BATTERY, gate=gate).setpoints[0].action == "charge"
    for _ in range(4):
        gate.observe_day(-0.5)  # forcing lost half a euro a day against the self-consumption counterfactual
    assert gate.multiplier == 16.0
    assert plan(arbitrage_inputs(), BATTERY, gate=gate).setpoints[0].action == "self_consumption"
    for _ in range(7):
        gate.observe_day(+1.0)  # earning days: once the week's sum is positive the multiplier relaxes
    assert gate.multiplier == pytest.approx(16.0 * 0.8**5)  # week sums −1, 0, then five positive
    assert plan(arbitrage_inputs(), BATTERY, gate=gate).setpoints[0].action == "charge"


def test_one_lost_day_counts_once_not_on_every_day_it_stays_in_the_week() -> None:
    """Q4 2025 on the standard profile: forcing lost 57 cents on 8 December and earned on each of
    the six days after; the week's sum stayed negative, and doubling on each of those days made
    the multiplier 16 while forcing earned."""
    gate = ForcingGate()
    gate.replay_days([0.04, -0.57, 0.004, 0.13, 0.005, 0.01, 0.0])
    assert gate.multiplier == 2.0  # the lost day, once; the earning days do not relax it while the week is down
    gate.replay_days([-0.1, -0.02, -0.04, 0.01, 0.02, 0.08, 0.01])
    assert gate.multiplier == 8.0  # three lost days in a row (doubling on every day of a week down: 16)
    gate.replay_days([0.02, 0.01, -0.05, 0.2, 0.0, 0.03, 0.01])
    assert gate.multiplier == pytest.approx(2.0 * 0.8**3)  # lost once, then three earning days; the 0.0 day is no evidence
    gate.replay_days([0.0, 0.0, 2.7e-16, 0.0, -5.4e-16, 0.0, -2.4e-16])  # days that forced nothing
    assert gate.multiplier == 1.0  # unrounded, the two −1e-16 days in a week summing below zero made it 4


def test_pv_misses_weigh_on_a_slot_only_as_far_as_pv_is_expected_in_it() -> None:
    """A home whose load the forecast knows but whose PV it misses by all of it either way: a
    cautious gate (multiplier 16) keeps the night's grid charge, where no PV can be missed, and
    prices a sunny slot's hold by the surplus a sunnier quarter-hour would export."""
    gate = ForcingGate()
    for k in range(WARMUP_SLOTS):
        gate.observe_slot(2000.0, 3000.0, 2000.0, 0.0 if k % 2 else 6000.0)
    gate.multiplier = 16.0
    night = arbitrage_inputs()
    assert plan(night, BATTERY, gate=gate).setpoints[0].action == "charge"
    assert gate.risk_eur(night, 85.0, -5000.0) == 0.0
    sunny = replace(night, pv_w=np.r_[3000.0, np.zeros(7)])  # 1 kW exported while holding
    # PV misses 1.5 kW either way there: 1.5 kW more exported at 0 instead of stored (85 EUR/MWh);
    # 1.5 kW less first exports less, then imports 0.5 kW at 100 — cheaper than the stored 85 × 1.5
    assert gate.risk_eur(sunny, 85.0, 0.0) == pytest.approx(16 * 0.25 * 1500 * 85 / 1e6)


def test_a_miss_is_priced_where_it_moves_the_grid_flow() -> None:
    """Following the house a miss goes to the battery (worth 85 EUR/MWh stored); at a fixed power
    it goes to the grid at the price of the flow it changes there."""
    gate = learned(load_miss_w=300.0)  # the load misses by 150 W either way on average
    inp = arbitrage_inputs()  # 2 kW load, import 100, export 0 EUR/MWh
    # a 5 kW grid charge imports 7 kW: 150 W less load is 150 W less imported (worth more than
    # storing it), 150 W more is imported at 100 instead of taken from storage at 85
    assert gate.risk_eur(inp, 85.0, -5000.0) == pytest.approx(0.25 * 150 * (100 - 85) / 1e6)
    # a 3 kW discharge exports 1 kW: 150 W less load is exported at 0 instead of kept at 85
    assert gate.risk_eur(inp, 85.0, 3000.0) == pytest.approx(0.25 * 150 * 85 / 1e6)
