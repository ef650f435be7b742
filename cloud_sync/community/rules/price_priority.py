"""Price-priority: members' limit orders matched by price, then time, then member index; each
trade at the price of the order that was posted first (the resting order), at the midpoint
(rounded down) of the two limits when both were posted at the same millisecond."""

from __future__ import annotations

import numpy as np

from cloud_sync.community.book import Book
from cloud_sync.community.pairs import Pairs, empty
from cloud_sync.community.rules.auction import cross


def match(book: Book) -> Pairs:
    if not book.open:
        return empty()
    s, b, wh = cross(book)
    ask, bid = book.ask[s], book.bid[b]
    ask_ms, bid_ms = book.ask_ms[s], book.bid_ms[b]
    price = np.where(ask_ms < bid_ms, ask, np.where(bid_ms < ask_ms, bid, (ask + bid) // 2))
    return Pairs(s, b, wh, price.astype(np.int64))
