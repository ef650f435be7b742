"""What the price service needs from a source, in plain Python (no data-frame library).

A source answers in :data:`Slots`: ``(UTC epoch s of the slot start, value)`` in time order,
within ``[start, end)``, unknown values left out. The sources that talk to the outside world
(:mod:`device.prices.entsoe_source`, :mod:`device.prices.csv_source`) use pandas and run in the
short-lived prices worker (:mod:`device.services.prices_worker`); the app reaches them through
:class:`device.prices.worker.WorkerSource` and so never loads pandas itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from device.config import PricesSettings

Slots = list[tuple[int, float]]
EXAA_ZONES = frozenset({"DE_LU", "AT"})  # EXAA is published on ENTSO-E as sequence 2 of these zones
MISSING_TOKEN = "prices.entsoe_token: empty; set NATTERY_PRICES_ENTSOE_TOKEN or use prices.source: csv"


class FetchError(RuntimeError):
    """The source could not deliver (after retries, or a permanent refusal). Never holds the token."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class PriceSource(Protocol):
    """ENTSO-E, a CSV replay, a future EXAA feed, or the worker that runs one of them."""

    name: str

    async def day_ahead(self, zone: str, start: datetime, end: datetime) -> Slots: ...
    async def exaa(self, zone: str, start: datetime, end: datetime) -> Slots: ...
    async def market_forecasts(self, zone: str, start: datetime, end: datetime) -> dict[str, Slots]: ...


def check_source(settings: PricesSettings) -> None:
    """Refuse a configuration no source can be built from (``entsoe`` without a token)."""
    if settings.source == "entsoe" and not settings.entsoe_token:
        raise ValueError(MISSING_TOKEN)
