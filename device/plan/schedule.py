"""``plan()``: the best schedule for the requested mode; always returns a plan.

``off`` and plain ``self_consumption`` need no optimisation (:mod:`device.plan.baseline`);
every other mode, and self-consumption under an import cap, is solved as a linear program
(:mod:`device.plan.lp`) with the mode's rules.
"""

from __future__ import annotations

import math
import time

import numpy as np

from device.plan.baseline import idle_plan, self_consumption_plan
from device.plan.lp import Solver, terminal_value
from device.plan.model import (
    SLOT_S,
    Battery,
    DemandResponse,
    Inputs,
    ModeRequest,
    Plan,
    Rules,
    Setpoint,
)
from device.plan.robust import FORCING, ForcingGate
from device.plan.setpoints import self_consumption_w


def plan(
    inputs: Inputs,
    battery: Battery,
    rules: Rules = Rules(),
    request: ModeRequest = ModeRequest(),
    events: tuple[DemandResponse, ...] = (),
    reason: str = "",
    solver: Solver | None = None,
    gate: ForcingGate | None = None,
) -> Plan:
    """The best schedule for ``inputs`` in the requested mode. Always returns a plan.

    With a ``gate`` (mode ``auto``), a forcing first setpoint stands only where its gain beats
    the forecast error's risk; otherwise the plan with the first slot on self-consumption is
    returned (:mod:`device.plan.robust`)."""
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
    result = solver.solve(inputs, battery, mode_rules, cap_w, manual, request, created, reason)
    if gate is None or mode != "auto" or result.setpoints[0].action not in FORCING:
        return result
    own = self_consumption_w(float(inputs.load_w[0]), float(inputs.pv_w[0]), inputs.soc_pct, battery)
    planned = float(result.discharge_w[0] - result.charge_w[0])

    def objective(inp: Inputs, first_w: float) -> Plan:
        return solver.solve(inp, battery, mode_rules, cap_w, manual, request, created, reason, first_w)

    alternative = objective(inputs, own)
    if alternative.mode != result.mode:  # the solver failed on it: keep the optimal plan
        return result
    solve_ms = result.solve_ms + alternative.solve_ms
    cpu_ms = result.solve_cpu_ms + alternative.solve_cpu_ms
    value = terminal_value(inputs, battery, mode_rules)
    gain, adverse_gain = alternative.objective_eur - result.objective_eur, -math.inf
    if gain > gate.risk_eur(inputs, value, planned):  # only then is the adverse forecast worth two solves
        worse = gate.adverse(inputs, storing=planned < own)
        forced_adverse, alternative_adverse = objective(worse, planned), objective(worse, own)
        if forced_adverse.mode != result.mode or alternative_adverse.mode != result.mode:
            return result
        solve_ms += forced_adverse.solve_ms + alternative_adverse.solve_ms
        cpu_ms += forced_adverse.solve_cpu_ms + alternative_adverse.solve_cpu_ms
        adverse_gain = alternative_adverse.objective_eur - forced_adverse.objective_eur
    keep = gate.should_force(gain, adverse_gain, inputs, value, planned)
    chosen = result if keep else alternative
    chosen.solve_ms, chosen.solve_cpu_ms = solve_ms, cpu_ms
    if not keep:
        chosen.setpoints[0] = Setpoint("self_consumption")
    return chosen
