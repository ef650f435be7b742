"""Wiring for the app: source from the configuration, fetch loop, re-forecast, ``prices`` payload.

``await run_prices(cfg, store, publish)`` is the whole prices-and-forecast part of the app:
it backfills, follows the daily schedule, re-forecasts after every new piece of data and calls
``publish(payload)`` with the retained ``prices`` message (see :mod:`device.prices.payload`).
Cancel the task to stop it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import structlog

from device.config import Config, PricesSettings
from device.forecast.price import PriceForecaster
from device.forecast.runner import model_path, reforecast
from device.prices.csv_source import CsvSource
from device.prices.days import DayPrices, day_bounds, select_day
from device.prices.entsoe_source import EntsoeSource
from device.prices.payload import prices_payload
from device.prices.ratelimit import RateLimiter
from device.prices.service import PriceService, PriceSource
from device.store import AsyncStore

log = structlog.get_logger(__name__)
CSV_BACKFILL_DAYS = 120  # a replayed sample gains nothing from years of copies of itself


def build_source(settings: PricesSettings) -> PriceSource:
    """The configured source; ``entsoe`` without a token is a configuration error."""
    if settings.source == "csv":
        return CsvSource(settings.csv_path)
    return EntsoeSource(
        settings.entsoe_token, timeout_s=settings.timeout_s,
        backoff_s=min(2.0, settings.retry_min_s), backoff_max_s=min(60.0, settings.retry_max_s),
        limiter=RateLimiter(settings.requests_per_minute),
    )


async def run_prices(
    cfg: Config,
    store: AsyncStore,
    publish: Callable[[dict[str, Any]], Awaitable[None]],
    clock: Callable[[], float] = time.time,
) -> None:
    zone = cfg.prices.zone
    source = build_source(cfg.prices)
    forecaster = await asyncio.to_thread(PriceForecaster, model_path(cfg.forecast, zone), cfg.device.timezone)
    history_days = CSV_BACKFILL_DAYS if cfg.prices.source == "csv" else cfg.prices.history_days

    async def update() -> None:
        try:
            await reforecast(store, forecaster, zone, clock(), cfg.forecast.horizon_h, history_days)
        except ValueError as exc:  # e.g. no complete day stored yet
            log.warning("price_forecast_failed", zone=zone, error=str(exc))
        await publish(await prices_payload(store, service.status, clock(), cfg.forecast.horizon_h))

    service = PriceService(cfg.prices, store, source, clock=clock, on_update=update)
    await service.backfill(history_days)
    delay = await service.run_once()
    await update()
    shown = _freshness(service)
    while True:
        await asyncio.sleep(delay)
        delay = await service.run_once()
        if _freshness(service) != shown:  # e.g. tomorrow became stale: no new data, still news
            shown = _freshness(service)
            await publish(await prices_payload(store, service.status, clock(), cfg.forecast.horizon_h))


def _freshness(service: PriceService) -> tuple[object, ...]:
    s = service.status
    return (s.today, s.tomorrow, s.stale, s.last_error)


async def fetch_day(settings: PricesSettings, day: date) -> DayPrices:
    """One delivery day from the configured source, checked for completeness (installer check)."""
    source = build_source(settings)
    start, end = day_bounds(day)
    return select_day(await source.day_ahead(settings.zone, start, end), day)
