"""Reconciliation: the device's quarter-hours against the official ones from the market partner.

Per metering location, OBIS code and German calendar day (the metering day) where both sides
have values: each quarter-hour's difference (device − partner, exact integer Wh) and the day's
totals. A slot is flagged when its difference exceeds ``Tolerance.slot_wh``; a day when its
total differs by more than ``Tolerance.day_pct`` percent of the partner's (or, the partner's
total being 0, by more than ``slot_wh``). Quarter-hours only one side has are counted, not
compared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

GERMAN = ZoneInfo("Europe/Berlin")


@dataclass(frozen=True)
class Tolerance:
    slot_wh: int = 10
    day_pct: float = 2.0


@dataclass(frozen=True)
class Slot:
    start: int
    device_wh: int
    partner_wh: int
    flagged: bool

    @property
    def diff_wh(self) -> int:
        return self.device_wh - self.partner_wh


@dataclass(frozen=True)
class Day:
    melo_id: str
    obis: str
    day: date
    slots: tuple[Slot, ...]
    device_only: int
    partner_only: int
    flagged: bool

    @property
    def device_wh(self) -> int:
        return sum(s.device_wh for s in self.slots)

    @property
    def partner_wh(self) -> int:
        return sum(s.partner_wh for s in self.slots)

    @property
    def diff_wh(self) -> int:
        return self.device_wh - self.partner_wh

    @property
    def diff_pct(self) -> float | None:
        """(device − partner) / partner in percent; None when the partner's total is 0."""
        return None if self.partner_wh == 0 else round(100.0 * self.diff_wh / self.partner_wh, 3)

    def summary(self) -> dict[str, object]:
        return {"melo_id": self.melo_id, "obis": self.obis, "day": self.day.isoformat(), "slots": len(self.slots),
                "device_wh": self.device_wh, "partner_wh": self.partner_wh, "diff_wh": self.diff_wh,
                "diff_pct": self.diff_pct, "flagged": self.flagged,
                "flagged_slots": sum(s.flagged for s in self.slots),
                "device_only_slots": self.device_only, "partner_only_slots": self.partner_only}


def german_day(ts: int) -> date:
    return datetime.fromtimestamp(ts, GERMAN).date()


def compare(melo_id: str, obis: str, device: Mapping[int, int], partner: Mapping[int, int],
            tolerance: Tolerance | None = None) -> list[Day]:
    """Every day of ``melo_id``/``obis`` where both sides have at least one quarter-hour
    (``device`` and ``partner``: slot start → Wh), oldest first."""
    tolerance = tolerance or Tolerance()
    days: dict[date, tuple[list[int], list[int], list[int]]] = {}
    for ts in sorted(set(device) | set(partner)):
        both, device_only, partner_only = days.setdefault(german_day(ts), ([], [], []))
        (both if ts in device and ts in partner else device_only if ts in device else partner_only).append(ts)
    result = []
    for day, (both, device_only, partner_only) in sorted(days.items()):
        if not both:
            continue
        slots = tuple(Slot(ts, device[ts], partner[ts], abs(device[ts] - partner[ts]) > tolerance.slot_wh) for ts in both)
        result.append(_day(melo_id, obis, day, slots, len(device_only), len(partner_only), tolerance))
    return result


def _day(melo_id: str, obis: str, day: date, slots: tuple[Slot, ...], device_only: int, partner_only: int,
         tolerance: Tolerance) -> Day:
    made = Day(melo_id, obis, day, slots, device_only, partner_only, False)
    pct = made.diff_pct
    flagged = abs(made.diff_wh) > tolerance.slot_wh if pct is None else abs(pct) > tolerance.day_pct
    return Day(melo_id, obis, day, slots, device_only, partner_only, flagged)


def csv_rows(days: Iterable[Day]) -> Iterable[list[object]]:
    """One row per compared quarter-hour (header first), for the operator's CSV."""
    yield ["melo_id", "obis", "day", "slot_start", "device_wh", "partner_wh", "diff_wh", "flagged"]
    for day in days:
        for slot in day.slots:
            start = datetime.fromtimestamp(slot.start, ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
            yield [day.melo_id, day.obis, day.day.isoformat(), start, slot.device_wh, slot.partner_wh, slot.diff_wh,
                   int(slot.flagged)]
