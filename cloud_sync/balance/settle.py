"""Deviation and its cost, per member and quarter-hour, exactly.

``deviation = actual − schedule`` (Wh of net grid import): positive means the group drew more
than it announced (short), negative less (long). The imbalance cost of a slot is
``deviation × price`` (nano-EUR = Wh × milli-EUR/MWh; positive: the balance-responsible party
pays). It is split to the members in proportion to their own deviation, which with one price
per slot is each member's own ``deviation × price``: the shares add up to the group's cost to
the nano-euro, and a member whose deviation offsets the group's is credited.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

ACTUAL_SOURCES = ("edi", "device", "substitute", "excluded", "missing")


@dataclass(frozen=True)
class Position:
    """One member's quarter-hour as it goes into a run. An ``excluded`` (anomalous, by the
    operator's choice) or ``missing`` actual is settled as scheduled: ``actual_wh`` is the
    schedule and the deviation 0."""

    melo: str
    ts: int
    schedule_wh: int
    schedule_source: str
    actual_wh: int
    actual_source: str

    @property
    def deviation_wh(self) -> int:
        return self.actual_wh - self.schedule_wh


@dataclass(frozen=True)
class MemberResult:
    melo: str
    ts: int
    schedule_wh: int
    actual_wh: int
    deviation_wh: int
    price_milli: int
    cost_nano: int
    schedule_source: str
    actual_source: str


@dataclass(frozen=True)
class SlotResult:
    ts: int
    schedule_wh: int
    actual_wh: int
    deviation_wh: int
    price_milli: int
    cost_nano: int
    members: int


def settle(positions: Iterable[Position], prices: Mapping[int, int]) -> list[MemberResult]:
    """Each position's deviation and cost share; ``prices`` must cover every slot."""
    out = []
    for p in positions:
        price = prices[p.ts]
        deviation = p.deviation_wh
        out.append(MemberResult(p.melo, p.ts, p.schedule_wh, p.actual_wh, deviation, price, deviation * price,
                                p.schedule_source, p.actual_source))
    out.sort(key=lambda r: (r.melo, r.ts))
    return out


def per_slot(results: Iterable[MemberResult]) -> list[SlotResult]:
    """The group's quarter-hours: sums over its members."""
    acc: dict[int, list[int]] = {}
    for r in results:
        a = acc.setdefault(r.ts, [0, 0, 0, r.price_milli, 0, 0])
        a[0] += r.schedule_wh
        a[1] += r.actual_wh
        a[2] += r.deviation_wh
        a[4] += r.cost_nano
        a[5] += 1
    return [SlotResult(ts, *a) for ts, a in sorted(acc.items())]


def kwh(wh: int) -> Decimal:
    return Decimal(wh) / 1000


def eur(nano: int) -> Decimal:
    return Decimal(nano) / 1_000_000_000


def eur_mwh(milli: int) -> Decimal:
    return Decimal(milli) / 1000
