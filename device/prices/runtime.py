"""Wiring for the app: source from the configuration, fetch loop, re-forecast, ``prices`` payload.

``PricesApp(cfg, store, publish)`` is the whole prices-and-forecast part of the app: ``run()``
backfills, follows the daily schedule, re-forecasts after every new piece of data and calls
``publish(payload)`` with the retained ``prices`` message (see :mod:`device.prices.payload`);
``health()`` gives its figures for the ``health`` topic. Cancel the task to stop it.

The source and the forecast run in the prices worker (:mod:`device.prices.worker`), started for
each round of work (the backfill, a scheduled fetch with its re-forecast) and ended after it, so
the app itself holds neither pandas nor the forecast's model between rounds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from device.config import Config
from device.prices.payload import prices_payload
from device.prices.service import PriceService
from device.prices.source import FetchError
from device.prices.worker import PricesWorker
from device.store import AsyncStore

log = structlog.get_logger(__name__)
CSV_BACKFILL_DAYS = 120  # a replayed sample gains nothing from years of copies of itself


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
        worker: PricesWorker | None = None,
    ) -> None:
        self.cfg = cfg
        self.sleep = sleep
        self.zone = cfg.prices.zone
        self.store = store
        self.publish = publish
        self.clock = clock
        self.history_days = CSV_BACKFILL_DAYS if cfg.prices.source == "csv" else cfg.prices.history_days
        self.worker = worker or PricesWorker(cfg)
        self.service = PriceService(cfg.prices, store, self.worker, clock=clock, on_update=self.update)
        self.model: str | None = None
        self.forecast_methods: dict[str, str] = {}
        self.forecast_error: str | None = None

    def health(self) -> dict[str, object]:
        return {**self.service.health(), "forecast": self.forecast_methods, "model": self.model,
                "forecast_error": self.forecast_error}

    async def publish_payload(self) -> None:
        await self.publish(await prices_payload(self.store, self.service.status, self.clock(),
                                                self.cfg.forecast.horizon_h))

    async def update(self) -> None:
        """Re-forecast from what is stored, then publish."""
        try:
            result = await self.worker.forecast(self.store.path, self.clock(), self.history_days)
            self.forecast_methods, self.model, self.forecast_error = result["methods"], result["model"], None
        except ValueError as exc:  # e.g. no complete day stored yet
            log.warning("price_forecast_failed", zone=self.zone, error=str(exc))
        except FetchError as exc:  # the worker crashed or hung: the next update tries again
            log.error("price_forecast_failed", zone=self.zone, error=str(exc))
            self.forecast_error = str(exc)
        await self.publish_payload()

    async def run(self) -> None:
        try:
            await self.service.backfill(self.history_days)
            delay = await self.service.run_once()
            await self.update()
            await self.worker.close()
            shown = _freshness(self.service)
            while True:
                await self.sleep(delay)
                delay = await self.service.run_once()
                await self.worker.close()
                if _freshness(self.service) != shown:  # e.g. tomorrow became stale: no new data, still news
                    shown = _freshness(self.service)
                    await self.publish_payload()
        finally:
            await self.worker.close()


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
