"""Uniform-price clearing: the same trades as the order book's crossing (price, then time,
then member index), all at one price, the midpoint (rounded down) of the marginal pair: the
highest ask and the lowest bid that still trade. Every seller gets at least its ask, every
buyer pays at most its bid."""

from __future__ import annotations

import numpy as np

from cloud_sync.community.book import Book
from cloud_sync.community.pairs import Pairs, empty
from cloud_sync.community.rules.auction import cross


def match(book: Book) -> Pairs:
    if not book.open:
        return empty()
    s, b, wh = cross(book)
    if not len(wh):
        return empty()
    price = (int(book.ask[s[-1]]) + int(book.bid[b[-1]])) // 2
    return Pairs(s, b, wh, np.full(len(wh), price, np.int64))
