"""What a run settles: each member's quarter-hours with the schedule and the actual chosen.

The actual of a slot is the metered net import (import − export) from the best source the store
offers (official EDI meter values over the device's own), or, where an anomaly covers the slot,
what the operator chose (:data:`cloud_sync.balance.anomalies.CHOICES`). A slot without any metered
value is ``missing`` and settled as scheduled (deviation 0), listed in the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cloud_sync.balance.anomalies import CHOICES, Anomaly
from cloud_sync.balance.schedule import member_schedule, substitute_wh
from cloud_sync.balance.settle import Position

Metered = Mapping[int, tuple[int, int, str]]  # slot → (import Wh, export Wh, source)


def build(
    member_slots: Mapping[str, Iterable[int]],
    sent: Mapping[str, Mapping[int, tuple[int, str]]],
    metered: Mapping[str, Metered],
    history: Mapping[str, Mapping[int, int]],
    anomalies: Iterable[Anomaly] = (),
    choice: str = "flag",
) -> list[Position]:
    """Positions of every member slot; ``history`` is each member's earlier net import (slot → Wh)."""
    if choice not in CHOICES:
        raise ValueError(f"anomalies: got {choice!r}, allowed: {', '.join(CHOICES)}")
    flagged: dict[str, list[tuple[int, int]]] = {}
    for a in anomalies:
        flagged.setdefault(a.melo, []).append((a.start, a.end))
    out = []
    for melo, slots in member_slots.items():
        slots = list(slots)
        schedule = member_schedule(slots, sent.get(melo, {}), history.get(melo, {}))
        own = metered.get(melo, {})
        spans = flagged.get(melo, [])
        for ts in slots:
            wh, source = schedule[ts]
            if ts not in own:
                out.append(Position(melo, ts, wh, source, wh, "missing"))
                continue
            imp, exp, actual_source = own[ts]
            actual = imp - exp
            if choice != "flag" and any(lo <= ts < hi for lo, hi in spans):
                replacement = substitute_wh(history.get(melo, {}), ts) if choice == "substitute" else None
                actual, actual_source = (wh, "excluded") if replacement is None else (replacement, "substitute")
            out.append(Position(melo, ts, wh, source, actual, actual_source))
    return out
