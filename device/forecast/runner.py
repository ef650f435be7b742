"""Runs the price forecast on what the store holds and stores the result (kind ``price``).

The prices worker (:mod:`device.services.prices_worker`) calls :func:`reforecast` whenever new
prices or inputs arrived (``PriceService.on_update``) and once after start-up. The forecast
itself is CPU work and runs in a worker thread there.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import structlog

from device.config import ForecastSettings
from device.forecast.history import MarketHistory
from device.forecast.price import PriceForecast, PriceForecaster
from device.market import MARKET_TZ, resolution_for
from device.resources import MODELS_DIR
from device.store import AsyncStore, Store

log = structlog.get_logger(__name__)


def model_path(settings: ForecastSettings, zone: str) -> Path | None:
    """The configured model, else the shipped one for the zone, else ``None`` (fallback)."""
    if settings.model is not None:
        return settings.model
    shipped = MODELS_DIR / f"price_{zone.lower()}.tflite"
    return shipped if shipped.exists() else None


async def load_history(store: AsyncStore, zone: str, now: float, days: int) -> MarketHistory | None:
    """Stored prices (hourly and quarter-hourly as stored) and inputs of the last ``days`` days
    (and tomorrow's inputs), by local day."""
    start, end = int(now - days * 86_400), int(now + 3 * 86_400)
    rows = await store.call(Store.prices_for, zone, start, end)
    if not rows:
        return None
    prices = pd.Series([r["price_eur_mwh"] for r in rows], index=pd.to_datetime([r["ts"] for r in rows], unit="s", utc=True))
    series = await store.call(Store.market_series, zone, start, end)
    exog = {
        name: pd.Series([v for _, v in points], index=pd.to_datetime([t for t, _ in points], unit="s", utc=True))
        for name, points in series.items()
    }
    return MarketHistory.from_series(prices, exog, MARKET_TZ)


async def reforecast(
    store: AsyncStore, forecaster: PriceForecaster, zone: str, now: float, horizon_h: float = 48.0,
    history_days: int = 1460,
) -> PriceForecast | None:
    """Forecast from the stored data and store it; ``None`` while no prices are stored at all."""
    history = await load_history(store, zone, now, history_days)
    if history is None:
        log.info("price_forecast_skipped", zone=zone, reason="no prices stored yet")
        return None
    when = datetime.fromtimestamp(now, UTC)
    result = await asyncio.to_thread(forecaster.predict, history, when, horizon_h, resolution_for)
    await store.call(Store.insert_forecast, "price", result.made_at, result.slots)
    log.info("price_forecast", zone=zone, slots=len(result.slots), methods=result.methods)
    return result
