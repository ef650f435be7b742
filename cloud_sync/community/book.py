"""A tick as arrays: who may sell how much, who needs how much, at what limits.

Members are indexed in the order of their ids (Python string order), which is the key that
breaks every exact tie in the rules, so a replay gives the same trades whatever order the
positions arrived in. Everything a rule needs is here already bounded: ``cap`` is the surplus
cut to the export limit × tick length (0 for a consumer), ``need`` the deficit, the limits are
clamped into the tick's price band, and a member without an order trades at any price in the
band, posted at the tick's start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cloud_sync.community.model import CommunityError, Member, Tick, TickPrices

Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Book:
    start: int
    prices: TickPrices
    fixed_price: int | None
    ids: tuple[str, ...]
    surplus: Ints
    deficit: Ints
    cap: Ints
    need: Ints
    ask: Ints
    ask_ms: Ints
    bid: Ints
    bid_ms: Ints

    @property
    def open(self) -> bool:
        """Whether any trade is possible at all: a non-empty price band."""
        return self.prices.low <= self.prices.high

    def sellers(self, minimum: int) -> Ints:
        return np.flatnonzero(self.cap >= minimum).astype(np.int64)

    def buyers(self, minimum: int) -> Ints:
        return np.flatnonzero(self.need >= minimum).astype(np.int64)


def build(tick: Tick, members: Mapping[str, Member]) -> Book:
    """The book of ``tick`` for a community whose members are ``members`` (by id)."""
    n = len(tick.positions)
    ids = tuple(p.member for p in tick.positions)  # Tick sorts them by member id
    net = np.fromiter((p.export_wh - p.import_wh for p in tick.positions), np.int64, n)
    limits = np.empty(n, np.int64)
    for i, p in enumerate(tick.positions):
        member = members.get(p.member)
        if member is None:
            raise CommunityError(f"tick {tick.start}: position for {p.member!r}, which is not a member of the community")
        limits[i] = member.sell_cap_wh(tick.length_s)
    surplus = np.maximum(net, 0)
    deficit = np.maximum(-net, 0)
    prices = tick.prices
    default_ms = tick.start * 1000
    ask = np.fromiter((prices.clamp(p.ask.limit) if p.ask else prices.low for p in tick.positions), np.int64, n)
    bid = np.fromiter((prices.clamp(p.bid.limit) if p.bid else prices.high for p in tick.positions), np.int64, n)
    ask_ms = np.fromiter((p.ask.posted_ms if p.ask else default_ms for p in tick.positions), np.int64, n)
    bid_ms = np.fromiter((p.bid.posted_ms if p.bid else default_ms for p in tick.positions), np.int64, n)
    return Book(tick.start, prices, tick.fixed_price, ids, surplus, deficit, np.minimum(surplus, limits), deficit,
                ask, ask_ms, bid, bid_ms)
