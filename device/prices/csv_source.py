"""Market data replayed from a CSV file: the price source for local runs without a token.

Same interface as :class:`device.prices.entsoe_source.EntsoeSource`. The file has the layout of
the shared data set (``timestamp_utc`` hour starts, ``price_eur_mwh`` and optionally the
exogenous columns, see ``device/resources/prices/README.md``). Days are replayed cyclically: delivery day
D gets file day ``(D - first day) mod n``; with ``n`` a multiple of 7 weekdays stay weekdays.
Hourly values are spread over the slots of the delivery day in its auction resolution
(quarter-hours repeat their hour from 2025-10-01), so the rest of the device sees the market as
it is today. The zone is not checked: the sample is DE-LU, whatever zone is configured.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from device.forecast.daily import expand_day
from device.forecast.history import CSV_COLUMNS, MarketHistory, read_csv
from device.market import MARKET_TZ, resolution_for
from device.prices.source import Slots
from device.resources import PRICE_SAMPLE


class CsvSource:
    name = "csv"

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or PRICE_SAMPLE
        self._history: MarketHistory | None = None

    async def _load(self) -> MarketHistory:
        if self._history is None:
            history = await asyncio.to_thread(read_csv, self.path, self.path, MARKET_TZ)
            complete = np.isfinite(history.prices).all(axis=1)
            if not complete.any():
                raise ValueError(f"{self.path}: no complete day of prices to replay")
            rows = np.flatnonzero(complete)
            first, last = int(rows[0]), int(rows[-1])
            self._history = MarketHistory(
                days=history.days[first : last + 1],
                prices=history.prices[first : last + 1],
                exog={k: v[first : last + 1] for k, v in history.exog.items()},
            )
        return self._history

    def _days(self, start: datetime, end: datetime) -> list[date]:
        zone = ZoneInfo(MARKET_TZ)
        day = start.astimezone(zone).date()
        last = (end - timedelta(seconds=1)).astimezone(zone).date()
        return [day + timedelta(days=k) for k in range((last - day).days + 1)]

    async def _series(self, column: str | None, start: datetime, end: datetime) -> Slots:
        history = await self._load()
        matrix = history.prices if column is None else history.exog.get(column)
        if matrix is None:
            return []
        n = len(history.days)
        slots: list[tuple[int, float]] = []
        for day in self._days(start, end):
            row = (day - history.days[0].date()).days % n
            values = matrix[row]
            if np.isfinite(values).all():
                slots.extend(expand_day(day, values, MARKET_TZ, resolution_for(day)))
        first, stop = start.timestamp(), end.timestamp()
        return [(ts, v) for ts, v in slots if first <= ts < stop]

    async def day_ahead(self, zone: str, start: datetime, end: datetime) -> Slots:
        return await self._series(None, start, end)

    async def exaa(self, zone: str, start: datetime, end: datetime) -> Slots:
        return await self._series("exaa", start, end)

    async def market_forecasts(self, zone: str, start: datetime, end: datetime) -> dict[str, Slots]:
        out = {}
        for name in sorted(set(CSV_COLUMNS.values()) - {"exaa"}):
            slots = await self._series(name, start, end)
            if slots:
                out[name] = slots
        return out
