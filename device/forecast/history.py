"""Market history by local delivery day: prices and the exogenous day-ahead series.

:class:`MarketHistory` is what the forecaster, the backtest and the training tool share. It is
built from UTC series (the store, ENTSO-E, the shared CSV files) or read from CSV files, including
the epftoolbox benchmark files, which are already in local market time with 24 values a day.

Exogenous names used throughout: ``load``, ``solar``, ``wind_onshore``, ``wind_offshore`` (MW,
day-ahead forecasts), ``exaa`` (EUR/MWh, EXAA auction) and, for epftoolbox DE, ``renewables``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from device.forecast.daily import HOURS, to_day_matrix, to_quarter_matrix

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
    """Rows = consecutive local days from ``days[0]``; NaN = unknown (not yet published).

    ``quarters`` holds the quarter-hour prices where the market cleared quarter-hours (NaN
    elsewhere, see :func:`device.forecast.daily.to_quarter_matrix`); ``None`` for histories
    without UTC timestamps (epftoolbox).
    """

    days: pd.DatetimeIndex
    prices: np.ndarray  # (n, 24) EUR/MWh
    exog: dict[str, np.ndarray] = field(default_factory=dict)  # name → (n, 24)
    quarters: np.ndarray | None = None  # (n, 24, 4) EUR/MWh

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
            quarters=None if self.quarters is None else np.concatenate(
                [self.quarters, np.full((rows, HOURS, 4), np.nan)]),
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
        quarters = None
        if self.quarters is not None:
            quarters = self.quarters[:n].copy()
            quarters[t:] = np.nan
        return MarketHistory(days=self.days[:n], prices=prices, exog={k: v[:n].copy() for k, v in self.exog.items()},
                             quarters=quarters)

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
        history = cls(days=days, prices=pm.values, exog={}, quarters=to_quarter_matrix(prices, tz, days))
        if out:
            history = history.extended(1)
            history = MarketHistory(days=history.days, prices=history.prices, exog=out, quarters=history.quarters)
        return history


def read_csv(
    prices_csv: Path | Sequence[Path], exog_csv: Path | Sequence[Path] | None = None, tz: str = "Europe/Berlin"
) -> MarketHistory:
    """Read the shared data files (UTC, ``timestamp_utc``) or an epftoolbox file (local, 24/day).

    Several price (and exogenous) files are joined in time order, so an hourly history can be
    followed by quarter-hours; where files overlap the later file wins. An epftoolbox file carries
    its exogenous columns itself; ``exog_csv`` is then ignored.
    """
    price_files = [prices_csv] if isinstance(prices_csv, Path) else list(prices_csv)
    exog_files = [] if exog_csv is None else [exog_csv] if isinstance(exog_csv, Path) else list(exog_csv)
    if len(price_files) == 1:
        frame = pd.read_csv(price_files[0])
        frame.columns = [str(c).strip() for c in frame.columns]
        if "timestamp_utc" not in frame.columns:
            return _read_epftoolbox(frame, price_files[0])
    prices = read_price_series(price_files)
    exog: dict[str, pd.Series] = {}
    ex_frames = [_utc_indexed(pd.read_csv(path)) for path in exog_files]
    for column, name in CSV_COLUMNS.items():
        present = [f[column] for f in ex_frames if column in f.columns]
        if present:
            exog[name] = _join(present)
    return MarketHistory.from_series(prices, exog, tz)


def read_price_series(paths: Sequence[Path]) -> pd.Series:
    """Day-ahead prices (EUR/MWh) of the shared data files, UTC-indexed at each slot's start, in
    the files' own resolution (hourly, quarter-hourly or both), joined in time order."""
    frames = []
    for path in paths:
        frame = pd.read_csv(path)
        frame.columns = [str(c).strip() for c in frame.columns]
        if "timestamp_utc" not in frame.columns:
            raise ValueError(f"{path}: no column 'timestamp_utc': only files in UTC can be joined "
                             "(an epftoolbox file in local market time is read on its own)")
        if "price_eur_mwh" not in frame.columns:
            raise ValueError(f"{path}: no column 'price_eur_mwh' (columns: {', '.join(frame.columns)})")
        frames.append(_utc_indexed(frame)["price_eur_mwh"])
    return _join(frames)


def _utc_indexed(frame: pd.DataFrame) -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp_utc"], utc=True))
    return frame.drop(columns="timestamp_utc").set_axis(index).apply(pd.to_numeric, errors="coerce")


def _join(series: list[pd.Series]) -> pd.Series:
    joined = pd.concat(series).astype(float)
    return joined[~joined.index.duplicated(keep="last")].sort_index()


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
