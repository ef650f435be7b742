"""Battery, PV, load and grid: limits, efficiency, counters, energy balance."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from device.simulator.physics import Physics, PhysicsSettings

HOUR = 3600.0


@dataclass(frozen=True)
class Flat:
    """Constant PV (per kWp) and load, so expectations are exact."""

    pv: float = 0.0
    load: float = 0.0

    def pv_w_per_kwp(self, t: float) -> float:
        return self.pv

    def load_w(self, t: float) -> float:
        return self.load


def physics(pv: float = 0.0, load: float = 0.0, **settings: float) -> Physics:
    return Physics(PhysicsSettings(pv_kwp=1.0, **settings), Flat(pv, load))  # type: ignore[arg-type]


def test_charging_stores_energy_after_losses_and_counts_it() -> None:
    p = physics(load=500.0, initial_soc_pct=50.0, charge_efficiency=0.9)
    p.step(HOUR, HOUR, "charge", {"power_w": 2000.0})
    assert p.battery.energy_wh == pytest.approx(5000.0 + 2000.0 * 0.9)
    assert p.flows.battery_w == -2000.0
    assert p.flows.grid_w == pytest.approx(2500.0)  # load plus charging, all imported
    assert p.counters_wh["charge"] == pytest.approx(2000.0)
    assert p.counters_wh["import"] == pytest.approx(2500.0)
    assert p.counters_wh["load"] == pytest.approx(500.0)


def test_discharge_stops_at_the_lower_soc_limit_and_exports() -> None:
    p = physics(initial_soc_pct=20.0, soc_min_pct=10.0, discharge_efficiency=1.0)
    p.step(2 * HOUR, 2 * HOUR, "discharge", {"power_w": 3000.0})
    assert p.battery.soc_pct == pytest.approx(10.0)
    assert p.counters_wh["discharge"] == pytest.approx(1000.0)
    assert p.counters_wh["export"] == pytest.approx(1000.0)
    assert p.flows.battery_w == pytest.approx(0.0)


def test_power_limits_and_the_upper_soc_limit() -> None:
    p = physics(max_charge_w=1500.0, initial_soc_pct=90.0, soc_max_pct=95.0, charge_efficiency=1.0)
    p.step(60.0, 60.0, "charge", {"power_w": 5000.0})
    assert p.flows.battery_w == -1500.0
    p.step(10 * HOUR, 10 * HOUR, "charge", {"power_w": 5000.0})
    assert p.battery.soc_pct == pytest.approx(95.0)


def test_self_consumption_covers_the_deficit_and_stores_the_surplus() -> None:
    night = physics(load=800.0)
    night.step(60.0, 60.0, "self_consumption", {})
    assert night.flows.battery_w == pytest.approx(800.0) and night.flows.grid_w == pytest.approx(0.0)
    noon = physics(pv=3000.0, load=500.0, initial_soc_pct=100.0)
    noon.step(60.0, 60.0, "self_consumption", {})  # full battery: surplus goes out
    assert noon.flows.battery_w == 0.0 and noon.flows.grid_w == pytest.approx(-2500.0)


def test_hold_keeps_the_battery_idle() -> None:
    p = physics(pv=1000.0, load=300.0)
    p.step(HOUR, HOUR, "hold", {})
    assert p.battery.soc_pct == pytest.approx(50.0)
    assert p.flows.grid_w == pytest.approx(-700.0)


def test_ac_limit_reduces_discharge_then_curtails_pv() -> None:
    p = physics(pv=4000.0, load=6000.0, ac_limit_w=5000.0)
    p.step(60.0, 60.0, "discharge", {"power_w": 3000.0})
    assert p.flows.battery_w == pytest.approx(1000.0) and p.flows.pv_w == pytest.approx(4000.0)
    sunny = physics(pv=6000.0, load=0.0, ac_limit_w=5000.0, initial_soc_pct=100.0)
    sunny.step(60.0, 60.0, "self_consumption", {})
    assert sunny.flows.pv_w == pytest.approx(5000.0)


@pytest.mark.parametrize("mode", ["self_consumption", "charge", "discharge", "hold"])
def test_energy_balance_holds_in_every_mode(mode: str) -> None:
    p = physics(pv=2500.0, load=1200.0)
    p.step(900.0, 900.0, mode, {"power_w": 2000.0})
    f = p.flows
    assert f.load_w == pytest.approx(f.pv_w + f.battery_w + f.grid_w)
    c = p.counters_wh
    assert c["load"] == pytest.approx(c["pv"] + c["discharge"] - c["charge"] + c["import"] - c["export"])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"capacity_wh": 0.0}, "physics.capacity_wh: got 0.0"),
        ({"charge_efficiency": 1.2}, "physics.charge_efficiency: got 1.2, allowed: 0 to 1"),
        ({"initial_soc_pct": 5.0}, "soc_min_pct <= initial_soc_pct"),
        ({"max_charge_w": -1.0}, "physics.max_charge_w: got -1.0"),
    ],
)
def test_bad_settings_name_the_field(settings: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PhysicsSettings(**settings)  # type: ignore[arg-type]
