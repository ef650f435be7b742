"""The inverter's own self-consumption rule, and the plans that need no optimisation.

The same battery model serves three purposes: the ``self_consumption`` mode's plan, the fallback
when the solver fails, and accounting's "self-consumption only" counterfactual (which is why
this module does not import the LP).
"""

from __future__ import annotations

import numpy as np

from device.plan.model import Battery, FloatArray, Inputs, Plan, Setpoint


def simulate_self_consumption(
    load_w: FloatArray, pv_w: FloatArray, soc_pct: float, bat: Battery, dt_h: float = 0.25
) -> tuple[FloatArray, FloatArray]:
    """The inverter's own self-consumption rule, slot by slot: battery W (> 0 discharge), SoC % at end.

    Also the "self-consumption only" counterfactual of accounting and the benchmark.
    """
    cap = bat.capacity_wh
    floor, ceil = bat.floor_pct / 100.0 * cap, bat.max_soc_pct / 100.0 * cap
    soc = soc_pct / 100.0 * cap
    battery = np.empty(len(load_w))
    socs = np.empty(len(load_w))
    for i, net in enumerate((np.asarray(load_w) - np.asarray(pv_w)).tolist()):
        if net > 0:
            p = min(net, bat.max_discharge_w, max(soc - floor, 0.0) * bat.discharge_efficiency / dt_h)
            soc -= p * dt_h / bat.discharge_efficiency
        else:
            p = -min(-net, bat.max_charge_w, max(ceil - soc, 0.0) / bat.charge_efficiency / dt_h)
            soc -= p * dt_h * bat.charge_efficiency
        battery[i], socs[i] = p, soc / cap * 100.0
    return battery, socs


def self_consumption_plan(inp: Inputs, bat: Battery, created: float, reason: str) -> Plan:
    battery, soc = simulate_self_consumption(inp.load_w, inp.pv_w, inp.soc_pct, bat)
    return fixed_plan(inp, bat, created, reason, "self_consumption", battery, soc, "self_consumption")


def idle_plan(inp: Inputs, bat: Battery, created: float, reason: str, mode: str) -> Plan:
    n = len(inp.ts)
    return fixed_plan(inp, bat, created, reason, mode, np.zeros(n), np.full(n, inp.soc_pct), None)


def fixed_plan(
    inp: Inputs, bat: Battery, created: float, reason: str, mode: str,
    battery_w: FloatArray, soc: FloatArray, action: str | None,
) -> Plan:
    grid = inp.load_w - inp.pv_w - battery_w
    p = Plan(
        created_at=created, reason=reason, mode=mode, ts=inp.ts,
        import_w=np.maximum(grid, 0.0), export_w=np.maximum(-grid, 0.0),
        charge_w=np.maximum(-battery_w, 0.0), discharge_w=np.maximum(battery_w, 0.0),
        soc_pct=soc, load_w=inp.load_w, pv_w=inp.pv_w,
        import_price=inp.import_price, export_price=inp.export_price,
        setpoints=[Setpoint(action)] * len(inp.ts),
        soc0_pct=inp.soc_pct,
    )
    return p
