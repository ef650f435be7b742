"""A tick as arrays: who may sell how much, who needs how much, at what limits.

Members are indexed in the order of their ids (Python string order), which is the key that
breaks every exact tie in the rules, so a replay gives the same trades whatever order the
positions arrived in. Everything a rule needs is here already bounded: ``cap`` is the surplus
cut to the export limit × tick length (0 for a consumer), ``need`` the deficit, the limits are
clamped into the tick's price band, and a member without an order trades at any price in the
band, posted at the tick's start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


@dataclass(frozen=True)
class Terms:
    """What the members' memberships fix for a tick, per member (the book's indices): the most
    each may sell (its export limit × tick length, 0 for a consumer) and its standing orders
    (``has_ask``/``has_bid`` False: none) with the times they were posted."""

    limit_wh: Ints
    has_ask: npt.NDArray[np.bool_]
    ask: Ints
    ask_ms: Ints
    has_bid: npt.NDArray[np.bool_]
    bid: Ints
    bid_ms: Ints


def assemble(start: int, prices: TickPrices, fixed_price: int | None, ids: tuple[str, ...], import_wh: Ints,
             export_wh: Ints, terms: Terms) -> Book:
    """The book from arrays (members in id order, see the module): the one place that turns
    positions and memberships into what a rule may do."""
    net = export_wh - import_wh
    surplus = np.maximum(net, 0)
    deficit = np.maximum(-net, 0)
    low, high = prices.low, prices.high
    # as TickPrices.clamp: the band's low end wins when the band is empty
    ask = np.where(terms.has_ask, np.maximum(low, np.minimum(high, terms.ask)), low)
    bid = np.where(terms.has_bid, np.maximum(low, np.minimum(high, terms.bid)), high)
    default_ms = start * 1000
    return Book(start, prices, fixed_price, ids, surplus, deficit, np.minimum(surplus, terms.limit_wh), deficit,
                ask, np.where(terms.has_ask, terms.ask_ms, default_ms), bid,
                np.where(terms.has_bid, terms.bid_ms, default_ms))


def build(tick: Tick, members: Mapping[str, Member]) -> Book:
    """The book of ``tick`` for a community whose members are ``members`` (by id)."""
    n = len(tick.positions)
    positions = tick.positions  # Tick sorts them by member id
    limits = np.empty(n, np.int64)
    for i, p in enumerate(positions):
        member = members.get(p.member)
        if member is None:
            raise CommunityError(f"tick {tick.start}: position for {p.member!r}, which is not a member of the community")
        limits[i] = member.sell_cap_wh(tick.length_s)

    def column(values: Iterable[int]) -> Ints:
        return np.fromiter(values, np.int64, n)

    terms = Terms(limits, np.fromiter((p.ask is not None for p in positions), np.bool_, n),
                  column(p.ask.limit if p.ask else 0 for p in positions),
                  column(p.ask.posted_ms if p.ask else 0 for p in positions),
                  np.fromiter((p.bid is not None for p in positions), np.bool_, n),
                  column(p.bid.limit if p.bid else 0 for p in positions),
                  column(p.bid.posted_ms if p.bid else 0 for p in positions))
    return assemble(tick.start, tick.prices, tick.fixed_price, tuple(p.member for p in positions),
                    column(p.import_wh for p in positions), column(p.export_wh for p in positions), terms)
