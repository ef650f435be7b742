"""The order book both price rules walk: asks by (limit ascending, posted earlier, member
index), bids by (limit descending, posted earlier, member index); pairs trade while the bid
reaches the ask. Without an order a member asks the feed-in and bids the import less the fee
(see :mod:`cloud_sync.community.book`)."""

from __future__ import annotations

import numpy as np

from cloud_sync.community.book import Book, Ints
from cloud_sync.community.model import MIN_TRADE_WH
from cloud_sync.community.pairs import walk


def cross(book: Book) -> tuple[Ints, Ints, Ints]:
    """(sellers, buyers, wh) of the crossing trades in priority order (book indices)."""
    sellers, buyers = book.sellers(MIN_TRADE_WH), book.buyers(MIN_TRADE_WH)
    sellers = sellers[np.lexsort((sellers, book.ask_ms[sellers], book.ask[sellers]))]
    buyers = buyers[np.lexsort((buyers, book.bid_ms[buyers], -book.bid[buyers]))]
    asks, bids = book.ask[sellers].tolist(), book.bid[buyers].tolist()
    ks, kb, wh = walk(book.cap[sellers].tolist(), book.need[buyers].tolist(), lambda i, j: bids[j] >= asks[i])
    return sellers[np.asarray(ks, np.int64)], buyers[np.asarray(kb, np.int64)], np.asarray(wh, np.int64)
