"""Settlement of one tick: the promises checked, each member's energy and money, the digest.

Money per trade (nEUR = Wh × µEUR/kWh, exact): the seller receives ``wh × price``; the buyer
pays ``wh × (price + fee)``; the platform keeps ``wh × fee``. Against the grid, the seller
gains ``wh × (price − feed_in)`` and the buyer saves ``wh × (import − price − fee)``; what is
not traded goes to or comes from the grid at its prices.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cloud_sync.community.book import Book, Ints, build
from cloud_sync.community.model import MIN_TRADE_WH, CommunityError, Member, Tick, TickPrices
from cloud_sync.community.pairs import Pairs
from cloud_sync.community.rules import rule


@dataclass(frozen=True)
class Balances:
    """Per member of the book (same indices): energy in Wh, money in nEUR for this tick."""

    sold_wh: Ints
    bought_wh: Ints
    grid_export_wh: Ints
    grid_import_wh: Ints
    revenue: Ints
    cost: Ints
    fee: Ints
    saving: Ints

    @property
    def net(self) -> Ints:
        """What the community owes the member (negative: what the member owes)."""
        return self.revenue - self.cost


@dataclass(frozen=True)
class TickResult:
    book: Book
    rule: str
    trades: Pairs
    balances: Balances

    @property
    def conservation_error_wh(self) -> int:
        """Wh sold that nobody bought (or the reverse), plus Wh a member sold beyond its
        surplus or bought beyond its deficit: 0 when energy is conserved."""
        b = self.balances
        return (abs(int(b.sold_wh.sum()) - int(b.bought_wh.sum())) + int(np.maximum(-b.grid_export_wh, 0).sum())
                + int(np.maximum(-b.grid_import_wh, 0).sum()))

    def lines(self) -> list[str]:
        """The trades as canonical CSV lines: tick start, sequence, seller, buyer, Wh, price."""
        ids = self.book.ids
        t = self.trades
        return [f"{self.book.start},{k},{ids[s]},{ids[b]},{w},{p}"
                for k, (s, b, w, p) in enumerate(zip(t.seller.tolist(), t.buyer.tolist(), t.wh.tolist(),
                                                     t.price.tolist(), strict=True))]

    def digest(self) -> str:
        """SHA-256 of the canonical lines: two runs agree on the trades iff their digests do."""
        return hashlib.sha256("".join(line + "\n" for line in self.lines()).encode()).hexdigest()


def _sum_by(n: int, members: Ints, amounts: Ints) -> Ints:
    """Exact int64 sums of ``amounts`` per member index (``bincount`` would go through float64)."""
    out = np.zeros(n, np.int64)
    np.add.at(out, members, amounts)
    return out


def violations(book: Book, trades: Pairs) -> list[str]:
    """Every rule of the market that ``trades`` breaks (empty: none)."""
    out: list[str] = []
    n = len(book.ids)
    sold, bought = _sum_by(n, trades.seller, trades.wh), _sum_by(n, trades.buyer, trades.wh)
    for name, bad in (
        ("a trade under the minimum", trades.wh < MIN_TRADE_WH),
        ("a member trading with itself", trades.seller == trades.buyer),
        ("a price below the feed-in", trades.price < book.prices.low),
        ("a price plus fee above the grid import", trades.price > book.prices.high),
    ):
        if bad.any():
            out.append(f"{name}: trade {int(np.flatnonzero(bad)[0])}")
    for name, bad in (("sold beyond its surplus or export limit", sold > book.cap),
                      ("bought beyond its deficit", bought > book.need)):
        if bad.any():
            out.append(f"member {book.ids[int(np.flatnonzero(bad)[0])]} {name}")
    return out


def money(n: int, trades: Pairs, prices: TickPrices) -> dict[str, Ints]:
    """Per member index (``n`` members): Wh sold and bought, and nEUR received (revenue), paid
    (cost, fee included), paid in fees and saved against the grid (the module's rules)."""
    wh, price, fee = trades.wh, trades.price, prices.fee
    return {
        "sold_wh": _sum_by(n, trades.seller, wh),
        "bought_wh": _sum_by(n, trades.buyer, wh),
        "revenue": _sum_by(n, trades.seller, wh * price),
        "cost": _sum_by(n, trades.buyer, wh * (price + fee)),
        "fee": _sum_by(n, trades.buyer, wh * fee),
        "saving": _sum_by(n, trades.seller, wh * (price - prices.feed_in))
        + _sum_by(n, trades.buyer, wh * (prices.grid_import - price - fee)),
    }


def settle(book: Book, rule_name: str, trades: Pairs) -> TickResult:
    """The tick's balances; refuses trades that break a rule of the market (a bug in a rule
    must never reach the accounts)."""
    broken = violations(book, trades)
    if broken:
        raise CommunityError(f"tick {book.start}, rule {rule_name}: refused to settle: {'; '.join(broken)}")
    sums = money(len(book.ids), trades, book.prices)
    balances = Balances(grid_export_wh=book.surplus - sums["sold_wh"], grid_import_wh=book.deficit - sums["bought_wh"],
                        **sums)
    return TickResult(book, rule_name, trades, balances)


def run_book(book: Book, rule_name: str) -> TickResult:
    """Match and settle one tick's book with the named rule."""
    return settle(book, rule_name, rule(rule_name).match(book))


def run_tick(tick: Tick, members: Mapping[str, Member], rule_name: str) -> TickResult:
    """Match and settle one tick with the named rule."""
    return run_book(build(tick, members), rule_name)
