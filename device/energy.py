"""Quarter-hour energy (Wh per slot) from telemetry samples; pure functions, no I/O.

Settlement and EDI bill by the quarter hour, so each slot's import, export, charge, discharge,
PV and load energy must be as close to the meter as the data allows and honest about gaps:

- Where the inverter has cumulative energy counters (roles ``energy_import_wh`` …), a slot's
  energy is the counter difference across the slot, read as the last value at or before each
  boundary. Counter differences telescope, so slot sums equal the counter's own totals.
- Otherwise (or when a counter is missing, resets or jumps implausibly) power is integrated:
  each sample's power holds until the next sample (sample-and-hold, which is what a poller
  that saw the value knows), split at slot boundaries, positive and negative parts separately.
- An interval between two samples longer than ``max_gap_s`` is a gap: not integrated, not
  counted as covered. A slot is ``complete`` only when its whole 900 s are covered.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SLOT_S = 900
QUANTITIES = ("import_wh", "export_wh", "charge_wh", "discharge_wh", "pv_wh", "load_wh")
COUNTER_ROLES = {q: f"energy_{q}" for q in QUANTITIES}
MAX_SLOT_WH = 25_000.0  # 100 kW for 15 min: more than any home inverter; larger = counter glitch
_COVERED_TOLERANCE_S = 0.5


@dataclass(frozen=True)
class Sample:
    """One reading as the energy calculation needs it (W, cumulative Wh counters)."""

    ts: float
    grid_w: float | None
    battery_w: float | None
    pv_w: float | None
    load_w: float | None
    counters: Mapping[str, float | None] = field(default_factory=dict)

    def power_parts(self) -> dict[str, float] | None:
        """Power per quantity (W, each >= 0), or None when a power role was not read."""
        if self.grid_w is None or self.battery_w is None or self.pv_w is None or self.load_w is None:
            return None
        return {
            "import_wh": max(self.grid_w, 0.0),
            "export_wh": max(-self.grid_w, 0.0),
            "discharge_wh": max(self.battery_w, 0.0),
            "charge_wh": max(-self.battery_w, 0.0),
            "pv_wh": max(self.pv_w, 0.0),
            "load_wh": max(self.load_w, 0.0),
        }


def slot_start(ts: float) -> int:
    """The start (epoch s) of the quarter hour containing ``ts``."""
    return int(ts // SLOT_S) * SLOT_S


def integrate(samples: Sequence[Sample], start: int, end: int, max_gap_s: float) -> list[dict[str, Any]]:
    """Slots ``start <= ts < end`` (both multiples of 900) that have any data.

    ``samples`` are sorted by time and should include those up to ``max_gap_s`` before
    ``start`` and after ``end``, so coverage and counters at the boundaries are known.
    Returns rows ready for the ``energy_slots`` table (without ``updated_at``).
    """
    slots: dict[int, dict[str, Any]] = {}

    def slot(ts: int) -> dict[str, Any]:
        if ts not in slots:
            slots[ts] = {"ts": ts, **{q: 0.0 for q in QUANTITIES}, "samples": 0, "covered_s": 0.0}
        return slots[ts]

    for i, s in enumerate(samples):
        if start <= s.ts < end:
            slot(slot_start(s.ts))["samples"] += 1
        if i + 1 == len(samples):
            break
        a, b = s.ts, samples[i + 1].ts
        parts = s.power_parts()
        if b - a > max_gap_s or parts is None:
            continue
        a, b = max(a, start), min(b, end)
        while a < b:
            seg_end = min(b, slot_start(a) + SLOT_S)
            row = slot(slot_start(a))
            row["covered_s"] += seg_end - a
            for q, watts in parts.items():
                row[q] += watts * (seg_end - a) / 3600.0
            a = seg_end

    times = [s.ts for s in samples]
    result = []
    for ts in sorted(slots):
        row = slots[ts]
        used = 0
        for q in QUANTITIES:
            delta = _counter_delta(samples, times, q, ts, ts + SLOT_S, max_gap_s)
            if delta is not None:
                row[q] = delta
                used += 1
            row[q] = round(row[q], 3)  # mWh: beyond any meter, and no float dust in sums
        row["source"] = "counter" if used == len(QUANTITIES) else "power" if used == 0 else "mixed"
        row["covered_s"] = round(row["covered_s"], 3)
        row["complete"] = int(row["covered_s"] >= SLOT_S - _COVERED_TOLERANCE_S)
        result.append(row)
    return result


def _counter_delta(
    samples: Sequence[Sample], times: list[float], quantity: str, a: int, b: int, max_gap_s: float
) -> float | None:
    first, last = _counter_at(samples, times, quantity, a, max_gap_s), _counter_at(
        samples, times, quantity, b, max_gap_s
    )
    if first is None or last is None:
        return None
    delta = last - first
    return delta if 0.0 <= delta <= MAX_SLOT_WH else None


def _counter_at(
    samples: Sequence[Sample], times: list[float], quantity: str, t: float, max_gap_s: float
) -> float | None:
    """The counter at time ``t``: the last sample at or before ``t``, if ``t`` is covered."""
    i = bisect.bisect_right(times, t) - 1
    if i < 0 or i + 1 >= len(samples) or times[i + 1] - times[i] > max_gap_s:
        return None
    return samples[i].counters.get(quantity)
