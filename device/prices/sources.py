"""The configured price source, built for the processes that may load pandas: the prices worker
(:mod:`device.services.prices_worker`) and the installer's ``nattery prices`` check."""

from __future__ import annotations

from datetime import date

from device.config import PricesSettings
from device.prices.csv_source import CsvSource
from device.prices.days import DayPrices, day_bounds, select_day
from device.prices.entsoe_source import EntsoeSource
from device.prices.ratelimit import RateLimiter
from device.prices.source import PriceSource, check_source


def build_source(settings: PricesSettings) -> PriceSource:
    """The configured source; ``entsoe`` without a token is a configuration error."""
    check_source(settings)
    if settings.source == "csv":
        return CsvSource(settings.csv_path)
    return EntsoeSource(
        settings.entsoe_token, timeout_s=settings.timeout_s,
        backoff_s=min(2.0, settings.retry_min_s, settings.retry_max_s), backoff_max_s=min(60.0, settings.retry_max_s),
        limiter=RateLimiter(settings.requests_per_minute),
    )


async def fetch_day(settings: PricesSettings, day: date) -> DayPrices:
    """One delivery day from the configured source, checked for completeness (installer check)."""
    source = build_source(settings)
    start, end = day_bounds(day)
    return select_day(await source.day_ahead(settings.zone, start, end), day)
