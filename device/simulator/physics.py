"""Battery, PV and house load behind the simulated inverter, integrated over simulated time.

The simulator's firmware decides a battery setpoint from the active mode; this module turns it
into what the meters would show: the battery limited by its power, its SoC window and the
inverter's AC rating, PV curtailed when the AC side is full, the grid taking the rest, and
energy counters that only ever grow. Efficiency losses stay inside the battery: ``battery_w``
is measured at the inverter, the stored energy changes by ``charge × η_c`` or
``discharge / η_d``. Signs are ours: ``battery_w > 0`` discharge, ``grid_w > 0`` import.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from device.simulator.profiles import Source

SUBSTEP_S = 60.0  # PV and load change slowly; finer steps only cost time
COUNTERS = ("import", "export", "charge", "discharge", "pv", "load")


@dataclass(frozen=True)
class PhysicsSettings:
    """The simulated installation. Powers in W, energy in Wh, SoC in %."""

    capacity_wh: float = 10_000.0
    soc_min_pct: float = 10.0
    soc_max_pct: float = 100.0
    initial_soc_pct: float = 50.0
    max_charge_w: float = 5_000.0
    max_discharge_w: float = 5_000.0
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    ac_limit_w: float = 5_000.0
    pv_kwp: float = 6.0
    load_scale: float = 1.0
    profile: Path | None = None
    latitude: float = 52.52
    longitude: float = 13.40
    timezone: str = "Europe/Berlin"

    def __post_init__(self) -> None:
        positive = ("capacity_wh", "charge_efficiency", "discharge_efficiency")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float | int) and not isinstance(value, bool) and (
                value < 0 or (f.name in positive and value == 0)
            ):
                raise ValueError(f"physics.{f.name}: got {value}, must be positive")
        for name in ("charge_efficiency", "discharge_efficiency"):
            if getattr(self, name) > 1:
                raise ValueError(f"physics.{name}: got {getattr(self, name)}, allowed: 0 to 1")
        if not 0 <= self.soc_min_pct <= self.initial_soc_pct <= self.soc_max_pct <= 100:
            raise ValueError(
                f"physics: need 0 <= soc_min_pct <= initial_soc_pct <= soc_max_pct <= 100, got "
                f"{self.soc_min_pct}, {self.initial_soc_pct}, {self.soc_max_pct}"
            )


@dataclass
class Battery:
    capacity_wh: float
    soc_min_pct: float
    soc_max_pct: float
    energy_wh: float

    @property
    def soc_pct(self) -> float:
        return 100.0 * self.energy_wh / self.capacity_wh

    @soc_pct.setter
    def soc_pct(self, value: float) -> None:
        self.energy_wh = self.capacity_wh * value / 100.0

    @property
    def room_wh(self) -> float:
        """Energy that may still be stored before the upper SoC limit."""
        return max(0.0, self.capacity_wh * self.soc_max_pct / 100.0 - self.energy_wh)

    @property
    def available_wh(self) -> float:
        """Energy that may still be taken before the lower SoC limit."""
        return max(0.0, self.energy_wh - self.capacity_wh * self.soc_min_pct / 100.0)


@dataclass
class Flows:
    """Instantaneous powers (W, our signs) after the last step."""

    pv_w: float = 0.0
    load_w: float = 0.0
    battery_w: float = 0.0
    grid_w: float = 0.0


def _setpoint(mode: str, params: Mapping[str, float], pv_w: float, load_w: float) -> float:
    """The battery power (+ discharge) the firmware aims for in ``mode``."""
    power = float(params.get("power_w", 0.0))
    if mode == "charge":
        return -power
    if mode == "discharge":
        return power
    if mode == "hold":
        return 0.0
    return load_w - pv_w  # self-consumption: cover the deficit, store the surplus


@dataclass
class Physics:
    settings: PhysicsSettings
    source: Source
    battery: Battery = field(init=False)
    flows: Flows = field(default_factory=Flows)
    counters_wh: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0.0))

    def __post_init__(self) -> None:
        s = self.settings
        self.battery = Battery(s.capacity_wh, s.soc_min_pct, s.soc_max_pct,
                               s.capacity_wh * s.initial_soc_pct / 100.0)

    def step(self, t: float, dt: float, mode: str, params: Mapping[str, float]) -> None:
        """Advance from simulated epoch ``t - dt`` to ``t`` in sub-steps of at most a minute."""
        if dt <= 0:
            self._flows(t, 0.0, mode, params)
            return
        n = max(1, math.ceil(dt / SUBSTEP_S))
        for i in range(n):
            self._integrate(t - dt + (i + 1) * dt / n, dt / n, mode, params)

    def _flows(self, t: float, dt: float, mode: str, params: Mapping[str, float]) -> Flows:
        s, bat = self.settings, self.battery
        pv_w = s.pv_kwp * self.source.pv_w_per_kwp(t)
        load_w = s.load_scale * self.source.load_w(t)
        battery_w = _setpoint(mode, params, pv_w, load_w)
        battery_w = min(max(battery_w, -s.max_charge_w), s.max_discharge_w)
        if dt > 0:  # never beyond the SoC window within this step
            hours = dt / 3600.0
            battery_w = min(battery_w, bat.available_wh * s.discharge_efficiency / hours)
            battery_w = max(battery_w, -bat.room_wh / (s.charge_efficiency * hours))
        else:
            battery_w = 0.0 if battery_w > 0 and bat.available_wh <= 0 else battery_w
            battery_w = 0.0 if battery_w < 0 and bat.room_wh <= 0 else battery_w
        ac_w = pv_w + battery_w  # what the inverter puts on the AC side
        if ac_w > s.ac_limit_w:  # too much: less discharge first, then curtail PV
            excess = ac_w - s.ac_limit_w
            cut = min(max(battery_w, 0.0), excess)
            battery_w -= cut
            pv_w -= excess - cut
        elif ac_w < -s.ac_limit_w:  # charging from the grid beyond the rating
            battery_w += -s.ac_limit_w - ac_w
        self.flows = Flows(pv_w, load_w, battery_w, load_w - pv_w - battery_w)
        return self.flows

    def _integrate(self, t: float, dt: float, mode: str, params: Mapping[str, float]) -> None:
        s, bat = self.settings, self.battery
        f = self._flows(t, dt, mode, params)
        hours = dt / 3600.0
        if f.battery_w >= 0:
            bat.energy_wh -= f.battery_w / s.discharge_efficiency * hours
        else:
            bat.energy_wh -= f.battery_w * s.charge_efficiency * hours
        c = self.counters_wh
        c["import"] += max(f.grid_w, 0.0) * hours
        c["export"] += max(-f.grid_w, 0.0) * hours
        c["discharge"] += max(f.battery_w, 0.0) * hours
        c["charge"] += max(-f.battery_w, 0.0) * hours
        c["pv"] += f.pv_w * hours
        c["load"] += f.load_w * hours

    def roles(self) -> dict[str, float]:
        """Role values as a register map names them (``state`` is the image's business)."""
        f, s = self.flows, self.settings
        return {
            "soc_pct": self.battery.soc_pct,
            "battery_w": f.battery_w,
            "pv_w": f.pv_w,
            "grid_w": f.grid_w,
            "load_w": f.load_w,
            "battery_temp_c": 25.0 + 5.0 * abs(f.battery_w) / max(s.max_discharge_w, 1.0),
            "inverter_temp_c": 35.0 + 15.0 * abs(f.pv_w + f.battery_w) / max(s.ac_limit_w, 1.0),
            **{f"energy_{k}_wh": v for k, v in self.counters_wh.items()},
        }

