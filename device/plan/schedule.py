"""``plan()``: the best schedule for the requested mode; always returns a plan.

``off`` and plain ``self_consumption`` need no optimisation (:mod:`device.plan.baseline`);
every other mode, and self-consumption under an import cap, is solved as a linear program
(:mod:`device.plan.lp`) with the mode's rules.
"""

from __future__ import annotations

import time

import numpy as np

from device.plan.baseline import idle_plan, self_consumption_plan
from device.plan.lp import Solver
from device.plan.model import SLOT_S, Battery, DemandResponse, Inputs, ModeRequest, Plan, Rules


def plan(
    inputs: Inputs,
    battery: Battery,
    rules: Rules = Rules(),
    request: ModeRequest = ModeRequest(),
    events: tuple[DemandResponse, ...] = (),
    reason: str = "",
    solver: Solver | None = None,
) -> Plan:
    """The best schedule for ``inputs`` in the requested mode. Always returns a plan."""
    created = time.time()
    n = len(inputs.ts)
    cap_w = np.full(n, np.inf)
    if rules.import_limit_w is not None:
        cap_w[:] = rules.import_limit_w
    if request.mode != "off":
        for ev in events:
            inside = (inputs.ts + SLOT_S > ev.start) & (inputs.ts < ev.end)
            cap_w[inside] = np.minimum(cap_w[inside], ev.cap_w)
    mode, mode_rules = request.mode, rules
    if mode == "off":
        return idle_plan(inputs, battery, created, reason, mode)
    if mode == "self_consumption" and not np.isfinite(cap_w).any():
        return self_consumption_plan(inputs, battery, created, reason)
    if mode in ("self_consumption", "peak_shaving"):
        mode_rules = Rules(**{**rules.__dict__, "battery_export": False})
        if mode == "self_consumption":
            mode_rules = Rules(**{**mode_rules.__dict__, "grid_charging": False})
    if mode == "peak_shaving":
        cap_w = np.minimum(cap_w, request.peak_shaving_cap_w)
    manual = np.zeros(n, dtype=bool)
    if mode == "manual" and request.until is not None:
        manual = inputs.ts < request.until
    solver = solver or Solver()
    return solver.solve(inputs, battery, mode_rules, cap_w, manual, request, created, reason)
