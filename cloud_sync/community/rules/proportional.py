"""Proportional sharing: every seller sells the same share of what it may sell, every buyer
gets the same share of its deficit (the short side is served in full).

The shares are rounded to whole Wh by largest remainder (exact ties by member index), so they
add up exactly to the energy shared. Who delivers to whom is then read off the two lists in
member order (north-west corner): at most sellers + buyers − 1 trades instead of a crumb from
every seller to every buyer, which the 10 Wh minimum would mostly forbid. A piece under the
minimum stays with the grid, so a member may get up to 9 Wh less than its share.
"""

from __future__ import annotations

import numpy as np

from cloud_sync.community.book import Book, Ints
from cloud_sync.community.model import MIN_TRADE_WH
from cloud_sync.community.pairs import Pairs, empty, from_walk, walk
from cloud_sync.community.rules.community_price import community_price


def shares(amounts: Ints, total: int) -> Ints:
    """``amounts`` scaled to add up to ``total`` (≤ their sum), each rounded down, the Wh left
    over given one each to the largest remainders (ties: lower index first)."""
    whole = int(amounts.sum())
    if total >= whole:
        return amounts.copy()
    scaled = amounts * total
    out = scaled // whole
    left = total - int(out.sum())
    if left:
        order = np.lexsort((np.arange(len(amounts)), -(scaled % whole)))
        out[order[:left]] += 1
    return out


def match(book: Book) -> Pairs:
    if not book.open:
        return empty()
    sellers, buyers = book.sellers(MIN_TRADE_WH), book.buyers(MIN_TRADE_WH)
    cap, need = book.cap[sellers], book.need[buyers]
    shared = min(int(cap.sum()), int(need.sum()))
    walked = walk(shares(cap, shared).tolist(), shares(need, shared).tolist())
    return from_walk(sellers, buyers, walked, community_price(book))
