"""From a plan to controller setpoints, one per slot.

Where the plan does what the inverter's own self-consumption mode would do (soak up PV surplus,
cover the deficit) the setpoint is ``self_consumption`` — it follows the real load and PV within
the slot instead of a forecast — otherwise ``charge``/``discharge`` at the planned power, or
``hold``.
"""

from __future__ import annotations

import numpy as np

from device.plan.model import SLOT_S, Battery, Plan, Setpoint

_SETPOINT_TOLERANCE_KW = 0.03  # plan within 30 W of self-consumption → self_consumption
_HOLD_KW = 0.01  # planned battery power up to 10 W either way → hold


def self_consumption_w(load_w: float, pv_w: float, soc_pct: float, bat: Battery) -> float:
    """Battery W (> 0 discharge) the inverter's own rule would run for a slot starting at ``soc_pct``."""
    cap = bat.capacity_wh / 1000.0
    floor, ceil = bat.floor_pct / 100.0 * cap, bat.max_soc_pct / 100.0 * cap
    dt = SLOT_S / 3600.0
    soc = soc_pct / 100.0 * cap
    own = (load_w - pv_w) / 1000.0
    own = min(own, bat.max_discharge_w / 1000.0, max((soc - floor) * bat.discharge_efficiency / dt, 0.0))
    own = max(own, -bat.max_charge_w / 1000.0, -max((ceil - soc) / bat.charge_efficiency / dt, 0.0))
    return own * 1000.0


def setpoints(p: Plan, bat: Battery) -> list[Setpoint]:
    """Map planned battery power to controller actions (see the module docstring)."""
    tol_kw = _SETPOINT_TOLERANCE_KW
    start_soc = np.r_[p.soc0_pct, p.soc_pct[:-1]]
    result = []
    for i in range(len(p.ts)):
        planned = (p.discharge_w[i] - p.charge_w[i]) / 1000.0  # > 0 discharge
        own = self_consumption_w(float(p.load_w[i]), float(p.pv_w[i]), float(start_soc[i]), bat) / 1000.0
        if abs(planned - own) <= tol_kw:
            result.append(Setpoint("self_consumption"))
        elif abs(planned) <= _HOLD_KW:
            result.append(Setpoint("hold"))
        elif planned < 0:
            result.append(Setpoint("charge", int(round(-planned * 1000))))
        else:
            result.append(Setpoint("discharge", int(round(planned * 1000))))
    return result
