"""The schedule this home commits to its balance group: the plan, frozen at the day-ahead cut-off.

At ``market.schedule_cutoff`` (default 14:30 Europe/Berlin, the market's time whatever the home's
zone) the plan for the next local day becomes that day's **day-ahead** schedule: grid import and
export per quarter-hour in whole Wh (the plan's mean watts × ¼ h, rounded). A plan made before
the cut-off that does not yet reach through the next day commits nothing; the first one after
the cut-off that does, commits. Every later plan that changes a slot still to come of a
committed day is an **intraday** revision of the slots from the next quarter-hour on (a
revision never rewrites the past). Each version is stored once and synced in the ``schedules``
stream; the aggregator sums them per balance group (``cloud_sync/balance``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from device.store import Store

MARKET_ZONE = ZoneInfo("Europe/Berlin")
SLOT_S = 900


def plan_slots(plan: Mapping[str, Any]) -> dict[int, tuple[int, int]]:
    """A plan's (``Plan.to_json()``) slots as slot start → (import Wh, export Wh)."""
    return {int(s["ts"]): (round(s["import_w"] * SLOT_S / 3600), round(s["export_w"] * SLOT_S / 3600))
            for s in plan["slots"]}


def _day_slots(day: datetime) -> list[int]:
    start = int(day.timestamp())
    end = int(datetime.combine(day.date() + timedelta(days=1), datetime.min.time(), MARKET_ZONE).timestamp())
    return list(range(start, end, SLOT_S))


def commit(store: Store, plan: Mapping[str, Any], now: float, cutoff: tuple[int, int]) -> list[tuple[str, int]]:
    """Store what ``plan`` commits at ``now``; returns the ``(day, revision)`` pairs written."""
    planned = plan_slots(plan)
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


def _changed(slots: Sequence[int], first: int, planned: Mapping[int, tuple[int, int]],
             in_force: Mapping[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """The planned slots from ``first`` on, if any of them differs from the schedule in force."""
    ahead = {ts: planned[ts] for ts in slots if ts >= first and ts in planned}
    if any(in_force.get(ts) != value for ts, value in ahead.items()):
        return ahead
    return {}
