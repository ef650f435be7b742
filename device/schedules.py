"""The schedule this home commits to its balance group: the plan, frozen at the day-ahead cut-off.

At ``market.schedule_cutoff`` (default 14:30 Europe/Berlin, the market's time whatever the home's
zone) the plan for the next local day becomes that day's **day-ahead** schedule: grid import and
export per quarter-hour in whole Wh (the plan's mean watts × ¼ h, rounded). A plan made before
the cut-off that does not yet reach through the next day commits nothing; the first one after
the cut-off that does, commits. Every later plan that changes a slot still to come of a
committed day is an **intraday** revision of the slots from the next quarter-hour on (a
revision never rewrites the past). Each version is stored once and synced in the ``schedules``
stream; the aggregator sums them per balance group (``cloud_sync/balance``).

Each committed slot also carries the home's **flexibility** around it: how many Wh more
(``up``) and less (``down``) it could import in that quarter-hour alone, the rest of the plan
unchanged, within its physical limits (:class:`Limits`): the battery's charge and discharge
power, the energy it can still take above, or give down to its floor from, the plan's state of
charge at the slot's start (through the charge and discharge efficiencies), and the connection's
import and export limits. Flexibility is not additive over slots (using it in one slot moves the
state of charge of all later ones). Whole Wh, rounded down: never more than the home can do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from device.config import Config
from device.plan.model import Battery, Rules
from device.store import Store

MARKET_ZONE = ZoneInfo("Europe/Berlin")
SLOT_S = 900
Slot = tuple[int, int, int, int]  # import Wh, export Wh, flexibility up Wh, down Wh


@dataclass(frozen=True)
class Limits:
    """The physical limits the flexibility is bounded by: the battery as the planner sees it
    (the tighter of battery and inverter) and the grid connection (None: no limit)."""

    battery: Battery
    import_limit_w: float | None = None
    export_limit_w: float | None = None

    @classmethod
    def from_config(cls, cfg: Config) -> Limits:
        rules = Rules.from_config(cfg)
        return cls(Battery.from_config(cfg), rules.import_limit_w, rules.export_limit_w)


def flexibility(slot: Mapping[str, Any], soc_start_pct: float | None, limits: Limits) -> tuple[int, int]:
    """``(up, down)`` Wh of one plan slot (``Plan.to_json()["slots"][i]``; ``soc_pct`` is the
    state of charge at its end); ``soc_start_pct`` is the one at its start (None: derived from
    the slot's own flows)."""
    bat, h = limits.battery, SLOT_S / 3600
    cap = bat.capacity_wh
    charge_wh, discharge_wh = slot["charge_w"] * h, slot["discharge_w"] * h
    if soc_start_pct is None:
        soc_start_pct = slot["soc_pct"] - (charge_wh * bat.charge_efficiency
                                           - discharge_wh / bat.discharge_efficiency) / cap * 100
    stored = soc_start_pct / 100 * cap
    most_charge = min(bat.max_charge_w * h, max(bat.max_soc_pct / 100 * cap - stored, 0.0) / bat.charge_efficiency)
    most_discharge = min(bat.max_discharge_w * h, max(stored - bat.floor_pct / 100 * cap, 0.0) * bat.discharge_efficiency)
    battery_wh = charge_wh - discharge_wh
    up, down = most_charge - battery_wh, battery_wh + most_discharge
    net_wh = (slot["import_w"] - slot["export_w"]) * h
    if limits.import_limit_w is not None:
        up = min(up, limits.import_limit_w * h - net_wh)
    if limits.export_limit_w is not None:
        down = min(down, net_wh + limits.export_limit_w * h)
    return max(math.floor(up + 1e-9), 0), max(math.floor(down + 1e-9), 0)


def plan_slots(plan: Mapping[str, Any], limits: Limits) -> dict[int, Slot]:
    """A plan's (``Plan.to_json()``) slots as slot start → (import Wh, export Wh, up Wh, down Wh)."""
    out = {}
    previous: Mapping[str, Any] | None = None
    for s in plan["slots"]:
        up, down = flexibility(s, None if previous is None else previous["soc_pct"], limits)
        out[int(s["ts"])] = (round(s["import_w"] * SLOT_S / 3600), round(s["export_w"] * SLOT_S / 3600), up, down)
        previous = s
    return out


def _day_slots(day: datetime) -> list[int]:
    start = int(day.timestamp())
    end = int(datetime.combine(day.date() + timedelta(days=1), datetime.min.time(), MARKET_ZONE).timestamp())
    return list(range(start, end, SLOT_S))


def commit(store: Store, plan: Mapping[str, Any], now: float, cutoff: tuple[int, int],
           limits: Limits) -> list[tuple[str, int]]:
    """Store what ``plan`` commits at ``now``; returns the ``(day, revision)`` pairs written."""
    planned = plan_slots(plan, limits)
    local = datetime.fromtimestamp(now, MARKET_ZONE)
    today = datetime.combine(local.date(), datetime.min.time(), MARKET_ZONE)
    tomorrow = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), MARKET_ZONE)
    written = []
    next_slot = (int(now) // SLOT_S + 1) * SLOT_S
    for day in (today, tomorrow):
        name = day.date().isoformat()
        slots = _day_slots(day)
        committed = store.committed_schedule(name)
        if committed is None:
            past_cutoff = (local.hour, local.minute) >= cutoff
            if day is tomorrow and past_cutoff and all(ts in planned for ts in slots):
                store.add_schedule(name, 0, "day_ahead", now, {ts: planned[ts] for ts in slots})
                written.append((name, 0))
            continue
        revision, in_force = committed
        changed = _changed(slots, next_slot, planned, in_force)
        if changed:
            store.add_schedule(name, revision + 1, "intraday", now, changed)
            written.append((name, revision + 1))
    return written


def _changed(slots: Sequence[int], first: int, planned: Mapping[int, Slot],
             in_force: Mapping[int, tuple[int, ...]]) -> dict[int, Slot]:
    """The planned slots from ``first`` on, if the import or export of any of them differs from
    the schedule in force (the flexibility moves with every re-plan and goes along, but alone
    is no revision)."""
    ahead = {ts: planned[ts] for ts in slots if ts >= first and ts in planned}
    if any(in_force.get(ts, ())[:2] != value[:2] for ts, value in ahead.items()):
        return ahead
    return {}
