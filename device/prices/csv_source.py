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
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from device.forecast.daily import expand_day
from device.forecast.history import CSV_COLUMNS, MarketHistory, read_csv
from device.market import MARKET_TZ, resolution_for
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

    def _days(self, start: pd.Timestamp, end: pd.Timestamp) -> list[date]:
        day = start.tz_convert(MARKET_TZ).date()
        last = (end - pd.Timedelta(seconds=1)).tz_convert(MARKET_TZ).date()
        return [day + timedelta(days=k) for k in range((last - day).days + 1)]

    async def _series(self, column: str | None, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
        history = await self._load()
        matrix = history.prices if column is None else history.exog.get(column)
        if matrix is None:
            return pd.Series(dtype=float)
        n = len(history.days)
        slots: list[tuple[int, float]] = []
        for day in self._days(start, end):
            row = (day - history.days[0].date()).days % n
            values = matrix[row]
            if np.isfinite(values).all():
                slots.extend(expand_day(day, values, MARKET_TZ, resolution_for(day)))
        index = pd.to_datetime([ts for ts, _ in slots], unit="s", utc=True)
        series = pd.Series([v for _, v in slots], index=index, dtype=float)
        return series[(series.index >= start) & (series.index < end)]

    async def day_ahead(self, zone: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
        return await self._series(None, start, end)

    async def exaa(self, zone: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
        return await self._series("exaa", start, end)

    async def market_forecasts(self, zone: str, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, pd.Series]:
        out = {}
        for name in sorted(set(CSV_COLUMNS.values()) - {"exaa"}):
            series = await self._series(name, start, end)
            if len(series):
                out[name] = series
        return out
