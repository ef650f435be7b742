"""Market history by local delivery day: prices and the exogenous day-ahead series.

:class:`MarketHistory` is what the forecaster, the backtest and the training tool share. It is
built from UTC series (the store, ENTSO-E, the shared CSV files) or read from CSV files, including
the epftoolbox benchmark files, which are already in local market time with 24 values a day.

Exogenous names used throughout: ``load``, ``solar``, ``wind_onshore``, ``wind_offshore`` (MW,
day-ahead forecasts), ``exaa`` (EUR/MWh, EXAA auction) and, for epftoolbox DE, ``renewables``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from device.forecast.daily import HOURS, to_day_matrix

# Column names of the shared data files → exogenous names.
CSV_COLUMNS = {
    "load_forecast_mw": "load",
    "solar_forecast_mw": "solar",
    "wind_onshore_forecast_mw": "wind_onshore",
    "wind_offshore_forecast_mw": "wind_offshore",
    "exaa_price_eur_mwh": "exaa",
    # epftoolbox DE.csv
    "ampirion load forecast": "load",
    "pv+wind forecast": "renewables",
}


@dataclass(frozen=True)
class MarketHistory:
    """Rows = consecutive local days from ``days[0]``; NaN = unknown (not yet published)."""

    days: pd.DatetimeIndex
    prices: np.ndarray  # (n, 24) EUR/MWh
    exog: dict[str, np.ndarray] = field(default_factory=dict)  # name → (n, 24)

    @property
    def first_weekday(self) -> int:
        return int(self.days[0].weekday())

    def row(self, day: date) -> int:
        return int((pd.Timestamp(day) - self.days[0]).days)

    def day(self, row: int) -> date:
        return (self.days[0] + pd.Timedelta(days=row)).date()

    def last_complete_price_row(self) -> int:
        """Index of the last day whose 24 hourly prices are all known (-1 if none)."""
        complete = np.flatnonzero(np.isfinite(self.prices).all(axis=1))
        return int(complete[-1]) if len(complete) else -1

    def extended(self, rows: int) -> MarketHistory:
        """The same history with room for ``rows`` more days (NaN)."""
        pad = np.full((rows, HOURS), np.nan)
        return MarketHistory(
            days=pd.date_range(self.days[0], periods=len(self.days) + rows, freq="D"),
            prices=np.vstack([self.prices, pad]),
            exog={k: np.vstack([v, pad]) for k, v in self.exog.items()},
        )

    def as_of(self, target: date) -> MarketHistory:
        """What is known when forecasting delivery day ``target`` on the day before (11:00).

        Prices up to the day before ``target``; exogenous day-ahead series up to ``target``.
        """
        t = self.row(target)
        n = t + 1
        if n > len(self.days):
            raise ValueError(f"target {target} is beyond the history ({self.day(len(self.days) - 1)})")
        prices = self.prices[:n].copy()
        prices[t:] = np.nan
        return MarketHistory(days=self.days[:n], prices=prices, exog={k: v[:n].copy() for k, v in self.exog.items()})

    @classmethod
    def from_series(cls, prices: pd.Series, exog: Mapping[str, pd.Series], tz: str) -> MarketHistory:
        """From UTC-indexed series (hourly or quarter-hourly; gaps allowed)."""
        pm = to_day_matrix(prices, tz)
        days = pm.days
        out: dict[str, np.ndarray] = {}
        for name, series in exog.items():
            if series.dropna().empty:
                continue
            em = to_day_matrix(series, tz)
            aligned = pd.DataFrame(em.values, index=em.days).reindex(days).to_numpy(dtype=float)
            # exogenous forecasts run one day ahead of the prices: keep that day too
            extra = pd.DataFrame(em.values, index=em.days).reindex(days[-1:] + pd.Timedelta(days=1))
            out[name] = np.vstack([aligned, extra.to_numpy(dtype=float)])
        history = cls(days=days, prices=pm.values, exog={})
        if out:
            history = history.extended(1)
            history = MarketHistory(days=history.days, prices=history.prices, exog=out)
        return history


def read_csv(prices_csv: Path, exog_csv: Path | None = None, tz: str = "Europe/Berlin") -> MarketHistory:
    """Read the shared data files (UTC, ``timestamp_utc``) or an epftoolbox file (local, 24/day).

    An epftoolbox file carries its exogenous columns itself; ``exog_csv`` is then ignored.
    """
    frame = pd.read_csv(prices_csv)
    frame.columns = [str(c).strip() for c in frame.columns]
    if "timestamp_utc" not in frame.columns:
        return _read_epftoolbox(frame, prices_csv)
    index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp_utc"], utc=True))
    price_col = "price_eur_mwh"
    if price_col not in frame.columns:
        raise ValueError(f"{prices_csv}: no column {price_col!r} (columns: {', '.join(frame.columns)})")
    prices = pd.Series(frame[price_col].to_numpy(dtype=float), index=index)
    exog: dict[str, pd.Series] = {}
    if exog_csv is not None:
        ex = pd.read_csv(exog_csv)
        ex_index = pd.DatetimeIndex(pd.to_datetime(ex["timestamp_utc"], utc=True))
        for column, name in CSV_COLUMNS.items():
            if column in ex.columns:
                exog[name] = pd.Series(ex[column].to_numpy(dtype=float), index=ex_index)
    return MarketHistory.from_series(prices, exog, tz)


def _read_epftoolbox(frame: pd.DataFrame, path: Path) -> MarketHistory:
    if len(frame) % HOURS:
        raise ValueError(f"{path}: epftoolbox files have 24 rows a day; got {len(frame)} rows")
    stamps = pd.to_datetime(frame.iloc[:, 0])
    days = pd.date_range(stamps.iloc[0].normalize(), periods=len(frame) // HOURS, freq="D")
    columns = list(frame.columns[1:])
    prices = frame[columns[0]].to_numpy(dtype=float).reshape(-1, HOURS)
    exog = {}
    for column in columns[1:]:
        name = CSV_COLUMNS.get(column.lower(), column.lower().replace(" ", "_"))
        exog[name] = frame[column].to_numpy(dtype=float).reshape(-1, HOURS)
    return MarketHistory(days=days, prices=prices, exog=exog)
