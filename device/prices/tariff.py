"""The homeowner's tariff: spot price → import and export price per slot (EUR/MWh, gross).

Import price per slot::

    (spot + markup + grid fee(slot) + levies + electricity tax) × (1 + VAT)

The grid fee is flat, or time-variable: windows in local time (optionally only in some months)
override the base fee, as German §14a EnWG module 3 grid fees do. Export price: a fixed feed-in
rate, or spot-based (spot − fee), optionally zero while the spot price is negative.

Documented German example (the defaults in ``device/resources/default.yaml``, 2024 levels, net ct/kWh):
a dynamic tariff with a Tibber/aWATTar-like markup of 1.5, grid fee 10.0 (typical Netzentgelt),
levies 3.234 (Konzessionsabgabe 1.66 + KWKG 0.275 + Offshore-Netzumlage 0.656 + §19 StromNEV
0.643), electricity tax 2.05, 19 % VAT; feed-in 7.94 ct/kWh fixed (EEG, < 10 kWp, partial
feed-in, from 2024-08). At a spot price of 8 ct/kWh that is (8 + 16.78) × 1.19 = 29.5 ct/kWh.
Monthly base fees are left out: they do not depend on how the battery is run.

A §14a module 3 example (three levels, here for all months)::

    grid_fee_windows:
      - {start: "00:00", end: "06:00", fee_eur_mwh: 30.0}    # low
      - {start: "17:00", end: "21:00", fee_eur_mwh: 150.0}   # high
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import ArrayLike, NDArray

from device.config import ConfigError, GridFeeWindow, TariffSettings

FloatArray = NDArray[np.float64]


def _minutes(key: str, text: str) -> int:
    """``"HH:MM"`` → minutes after midnight; ``24:00`` is allowed as an end."""
    hours, sep, minutes = text.partition(":")
    if sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2:
        value = int(hours) * 60 + int(minutes)
        if int(minutes) < 60 and 0 <= value <= 24 * 60:
            return value
    raise ConfigError(f"{key}: got {text!r}, expected local time HH:MM (00:00 to 24:00)")


@dataclass(frozen=True)
class _Window:
    start: int  # minutes after local midnight
    end: int
    fee: float
    months: frozenset[int]

    @classmethod
    def parse(cls, index: int, window: GridFeeWindow) -> _Window:
        key = f"tariff.grid_fee_windows[{index}]"
        bad = [m for m in window.months if not 1 <= m <= 12]
        if bad:
            raise ConfigError(f"{key}.months: got {bad[0]!r}, allowed: 1 to 12")
        start, end = _minutes(f"{key}.start", window.start), _minutes(f"{key}.end", window.end)
        if start == end:
            raise ConfigError(f"{key}: start and end are both {window.start!r}; the window is empty")
        return cls(start, end, window.fee_eur_mwh, frozenset(window.months))

    def covers(self, minute: NDArray[np.int64], month: NDArray[np.int64]) -> NDArray[np.bool_]:
        inside = (minute >= self.start) & (minute < self.end) if self.start < self.end else (
            (minute >= self.start) | (minute < self.end)
        )
        if self.months:
            inside &= np.isin(month, list(self.months))
        return inside


class Tariff:
    """Import and export prices for slots, vectorised over arrays of slot starts."""

    def __init__(self, settings: TariffSettings, timezone: str = "Europe/Berlin") -> None:
        self.settings = settings
        self.zone = ZoneInfo(timezone)
        self._windows = [_Window.parse(i, w) for i, w in enumerate(settings.grid_fee_windows)]

    def grid_fee(self, ts: ArrayLike) -> FloatArray:
        """Net grid fee per slot start (epoch s): the first window that covers it, else the base fee."""
        stamps = np.atleast_1d(np.asarray(ts, dtype=np.int64))
        fee = np.full(stamps.shape, self.settings.grid_fee_eur_mwh, dtype=np.float64)
        if not self._windows:
            return fee
        minute, month = self._local_minute_month(stamps)
        assigned = np.zeros(stamps.shape, dtype=bool)
        for window in self._windows:
            hit = window.covers(minute, month) & ~assigned
            fee[hit] = window.fee
            assigned |= hit
        return fee

    def _local_minute_month(self, stamps: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        # UTC offsets change twice a year: look each distinct hour up once, not every slot.
        hours = stamps // 3600
        unique, inverse = np.unique(hours, return_inverse=True)
        local = [datetime.fromtimestamp(int(h) * 3600, UTC).astimezone(self.zone) for h in unique]
        offset_min = np.array([int(d.utcoffset().total_seconds()) // 60 for d in local])[inverse]  # type: ignore[union-attr]
        month = np.array([d.month for d in local], dtype=np.int64)[inverse]
        return (stamps // 60 + offset_min) % (24 * 60), month

    def import_price(self, ts: ArrayLike, spot: ArrayLike) -> FloatArray:
        """Gross import price (EUR/MWh) per slot from the spot price (EUR/MWh)."""
        s = self.settings
        net = (
            np.asarray(spot, dtype=np.float64)
            + s.markup_eur_mwh
            + self.grid_fee(ts)
            + s.levies_eur_mwh
            + s.electricity_tax_eur_mwh
        )
        return net * (1.0 + s.vat_pct / 100.0)

    def export_value(self, ts: ArrayLike, spot: ArrayLike) -> FloatArray:
        """What the planner counts an exported MWh as worth (EUR/MWh): in an energy-sharing
        community, its price for the expected share of the export and the feed-in for the rest;
        else the feed-in. Settlement keeps :meth:`export_price` (the grid's): the community's
        trades are settled at the aggregator (docs/community.md)."""
        feed_in = self.export_price(ts, spot)
        s = self.settings
        if s.community_price_eur_mwh is None:
            return feed_in
        share = s.community_share_pct / 100.0
        return share * s.community_price_eur_mwh + (1.0 - share) * feed_in

    def export_price(self, ts: ArrayLike, spot: ArrayLike) -> FloatArray:
        """Feed-in price (EUR/MWh) per slot: fixed, or spot − fee; zero while spot < 0 if configured."""
        s = self.settings
        spot_arr = np.atleast_1d(np.asarray(spot, dtype=np.float64))
        if s.export == "fixed":
            price = np.full(spot_arr.shape, s.feed_in_eur_mwh, dtype=np.float64)
        else:
            price = spot_arr - s.export_fee_eur_mwh
        if s.export_zero_when_negative:
            price = np.where(spot_arr < 0, 0.0, price)
        return price
