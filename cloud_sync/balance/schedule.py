"""A group's schedule: the sum of its members' schedules valid in each quarter-hour, with a
documented substitute for a member whose schedule is missing.

A member's valid schedule for a slot is the newest version sent for it: the day-ahead plan
committed at the cut-off, replaced slot by slot by later intraday revisions (a revision never
reaches back before its own time; the store only offers those). A member without any schedule
for a slot gets a **substitute**: its own metered net import at the same local wall-clock time
on the last four same weekdays (fewer when fewer are metered), averaged and rounded half up to a
whole Wh, flagged ``substitute``. With no such history the slot's schedule is 0 Wh, flagged
``none``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from zoneinfo import ZoneInfo

from cloud_sync.balance.timegrid import MARKET_ZONE, same_weekday_before

SUBSTITUTE_WEEKS = 4
#: How a member's schedule for a slot came about.
SCHEDULE_SOURCES = ("day_ahead", "intraday", "substitute", "none")


def mean_wh(values: Iterable[int]) -> int:
    """The mean of whole Wh, rounded half up (exact integer arithmetic)."""
    items = list(values)
    n = len(items)
    return (2 * sum(items) + n) // (2 * n)


def substitute_wh(history: Mapping[int, int], ts: int, zone: ZoneInfo = MARKET_ZONE) -> int | None:
    """The substitute for slot ``ts`` from a member's metered net import ``history`` (slot → Wh),
    or None when none of the last four same weekdays is metered at that time."""
    found = []
    for weeks in range(1, SUBSTITUTE_WEEKS + 1):
        then = same_weekday_before(ts, weeks, zone)
        if then is not None and then in history:
            found.append(history[then])
    return mean_wh(found) if found else None


def member_schedule(
    slots: Iterable[int], sent: Mapping[int, tuple[int, str]], history: Mapping[int, int],
    zone: ZoneInfo = MARKET_ZONE,
) -> dict[int, tuple[int, str]]:
    """Per slot ``(Wh, source)``: what the member sent (``sent``: slot → (Wh, day_ahead|intraday)),
    else the substitute, else ``(0, "none")``."""
    out = {}
    for ts in slots:
        if ts in sent:
            out[ts] = sent[ts]
            continue
        substitute = substitute_wh(history, ts, zone)
        out[ts] = (0, "none") if substitute is None else (substitute, "substitute")
    return out


def group_schedule(members: Mapping[str, Mapping[int, tuple[int, str]]]) -> dict[int, int]:
    """Per slot, the sum of the members' schedules (each member's mapping holds only the slots
    in which it belongs to the group)."""
    total: dict[int, int] = {}
    for schedule in members.values():
        for ts, (wh, _source) in schedule.items():
            total[ts] = total.get(ts, 0) + wh
    return dict(sorted(total.items()))
