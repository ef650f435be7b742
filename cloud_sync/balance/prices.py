"""Imbalance price series (the German reBAP or any other), uploaded as CSV and validated.

Accepted: a header row, then ``timestamp,price`` per row: the interval start as ISO-8601 with an
offset (``2026-03-29T01:00:00Z``, ``…+02:00``) and the price in EUR/MWh with at most three
decimals. Columns are separated by ``,`` or ``;``; with ``;`` a decimal comma is accepted (as in
the transmission operators' own files). The series must have one resolution (15 or 60 minutes),
no duplicate interval and, for a settlement, no gap over the settled period. Every error names
the row (1 = header), the value and what is allowed. Prices become integer milli-EUR/MWh.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from cloud_sync.balance.timegrid import SLOT_S, iso

RESOLUTIONS_S = (900, 3600)
MAX_PRICE_EUR_MWH = Decimal(100_000)  # far beyond any reBAP ever published (its peak was ~24,000)
MAX_ROWS = 400_000  # ten years of quarter-hours


class PriceError(ValueError):
    """The series is not usable; the message names the row and the value."""


@dataclass(frozen=True)
class PriceSeries:
    resolution_s: int
    prices: dict[int, int]  # interval start → milli-EUR/MWh

    def per_slot(self, start: int, end: int) -> dict[int, int]:
        """The price of every quarter-hour of ``[start, end)``; refuses a gap."""
        out = {}
        for ts in range(start, end, SLOT_S):
            interval = ts - (ts % self.resolution_s) if self.resolution_s == 3600 else ts
            if interval not in self.prices:
                raise PriceError(f"no imbalance price for the quarter-hour starting {iso(ts)}; the series must "
                                 "cover the whole settled period")
            out[ts] = self.prices[interval]
        return out


def milli(text: str, row: int, decimal_comma: bool) -> int:
    """``text`` EUR/MWh as integer milli-EUR/MWh."""
    raw = text.strip().replace(",", ".") if decimal_comma else text.strip()
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise PriceError(f"row {row}: price {text!r} is not a number (EUR/MWh, e.g. 123.45)") from None
    if not value.is_finite() or abs(value) > MAX_PRICE_EUR_MWH:
        raise PriceError(f"row {row}: price {text!r} is outside -{MAX_PRICE_EUR_MWH} to {MAX_PRICE_EUR_MWH} EUR/MWh")
    scaled = value * 1000
    if scaled != scaled.to_integral_value():
        raise PriceError(f"row {row}: price {text!r} has more than three decimals")
    return int(scaled)


def parse_csv(content: str) -> PriceSeries:
    """The series in ``content`` (see the module docstring), or :class:`PriceError`."""
    lines = content.splitlines()
    if not lines:
        raise PriceError("row 1: the file is empty; expected a header row, then timestamp,price rows")
    delimiter = ";" if lines[0].count(";") > lines[0].count(",") else ","
    reader = csv.reader(io.StringIO(content), delimiter=delimiter)
    next(reader)
    prices: dict[int, int] = {}
    rows: dict[int, int] = {}
    previous: int | None = None
    resolution: int | None = None
    for row, fields in enumerate(reader, start=2):
        if not fields or all(not f.strip() for f in fields):
            continue
        if row > MAX_ROWS:
            raise PriceError(f"row {row}: more than {MAX_ROWS} rows; upload at most ten years at once")
        if len(fields) < 2:
            raise PriceError(f"row {row}: {delimiter.join(fields)!r} has {len(fields)} column(s), expected "
                             "timestamp and price")
        ts = _start(fields[0], row)
        if ts in rows:
            raise PriceError(f"row {row}: interval {fields[0].strip()} repeats row {rows[ts]}; one price per interval")
        if previous is not None:
            step = ts - previous
            if step <= 0:
                raise PriceError(f"row {row}: {fields[0].strip()} is before the row above; rows go in time order")
            if resolution is None:
                if step not in RESOLUTIONS_S:
                    raise PriceError(f"row {row}: {step // 60} minutes after the row above; the series must be "
                                     "regular, every 15 or 60 minutes")
                resolution = step
            elif step != resolution:
                raise PriceError(f"row {row}: {fields[0].strip()} is {step // 60} minutes after the row above, the "
                                 f"series so far is every {resolution // 60} minutes (one resolution, no gaps)")
        rows[ts] = row
        prices[ts] = milli(fields[1], row, delimiter == ";")
        previous = ts
    if not prices:
        raise PriceError("row 2: no prices after the header")
    resolution = resolution or SLOT_S
    for ts, row in rows.items():
        if ts % resolution:
            raise PriceError(f"row {row}: {iso(ts)} does not start a {resolution // 60}-minute interval")
    return PriceSeries(resolution, prices)


def _start(text: str, row: int) -> int:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise PriceError(f"row {row}: timestamp {text!r} is not ISO-8601 (e.g. 2026-03-29T01:00:00Z)") from None
    if moment.tzinfo is None:
        raise PriceError(f"row {row}: timestamp {text!r} has no UTC offset (e.g. 2026-03-29T01:00:00Z or +01:00)")
    ts = moment.timestamp()
    if ts % SLOT_S:
        raise PriceError(f"row {row}: timestamp {text!r} is not on a quarter-hour")
    return int(ts)


def to_csv(prices: Mapping[int, int]) -> str:
    """A series back as CSV (UTC, EUR/MWh), the form :func:`parse_csv` reads."""
    out = ["timestamp_utc,price_eur_mwh"]
    for ts in sorted(prices):
        out.append(f"{datetime.fromtimestamp(ts, UTC):%Y-%m-%dT%H:%M:%SZ},{Decimal(prices[ts]) / 1000}")
    return "\n".join(out) + "\n"
