"""The day-ahead market's calendar: its time zone and the slot length of each delivery day.

Facts both the price sources (:mod:`device.prices`) and the price forecast (:mod:`device.forecast`)
need; own module so that neither package has to import the other for them.
"""

from __future__ import annotations

from datetime import date

MARKET_TZ = "Europe/Brussels"
QUARTER_HOURS_FROM = date(2025, 10, 1)  # first delivery day of the 15-minute SDAC


def resolution_for(day: date) -> int:
    """Slot length in seconds of the day-ahead auction for delivery ``day``."""
    return 900 if day >= QUARTER_HOURS_FROM else 3600
