"""The one price of the rules that ignore members' limits (greedy, proportional)."""

from __future__ import annotations

from cloud_sync.community.book import Book


def community_price(book: Book) -> int:
    """The community's fixed price clamped into the tick's band, else the band's midpoint
    (rounded down to a whole µEUR/kWh)."""
    if book.fixed_price is not None:
        return book.prices.clamp(book.fixed_price)
    return book.prices.midpoint()
