"""Trades of one tick as arrays, and the walk that pairs two ordered queues into them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cloud_sync.community.book import Ints
from cloud_sync.community.model import MIN_TRADE_WH


@dataclass(frozen=True)
class Pairs:
    """Trade k: member ``seller[k]`` sells ``wh[k]`` to ``buyer[k]`` at ``price[k]`` µEUR/kWh
    (book indices; the buyer pays the platform fee on top). The order is the trades' sequence."""

    seller: Ints
    buyer: Ints
    wh: Ints
    price: Ints

    def __len__(self) -> int:
        return len(self.wh)


def empty() -> Pairs:
    none = np.zeros(0, np.int64)
    return Pairs(none, none, none, none)


def walk(supply: Sequence[int], demand: Sequence[int],
         crosses: Callable[[int, int], bool] | None = None) -> tuple[list[int], list[int], list[int]]:
    """Pair a queue of sellers (offering ``supply``) with a queue of buyers (wanting
    ``demand``) front to front, each trade the smaller of the two heads (a partial fill of the
    other). A head whose remainder is below the minimum trade leaves the queue, its remainder
    to the grid. ``crosses(i, j)``, if given, ends the walk at the first heads that may not
    trade (for ordered books, no later pair could). Returns queue positions and Wh per trade.
    """
    out_s: list[int] = []
    out_b: list[int] = []
    out_wh: list[int] = []
    i = j = 0
    n_s, n_b = len(supply), len(demand)
    rs = supply[0] if n_s else 0
    rb = demand[0] if n_b else 0
    while i < n_s and j < n_b:
        if crosses is not None and not crosses(i, j):
            break
        q = min(rs, rb)
        if q >= MIN_TRADE_WH:
            out_s.append(i)
            out_b.append(j)
            out_wh.append(q)
            rs -= q
            rb -= q
        if rs < MIN_TRADE_WH:
            i += 1
            rs = supply[i] if i < n_s else 0
        if rb < MIN_TRADE_WH:
            j += 1
            rb = demand[j] if j < n_b else 0
    return out_s, out_b, out_wh


def from_walk(sellers: Ints, buyers: Ints, walked: tuple[list[int], list[int], list[int]], price: Ints | int) -> Pairs:
    """Pairs from queue positions (``walk``) of the book indices ``sellers`` and ``buyers``."""
    ks, kb, wh = (np.asarray(x, np.int64) for x in walked)
    prices = np.asarray(price, np.int64) if not isinstance(price, int) else np.full(len(wh), price, np.int64)
    return Pairs(sellers[ks], buyers[kb], wh, prices)
