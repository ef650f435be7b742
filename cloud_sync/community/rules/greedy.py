"""Greedy: the largest seller serves the largest buyer until one of them is done, then the next.

Queues: sellers by sellable Wh descending, buyers by deficit descending, exact ties by member
index (id order). All trades at the community price.
"""

from __future__ import annotations

import numpy as np

from cloud_sync.community.book import Book
from cloud_sync.community.model import MIN_TRADE_WH
from cloud_sync.community.pairs import Pairs, empty, from_walk, walk
from cloud_sync.community.rules.community_price import community_price


def match(book: Book) -> Pairs:
    if not book.open:
        return empty()
    sellers, buyers = book.sellers(MIN_TRADE_WH), book.buyers(MIN_TRADE_WH)
    # lexsort: last key first; a stable order by (-amount, index)
    sellers = sellers[np.lexsort((sellers, -book.cap[sellers]))]
    buyers = buyers[np.lexsort((buyers, -book.need[buyers]))]
    walked = walk(book.cap[sellers].tolist(), book.need[buyers].tolist())
    return from_walk(sellers, buyers, walked, community_price(book))
