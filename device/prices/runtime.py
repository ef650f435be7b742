"""Wiring for the app: source from the configuration, fetch loop, re-forecast, ``prices`` payload.

``PricesApp(cfg, store, publish)`` is the whole prices-and-forecast part of the app: ``run()``
backfills, follows the daily schedule, re-forecasts after every new piece of data and calls
``publish(payload)`` with the retained ``prices`` message (see :mod:`device.prices.payload`);
``health()`` gives its figures for the ``health`` topic. Cancel the task to stop it.
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
        backoff_s=min(2.0, settings.retry_min_s, settings.retry_max_s), backoff_max_s=min(60.0, settings.retry_max_s),
        limiter=RateLimiter(settings.requests_per_minute),
    )


class PricesApp:
    """The prices part of the app: ``await app.run()`` until cancelled; ``app.health()`` any time.

    Building it checks the configuration (a missing token raises ``ValueError`` naming the key).
    """

    def __init__(
        self,
        cfg: Config,
        store: AsyncStore,
        publish: Callable[[dict[str, Any]], Awaitable[None]],
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.cfg = cfg
        self.sleep = sleep
        self.zone = cfg.prices.zone
        self.store = store
        self.publish = publish
        self.clock = clock
        self.history_days = CSV_BACKFILL_DAYS if cfg.prices.source == "csv" else cfg.prices.history_days
        self.service = PriceService(cfg.prices, store, build_source(cfg.prices), clock=clock, on_update=self.update)
        self.forecaster: PriceForecaster | None = None
        self.forecast_methods: dict[str, str] = {}

    def health(self) -> dict[str, object]:
        return {**self.service.health(), "forecast": self.forecast_methods,
                "model": None if self.forecaster is None or self.forecaster.network is None
                else self.forecaster.network.path.name}

    async def publish_payload(self) -> None:
        await self.publish(await prices_payload(self.store, self.service.status, self.clock(),
                                                self.cfg.forecast.horizon_h))

    async def update(self) -> None:
        """Re-forecast from what is stored, then publish."""
        if self.forecaster is not None:
            try:
                result = await reforecast(self.store, self.forecaster, self.zone, self.clock(),
                                          self.cfg.forecast.horizon_h, self.history_days)
                self.forecast_methods = {} if result is None else result.methods
            except ValueError as exc:  # e.g. no complete day stored yet
                log.warning("price_forecast_failed", zone=self.zone, error=str(exc))
        await self.publish_payload()

    async def run(self) -> None:
        self.forecaster = await asyncio.to_thread(
            PriceForecaster, model_path(self.cfg.forecast, self.zone), self.cfg.device.timezone
        )
        await self.service.backfill(self.history_days)
        delay = await self.service.run_once()
        await self.update()
        shown = _freshness(self.service)
        while True:
            await self.sleep(delay)
            delay = await self.service.run_once()
            if _freshness(self.service) != shown:  # e.g. tomorrow became stale: no new data, still news
                shown = _freshness(self.service)
                await self.publish_payload()


async def run_prices(
    cfg: Config,
    store: AsyncStore,
    publish: Callable[[dict[str, Any]], Awaitable[None]],
    clock: Callable[[], float] = time.time,
) -> None:
    """``PricesApp(...).run()`` for callers that do not need its health figures."""
    await PricesApp(cfg, store, publish, clock).run()


def _freshness(service: PriceService) -> tuple[object, ...]:
    s = service.status
    return (s.today, s.tomorrow, s.stale, s.last_error)


async def fetch_day(settings: PricesSettings, day: date) -> DayPrices:
    """One delivery day from the configured source, checked for completeness (installer check)."""
    source = build_source(settings)
    start, end = day_bounds(day)
    return select_day(await source.day_ahead(settings.zone, start, end), day)
