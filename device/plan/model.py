"""What a battery schedule depends on and what it is: limits, rules, mode, inputs, plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from device.config import Config

FloatArray = NDArray[np.float64]
SLOT_S = 900
MODES = ("auto", "self_consumption", "peak_shaving", "manual", "off")
MANUAL_ACTIONS = ("charge", "discharge", "hold")


@dataclass(frozen=True)
class Battery:
    """Battery and inverter limits as the planner sees them (the tighter of battery and inverter)."""

    capacity_wh: float = 10_000.0
    min_soc_pct: float = 5.0
    max_soc_pct: float = 100.0
    reserve_pct: float = 10.0
    max_charge_w: float = 5000.0
    max_discharge_w: float = 5000.0
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95

    @classmethod
    def from_config(cls, cfg: Config) -> Battery:
        b = cfg.battery
        return cls(
            b.capacity_wh, b.min_soc_pct, b.max_soc_pct, b.reserve_pct,
            min(b.max_charge_w, cfg.inverter.max_charge_w),
            min(b.max_discharge_w, cfg.inverter.max_discharge_w),
            b.charge_efficiency, b.discharge_efficiency,
        )

    @property
    def floor_pct(self) -> float:
        return max(self.min_soc_pct, self.reserve_pct)


@dataclass(frozen=True)
class Rules:
    """What the plan may do, from the ``planner`` settings (and the mode)."""

    degradation_eur_mwh: float = 20.0
    terminal_value_eur_mwh: float | None = None
    grid_charging: bool = True
    battery_export: bool = True
    import_limit_w: float | None = None
    export_limit_w: float | None = None
    ac_limit_w: float | None = None

    @classmethod
    def from_config(cls, cfg: Config) -> Rules:
        p = cfg.planner
        return cls(
            p.degradation_eur_mwh, p.terminal_value_eur_mwh, p.grid_charging, p.battery_export,
            p.import_limit_w, p.export_limit_w, p.ac_limit_w,
        )


@dataclass(frozen=True)
class ModeRequest:
    """The homeowner's (or an operator's) choice; manual holds until ``until`` (epoch s)."""

    mode: str = "auto"
    action: str | None = None  # manual only: charge | discharge | hold
    power_w: float = 0.0
    until: float | None = None
    peak_shaving_cap_w: float = 4000.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: got {self.mode!r}, allowed: {', '.join(MODES)}")
        if self.mode == "manual":
            if self.action not in MANUAL_ACTIONS:
                raise ValueError(f"action: got {self.action!r}, allowed: {', '.join(MANUAL_ACTIONS)}")
            if self.until is None:
                raise ValueError("until: a manual command needs an end time (epoch s)")
        if self.power_w < 0:
            raise ValueError(f"power_w: got {self.power_w}, allowed: 0 or more")


@dataclass(frozen=True)
class DemandResponse:
    """A grid operator's request: keep import at or below ``cap_w`` from ``start`` to ``end``."""

    start: float
    end: float
    cap_w: float
    id: str = ""


@dataclass(frozen=True)
class Inputs:
    """Everything one plan depends on, one array entry per slot (slot starts ``ts``)."""

    ts: NDArray[np.int64]
    import_price: FloatArray  # EUR/MWh
    export_price: FloatArray
    load_w: FloatArray
    pv_w: FloatArray
    soc_pct: float  # measured now
    first_slot_s: float = SLOT_S  # the current slot may be partly over

    def __post_init__(self) -> None:
        n = len(self.ts)
        for name in ("import_price", "export_price", "load_w", "pv_w"):
            arr = getattr(self, name)
            if len(arr) != n:
                raise ValueError(f"{name}: {len(arr)} values for {n} slots")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name}: contains NaN or infinite values")
        if n == 0:
            raise ValueError("ts: no slots to plan")

    @property
    def durations_h(self) -> FloatArray:
        dt = np.full(len(self.ts), SLOT_S / 3600.0)
        dt[0] = max(min(self.first_slot_s, SLOT_S), 1.0) / 3600.0
        return dt


@dataclass(frozen=True)
class Setpoint:
    """What the controller sends for a slot: ``action`` None means "leave the inverter alone"."""

    action: str | None
    power_w: int = 0


@dataclass
class Plan:
    """A schedule: per-slot flows (W, mean over the slot), SoC at each slot end, setpoints."""

    created_at: float
    reason: str
    mode: str
    ts: NDArray[np.int64]
    import_w: FloatArray
    export_w: FloatArray
    charge_w: FloatArray
    discharge_w: FloatArray
    soc_pct: FloatArray
    load_w: FloatArray
    pv_w: FloatArray
    import_price: FloatArray
    export_price: FloatArray
    setpoints: list[Setpoint]
    compromises: list[str] = field(default_factory=list)
    objective_eur: float = 0.0
    solve_ms: float = 0.0  # wall clock, build and solve (every LP of a gated plan)
    solve_cpu_ms: float = 0.0  # CPU time of the solving thread: the same work, blind to other processes' load
    soc0_pct: float = 0.0  # measured SoC the plan starts from

    def setpoint_at(self, ts: float) -> Setpoint | None:
        """The setpoint of the slot containing ``ts``; None outside the plan."""
        i = int(np.searchsorted(self.ts, ts, side="right")) - 1
        if i < 0 or ts >= self.ts[-1] + SLOT_S:
            return None
        return self.setpoints[i]

    def soc_at(self, ts: float) -> float | None:
        """Planned SoC at ``ts`` (interpolated within the slot)."""
        i = int(np.searchsorted(self.ts, ts, side="right")) - 1
        if i < 0 or ts >= self.ts[-1] + SLOT_S:
            return None
        start = self.soc_pct[i - 1] if i > 0 else self.soc0_pct
        frac = (ts - self.ts[i]) / SLOT_S
        return float(start + (self.soc_pct[i] - start) * frac)

    def to_json(self) -> dict[str, Any]:
        """The ``plans.data`` / MQTT ``plan`` payload."""
        return {
            "created_at": self.created_at,
            "reason": self.reason,
            "mode": self.mode,
            "compromises": self.compromises,
            "objective_eur": round(self.objective_eur, 4),
            "solve_ms": round(self.solve_ms, 2),
            "solve_cpu_ms": round(self.solve_cpu_ms, 2),
            "slots": [
                {
                    "ts": int(self.ts[i]),
                    "import_w": round(float(self.import_w[i])),
                    "export_w": round(float(self.export_w[i])),
                    "charge_w": round(float(self.charge_w[i])),
                    "discharge_w": round(float(self.discharge_w[i])),
                    "soc_pct": round(float(self.soc_pct[i]), 2),
                    "load_w": round(float(self.load_w[i])),
                    "pv_w": round(float(self.pv_w[i])),
                    "import_price": round(float(self.import_price[i]), 2),
                    "export_price": round(float(self.export_price[i]), 2),
                    "action": self.setpoints[i].action,
                    "power_w": self.setpoints[i].power_w,
                }
                for i in range(len(self.ts))
            ],
        }
