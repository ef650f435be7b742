"""The forcing gate: force the inverter only where it pays under the forecast's measured error.

A ``charge``/``discharge``/``hold`` setpoint runs at a planned power, so every watt the real load
or PV differs from its forecast goes to the grid; ``self_consumption`` lets the inverter follow the
house and absorbs the error in the battery. The LP plans on the forecast's mean and sees no such
cost, so on a spiky home it forces for gains smaller than what the error takes away, and can end
up worse than doing nothing.

For the slot about to run the gate compares

* the **gain** of forcing on the forecast: the optimal plan's objective against the same LP with
  this slot pinned to what self-consumption would do (the rest re-optimised), and
* the **risk**: what the net-load error to expect in this slot costs when it goes to the grid
  instead of the battery (:meth:`ForcingGate.risk_eur`: priced where it moves the planned grid
  flow, against the stored energy's value, the planner's terminal value), times a multiplier.
  The error is the
  load's measured one-slot-ahead miss plus the PV's, which scales with the PV forecast for the
  slot (:meth:`ForcingGate.slot_misses_w`): at night no PV can be missed,

and forces only where gain > risk and forcing still gains on the forecast moved against it by
the mean error from the next slot on (:meth:`ForcingGate.adverse`: a grid charge that a sunnier
day would turn into exported PV does not pass). Before a day of errors is measured the misses
are blended with a prior (load misses as large as the configured mean load, PV ±100/50 %);
without a prior it never forces. The error is learned from the device's own forecasts
(:meth:`ForcingGate.observe_slot`). The multiplier is learned from what forcing actually earned:
each settled day's saving against the self-consumption counterfactual, with the energy stored
beyond the counterfactual's valued (:func:`device.accounting.day_result_eur`), goes into
:meth:`ForcingGate.observe_day`; a day that lost doubles the multiplier while the week's sum is
negative (the device forces less), a day that earned relaxes it back towards 1 while the sum is
positive. The device rebuilds it
from the last seven settled days at every plan (:meth:`ForcingGate.replay_days`), and so does
the benchmark.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from device.plan.model import Inputs

ERROR_WINDOW_SLOTS = 7 * 96  # the error means follow the last week (exponential average)
WARMUP_SLOTS = 96  # no forcing before a day of forecast errors is measured
FEEDBACK_DAYS = 7
MULTIPLIER_MIN, MULTIPLIER_MAX = 1.0, 16.0
ADVERSE_SCALE = 2.0  # the adverse forecast moves by twice the mean misses (roughly a bad day's)
FORCING = ("charge", "discharge", "hold")


@dataclass
class ForcingGate:
    """Learned state of the gate: net-load error means (W) and the risk multiplier."""

    error_above_w: float = 0.0  # mean of max(real − forecast, 0), net load (load − PV)
    error_below_w: float = 0.0  # mean of max(forecast − real, 0)
    multiplier: float = 1.0
    days: deque[float] = field(default_factory=lambda: deque(maxlen=FEEDBACK_DAYS))
    declined: int = 0  # forcing setpoints turned into self-consumption (a counter for figures)
    forced: int = 0
    observed: int = 0  # slots whose error was measured
    load_above_w: float = 0.0  # load alone: mean of max(real − forecast, 0)
    load_below_w: float = 0.0
    pv_forecast_w: float = 0.0  # PV alone: mean forecast, and mean miss above and below it
    pv_above_w: float = 0.0
    pv_below_w: float = 0.0
    prior_load_w: float | None = None  # cold start: misses as large as the mean load; None: never force

    def observe_slot(self, load_forecast_w: float, pv_forecast_w: float, load_w: float, pv_w: float) -> None:
        """One slot's load and PV as forecast (the plan made at its start) and as metered."""
        self.observed += 1
        alpha = 1.0 / min(self.observed, ERROR_WINDOW_SLOTS)  # a plain mean until the window is full

        def mean(old: float, new: float) -> float:
            return old + alpha * (new - old)

        miss = (load_w - pv_w) - (load_forecast_w - pv_forecast_w)
        self.error_above_w, self.error_below_w = mean(self.error_above_w, max(miss, 0.0)), mean(self.error_below_w, max(-miss, 0.0))
        load_miss, pv_miss = load_w - load_forecast_w, pv_w - pv_forecast_w
        self.load_above_w, self.load_below_w = mean(self.load_above_w, max(load_miss, 0.0)), mean(self.load_below_w, max(-load_miss, 0.0))
        self.pv_forecast_w = mean(self.pv_forecast_w, pv_forecast_w)
        self.pv_above_w, self.pv_below_w = mean(self.pv_above_w, max(pv_miss, 0.0)), mean(self.pv_below_w, max(-pv_miss, 0.0))

    def observe_day(self, saving_vs_self_consumption_eur: float) -> None:
        """A settled day's saving against the self-consumption counterfactual (< 0: forcing lost).

        Money counts in whole cents, as on a bill: a day that forced nothing differs from the
        counterfactual only by the floating-point noise of adding up equal slot costs (±1e-16
        EUR), which used to count as a lost day. Each day is evidence once, on its own day: a lost
        day doubles the multiplier while the week is down, an earning day relaxes it while the
        week is up, a day at 0.00 leaves it. Doubling on every day the week's sum stayed negative
        counted one lost day up to seven times: a single lost day raised the multiplier to 16 for
        the week after it, declining forcings on days that all earned."""
        saving = round(saving_vs_self_consumption_eur, 2)
        self.days.append(saving)
        week = round(sum(self.days), 2)
        if saving < 0 and week < 0:
            self.multiplier = min(self.multiplier * 2.0, MULTIPLIER_MAX)
        elif saving > 0 and week > 0:
            self.multiplier = max(self.multiplier * 0.8, MULTIPLIER_MIN)

    def replay_days(self, savings_vs_self_consumption_eur: list[float]) -> None:
        """Rebuild the multiplier from settled days' savings, oldest first (the store keeps them,
        so a restart learns the same)."""
        self.days.clear()
        self.multiplier = MULTIPLIER_MIN
        for saving in savings_vs_self_consumption_eur:
            self.observe_day(saving)

    def risk_eur(self, inp: Inputs, stored_value_eur_mwh: float, battery_w: float) -> float:
        """Expected extra cost (EUR) of running the first slot at ``battery_w`` (W, > 0 discharge)
        instead of following the house.

        Following the house, a miss goes to the battery, worth the stored energy's value either
        way. At a fixed power it goes to the grid, at the price of the grid flow where the miss
        moves it: a miss below the forecast first lowers an import (saving the import price),
        then exports (earning the export price); a miss above first lowers an export, then
        imports. A night grid charge importing 5 kW loses nothing when the house needs 300 W
        less: that is 300 W less imported, not exported."""
        if self.observed < WARMUP_SLOTS and self.prior_load_w is None:
            return math.inf  # the error is not known yet: self-consumption
        above_w, below_w = self.slot_misses_w(float(inp.pv_w[0]))
        grid_w = float(inp.load_w[0] - inp.pv_w[0]) - battery_w  # the planned grid flow, > 0 import
        imp, exp, value = float(inp.import_price[0]), float(inp.export_price[0]), stored_value_eur_mwh

        def grid_eur_mwh_w(lo: float, hi: float) -> float:
            """Money (EUR/MWh × W) of the grid flow between ``lo`` and ``hi`` W."""
            return imp * max(hi - max(lo, 0.0), 0.0) + exp * max(min(hi, 0.0) - lo, 0.0)

        above = grid_eur_mwh_w(grid_w, grid_w + above_w) - value * above_w
        below = value * below_w - grid_eur_mwh_w(grid_w - below_w, grid_w)
        dt = float(inp.durations_h[0])
        return self.multiplier * dt * (max(above, 0.0) + max(below, 0.0)) / 1e6

    def slot_misses_w(self, pv_forecast_w: float) -> tuple[float, float]:
        """Mean net-load misses (W, above and below the forecast) to expect in a slot with this PV
        forecast: the load's misses plus the PV's, which scale with the PV expected (none at night).
        A mean over all slots would carry the day's PV misses into the night, where most grid
        charges and holds are planned, and decline them for an error that cannot happen."""
        m = self.means()
        return m["load_above"] + m["pv_below"] * pv_forecast_w, m["load_below"] + m["pv_above"] * pv_forecast_w

    def means(self) -> dict[str, float]:
        """The misses the gate works with: learned, blended with the prior during the first day
        (W; PV as a share of the PV forecast)."""
        learned = {"load_above": self.load_above_w, "load_below": self.load_below_w,
                   "pv_above": self.pv_above_w / max(self.pv_forecast_w, 1.0),
                   "pv_below": self.pv_below_w / max(self.pv_forecast_w, 1.0)}
        if self.prior_load_w is None or self.observed >= WARMUP_SLOTS:
            return learned
        w = self.observed / WARMUP_SLOTS
        p = self.prior_load_w
        prior = {"load_above": p, "load_below": p, "pv_above": 1.0, "pv_below": 0.5}
        return {k: w * learned[k] + (1 - w) * prior[k] for k in learned}

    def adverse(self, inp: Inputs, storing: bool) -> Inputs:
        """The forecast moved against a forcing action from the second slot on: a storing action
        (grid charge, holding energy back) meets a house that needs less (load lower by its mean
        miss below, PV higher by its mean relative miss above), a releasing one (export,
        discharge beyond the load, PV room) one that needs more."""
        m = self.means()
        later = np.arange(len(inp.ts)) >= 1
        pv_ratio = ADVERSE_SCALE * (m["pv_above"] if storing else -m["pv_below"])
        load = inp.load_w + later * ADVERSE_SCALE * (-m["load_below"] if storing else m["load_above"])
        pv = inp.pv_w * (1.0 + later * max(pv_ratio, -1.0))  # PV misses scale with the PV expected
        return replace(inp, load_w=np.maximum(load, 0.0), pv_w=pv)

    def should_force(
        self, gain_eur: float, adverse_gain_eur: float, inp: Inputs, stored_value_eur_mwh: float, battery_w: float
    ) -> bool:
        """True when forcing the first slot gains more than the risk on the forecast (``gain_eur``:
        objective with the first slot on self-consumption minus the optimal one) and still gains
        when the forecast is off against it (``adverse_gain_eur``, the same on :meth:`adverse`)."""
        keep = gain_eur > self.risk_eur(inp, stored_value_eur_mwh, battery_w) and adverse_gain_eur > 0
        if keep:
            self.forced += 1
        else:
            self.declined += 1
        return keep

    def to_json(self) -> dict[str, float | int]:
        return {"error_above_w": round(self.error_above_w, 1), "error_below_w": round(self.error_below_w, 1),
                "load_above_w": round(self.load_above_w, 1), "load_below_w": round(self.load_below_w, 1),
                "pv_above_w": round(self.pv_above_w, 1), "pv_below_w": round(self.pv_below_w, 1),
                "pv_forecast_w": round(self.pv_forecast_w, 1),
                "multiplier": round(self.multiplier, 3), "forced": self.forced, "declined": self.declined}

