"""The battery schedule as a linear program over 15-minute slots, solved with HiGHS in milliseconds.

Per slot ``t`` (powers in kW, energy in kWh inside the LP; W at the edges):

    import − export − charge + discharge − curtail = load − pv            (energy balance)
    soc[t] = soc[t−1] + dt·(η_c·charge − discharge/η_d)                    (state of charge)
    soc[t] + short[t] ≥ floor,  soc[t] − over[t] ≤ ceiling                 (soft reserve / max)
    import − excess[t] ≤ cap[t]                                            (soft import cap)
    charge/charge_max + discharge/discharge_max ≤ 1                        (no charge+discharge)
    −ac ≤ pv − curtail + discharge − charge ≤ ac                           (inverter AC rating)

    minimise Σ dt·(p_imp·import − p_exp·export + wear·(charge + discharge)/2)
             − value·soc[end] + penalties·(short + over + excess)

The soft rows are why the planner never answers "infeasible": a state of charge below the
reserve, a cap below the load or a full battery in a manual charge all become a priced
compromise, and the plan says which one (``Plan.compromises``). Grid charging and battery export
switches are column bounds (import ≤ deficit, export ≤ PV surplus), so the matrix has the same
shape in every mode and is built with numpy in one pass (``passModel``), not row by row.

The LP's solution becomes controller setpoints through :mod:`device.plan.setpoints`.
"""

from __future__ import annotations

import resource
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import highspy
import numpy as np
from numpy.typing import NDArray

from common.logs import native_output_logged
from device.plan.baseline import self_consumption_plan
from device.plan.model import SLOT_S, Battery, FloatArray, Inputs, ModeRequest, Plan, Rules, Setpoint
from device.plan.setpoints import setpoints

# Penalties (EUR per kWh, per slot for SoC): far above any price, so a compromise is taken only
# where a hard limit could not be met; ordered so a manual command never breaks the reserve.
_SOC_PENALTY = 20.0  # above the cap penalty: the backup reserve outranks an import cap
_CAP_PENALTY = 10.0
_MANUAL_REWARD = 1.5
_CURTAIL_COST = 1e-4  # prefer export over curtailing at a zero export price
_EPS_KW = 1e-3
_TIE_BREAK_EUR_MWH = 0.001  # per slot; at most 0.02 ct/kWh over 192 slots
_NUM_BLOCKS = 9  # imp, exp, ch, dis, soc, cur, short, over, excess
IMP, EXP, CH, DIS, SOC, CUR, SHORT, OVER, EXCESS = range(_NUM_BLOCKS)
_NUM_ROW_BLOCKS = 9


class Solver:
    """Holds one HiGHS instance (one per thread) and warm-starts repeated plans.

    Re-planning every slot moves the horizon by one slot: when the matrix is unchanged (same
    slot count, full first slot, same battery) only costs and bounds are updated and the last
    optimal basis, shifted by the same number of slots, seeds the simplex — a few dozen
    iterations instead of hundreds.
    """

    def __init__(self) -> None:
        with native_output_logged("highs banner"):  # printed on stdout by the first instance
            self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        self.highs.setOptionValue("threads", 1)
        self.highs.setOptionValue("presolve", "off")  # small LP: presolve costs more than it saves
        self._key: tuple[Any, ...] | None = None
        self._ts0 = 0

    def solve(
        self,
        inp: Inputs,
        bat: Battery,
        rules: Rules,
        cap_w: FloatArray,
        manual: NDArray[np.bool_],
        request: ModeRequest,
        created: float,
        reason: str,
        first_battery_w: float | None = None,
    ) -> Plan:
        """The optimal plan; ``first_battery_w`` (W, > 0 discharge) fixes the first slot's battery
        power (the forcing gate's self-consumption alternative, :mod:`device.plan.robust`)."""
        t0, cpu0 = time.perf_counter(), thread_cpu_s()
        lp = _build(inp, bat, rules, cap_w, manual, request, first_battery_w)
        n = len(inp.ts)
        h = self.highs
        key = (n, float(inp.durations_h[0]), bat)
        if key == self._key:
            self._update(lp, n, int((int(inp.ts[0]) - self._ts0) // SLOT_S))
        else:
            h.clearModel()
            h.passModel(lp)
            self._key = key
        self._ts0 = int(inp.ts[0])
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            self._key = None
            fallback = self_consumption_plan(inp, bat, created, reason)
            fallback.compromises.append(
                f"solver answered {h.modelStatusToString(h.getModelStatus())}; "
                "fell back to self-consumption"
            )
            return fallback
        x = np.asarray(h.getSolution().col_value).reshape(_NUM_BLOCKS, n)
        solve_ms, cpu_ms = (time.perf_counter() - t0) * 1000, (thread_cpu_s() - cpu0) * 1000
        result = _from_solution(inp, bat, x, created, reason, request, manual)
        result.objective_eur = float(h.getInfo().objective_function_value)
        result.solve_ms, result.solve_cpu_ms = solve_ms, cpu_ms
        result.compromises = _compromises(inp, bat, x, cap_w)
        return result

    def _update(self, lp: highspy.HighsLp, n: int, shift: int) -> None:
        h = self.highs
        basis = h.getBasis() if 0 < shift < n else None
        cols = np.arange(lp.num_col_, dtype=np.int32)
        rows = np.arange(lp.num_row_, dtype=np.int32)
        h.changeColsCost(lp.num_col_, cols, np.asarray(lp.col_cost_))
        h.changeColsBounds(lp.num_col_, cols, np.asarray(lp.col_lower_), np.asarray(lp.col_upper_))
        h.changeRowsBounds(  # type: ignore[attr-defined]  # present at runtime, missing in the stubs
            lp.num_row_, rows, np.asarray(lp.row_lower_), np.asarray(lp.row_upper_)
        )
        if basis is not None and basis.valid:
            basis.col_status = _shifted(basis.col_status, n, shift)
            basis.row_status = _shifted(basis.row_status, n, shift)
            h.setBasis(basis)


def thread_cpu_s() -> float:
    """CPU seconds this thread has run (HiGHS solves in the calling thread with ``threads`` 1): a
    solve's cost without the time other processes held the core. ``getrusage`` because
    ``time.thread_time`` takes milliseconds per call on some virtual machines (this one's)."""
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def _shifted(status: list[Any], n: int, shift: int) -> list[Any]:
    """Per-slot blocks of a basis moved ``shift`` slots earlier; the new tail copies the old end."""
    out: list[Any] = []
    for b in range(len(status) // n):
        block = status[b * n:(b + 1) * n]
        out.extend(block[shift:] + [block[-1]] * shift)
    return out


@lru_cache(maxsize=8)
def _pattern(n: int) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], int]:
    """Sparsity pattern for ``n`` slots: COO rows/cols, CSC order permutation, nnz (cached)."""
    t = np.arange(n)

    def col(block: int) -> NDArray[np.int64]:
        return block * n + t

    entries = [
        # row block 0: balance
        (0, col(IMP)), (0, col(EXP)), (0, col(CH)), (0, col(DIS)), (0, col(CUR)),
        # row block 1: SoC dynamics (soc[t], −soc[t−1], ch, dis)
        (1, col(SOC)), (1, col(CH)), (1, col(DIS)),
        # row block 2: floor; 3: ceiling; 4: import cap; 5: exclusivity; 6: AC limit
        (2, col(SOC)), (2, col(SHORT)),
        (3, col(SOC)), (3, col(OVER)),
        (4, col(IMP)), (4, col(EXCESS)),
        (5, col(CH)), (5, col(DIS)),
        (6, col(DIS)), (6, col(CH)), (6, col(CUR)),
        # 7: the grid feeds only load and battery; 8: only PV and battery feed the grid — no
        # pass-through from import to export, which negative import prices would reward
        (7, col(IMP)), (7, col(CH)),
        (8, col(EXP)), (8, col(DIS)), (8, col(CUR)),
    ]
    rows = [block * n + t for block, _ in entries]
    cols = [c for _, c in entries]
    rows.append(n + t[1:])  # −soc[t−1] in dynamics row t
    cols.append(SOC * n + t[:-1])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    order = np.lexsort((r, c))
    return r, c, order, len(r)


def _build(
    inp: Inputs,
    bat: Battery,
    rules: Rules,
    cap_w: FloatArray,
    manual: NDArray[np.bool_],
    request: ModeRequest,
    first_battery_w: float | None = None,
) -> highspy.HighsLp:
    n = len(inp.ts)
    dt = inp.durations_h
    load, pv = inp.load_w / 1000.0, inp.pv_w / 1000.0
    ch_max, dis_max = bat.max_charge_w / 1000.0, bat.max_discharge_w / 1000.0
    cap_kwh = bat.capacity_wh / 1000.0
    eta_c, eta_d = bat.charge_efficiency, bat.discharge_efficiency
    ones = np.ones(n)
    vals = [
        ones, -ones, -ones, ones, -ones,
        ones, -eta_c * dt, dt / eta_d,
        ones, ones,
        ones, -ones,
        ones, -ones,
        ones / ch_max if ch_max > 0 else 0 * ones, ones / dis_max if dis_max > 0 else 0 * ones,
        ones, -ones, -ones,
        ones, -ones,
        ones, -ones, ones,
        -np.ones(n - 1),
    ]
    rows, cols, order, _ = _pattern(n)
    v = np.concatenate(vals)[order]
    col_sorted = cols[order]
    starts = np.searchsorted(col_sorted, np.arange(_NUM_BLOCKS * n + 1)).astype(np.int32)

    inf = highspy.kHighsInf
    lower = np.zeros((_NUM_BLOCKS, n))
    upper = np.full((_NUM_BLOCKS, n), inf)
    deficit, surplus = np.maximum(load - pv, 0.0), np.maximum(pv - load, 0.0)
    if not rules.grid_charging:
        upper[IMP] = deficit
    if rules.export_limit_w is not None:
        upper[EXP] = rules.export_limit_w / 1000.0
    if not rules.battery_export:
        upper[EXP] = np.minimum(upper[EXP], surplus)
    upper[CH], upper[DIS] = ch_max, dis_max
    upper[SOC] = cap_kwh
    upper[CUR] = pv

    wear = rules.degradation_eur_mwh / 2000.0
    cost = np.zeros((_NUM_BLOCKS, n))
    # Tie-break equal prices (fixed feed-in, hourly prices over four quarter-hours) towards
    # self-consumption: surplus PV charges now rather than later, deficits are covered now.
    later = _TIE_BREAK_EUR_MWH * np.arange(n)
    cost[IMP] = dt * (inp.import_price - later) / 1000.0
    cost[EXP] = -dt * (inp.export_price + later) / 1000.0
    cost[CH] = dt * wear
    cost[DIS] = dt * wear
    cost[CUR] = dt * _CURTAIL_COST
    cost[SHORT] = _SOC_PENALTY * dt / 0.25
    cost[OVER] = _SOC_PENALTY * dt / 0.25
    cost[EXCESS] = _CAP_PENALTY * dt
    cost[SOC, -1] = -terminal_value(inp, bat, rules) / 1000.0
    if manual.any():
        act = request.action
        p = min(request.power_w / 1000.0, ch_max if act == "charge" else dis_max)
        upper[CH, manual] = p if act == "charge" else 0.0
        upper[DIS, manual] = p if act == "discharge" else 0.0
        cost[CH if act == "charge" else DIS, manual] -= _MANUAL_REWARD * dt[manual]
    if first_battery_w is not None:
        fixed = first_battery_w / 1000.0
        lower[CH, 0] = upper[CH, 0] = min(max(-fixed, 0.0), ch_max)
        lower[DIS, 0] = upper[DIS, 0] = min(max(fixed, 0.0), dis_max)
    soc0 = min(max(inp.soc_pct, 0.0), 100.0) / 100.0 * cap_kwh
    floor, ceil = bat.floor_pct / 100.0 * cap_kwh, bat.max_soc_pct / 100.0 * cap_kwh
    ac = inf if rules.ac_limit_w is None else rules.ac_limit_w / 1000.0
    row_lo = np.concatenate([
        load - pv,
        np.r_[soc0, np.zeros(n - 1)],
        np.full(n, floor),
        np.full(n, -inf),
        np.full(n, -inf),
        np.full(n, -inf),
        -ac - pv if np.isfinite(ac) else np.full(n, -inf),
        np.full(n, -inf),
        np.full(n, -inf),
    ])
    row_hi = np.concatenate([
        load - pv,
        np.r_[soc0, np.zeros(n - 1)],
        np.full(n, inf),
        np.full(n, ceil),
        np.where(np.isfinite(cap_w), cap_w / 1000.0, inf),
        np.ones(n),
        ac - pv if np.isfinite(ac) else np.full(n, inf),
        load,
        pv,
    ])
    lp = highspy.HighsLp()
    lp.num_col_ = _NUM_BLOCKS * n
    lp.num_row_ = _NUM_ROW_BLOCKS * n
    lp.col_cost_ = cost.ravel()
    lp.col_lower_ = lower.ravel()
    lp.col_upper_ = upper.ravel()
    lp.row_lower_ = row_lo
    lp.row_upper_ = row_hi
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = starts
    lp.a_matrix_.index_ = rows[order].astype(np.int32)
    lp.a_matrix_.value_ = v
    return lp


def terminal_value(inp: Inputs, bat: Battery, rules: Rules) -> float:
    """EUR/MWh credited per stored MWh left at the horizon's end.

    Stored energy will later replace imports, but only after the discharge loss and the wear
    of discharging, and it competes with free PV surplus: we credit the lower quartile of the
    horizon's import prices (what a battery typically displaces at the cheaper end of its
    use), never below the export price it could fetch instead.
    """
    if rules.terminal_value_eur_mwh is not None:
        return rules.terminal_value_eur_mwh
    displaced = float(np.quantile(inp.import_price, 0.25)) * bat.discharge_efficiency
    value = displaced - rules.degradation_eur_mwh / 2
    return max(value, float(np.median(inp.export_price)) * bat.discharge_efficiency, 0.0)


def _from_solution(
    inp: Inputs,
    bat: Battery,
    x: FloatArray,
    created: float,
    reason: str,
    request: ModeRequest,
    manual: NDArray[np.bool_],
) -> Plan:
    # Net out any charge+discharge in the same slot (the exclusivity row allows a convex mix
    # at its corners only when prices are negative): the inverter does one or the other.
    net = x[DIS] - x[CH]
    ch, dis = np.maximum(-net, 0.0), np.maximum(net, 0.0)
    grid = inp.load_w / 1000.0 - inp.pv_w / 1000.0 + x[CUR] + ch - dis
    p = Plan(
        created_at=created,
        reason=reason,
        mode=request.mode,
        ts=inp.ts,
        import_w=np.maximum(grid, 0.0) * 1000.0,
        export_w=np.maximum(-grid, 0.0) * 1000.0,
        charge_w=ch * 1000.0,
        discharge_w=dis * 1000.0,
        soc_pct=x[SOC] / (bat.capacity_wh / 1000.0) * 100.0,
        load_w=inp.load_w,
        pv_w=inp.pv_w,
        import_price=inp.import_price,
        export_price=inp.export_price,
        setpoints=[],
        soc0_pct=inp.soc_pct,
    )
    p.setpoints = setpoints(p, bat)
    if manual.any():
        act = request.action or "hold"
        power = 0 if act == "hold" else int(round(request.power_w))
        for i in np.flatnonzero(manual):
            p.setpoints[i] = Setpoint(act, power)
    return p


def _compromises(inp: Inputs, bat: Battery, x: FloatArray, cap_w: FloatArray) -> list[str]:
    """Human-readable reasons wherever a soft limit was broken."""

    def when(i: int) -> str:
        return datetime.fromtimestamp(int(inp.ts[i]), UTC).strftime("%Y-%m-%dT%H:%MZ")

    notes = []
    short = np.flatnonzero(x[SHORT] > _EPS_KW)
    if short.size:
        notes.append(
            f"state of charge below the reserve ({bat.floor_pct:g} %) until {when(int(short[-1]))}: "
            f"recovering as fast as the limits allow"
        )
    over = np.flatnonzero(x[OVER] > _EPS_KW)
    if over.size:
        notes.append(f"state of charge above the maximum ({bat.max_soc_pct:g} %) until {when(int(over[-1]))}")
    excess = np.flatnonzero(x[EXCESS] > _EPS_KW)
    if excess.size:
        worst = int(excess[np.argmax(x[EXCESS][excess])])
        notes.append(
            f"import above the cap in {excess.size} slot(s), worst {x[EXCESS][worst] * 1000:.0f} W over "
            f"{cap_w[worst]:.0f} W at {when(worst)}: load minus PV exceeds cap plus battery"
        )
    return notes
