"""The retained MQTT ``prices`` message: known prices, the forecast beyond them, and freshness.

Whoever runs the app loop publishes ``await prices_payload(...)`` as JSON on
``nattery/<device_id>/prices`` (retained) after every change. Shape::

    {"zone": "DE_LU", "source": "entsoe", "unit": "EUR/MWh", "updated_at": "…Z",
     "today": "complete", "tomorrow": "missing", "stale": true, "last_error": null,
     "known_until": "…Z",                        # end of the last known slot
     "prices":   [{"ts": "…Z", "eur_mwh": 81.2, "resolution_s": 900}, …],
     "forecast": {"made_at": "…Z", "slots": [{"ts": "…Z", "eur_mwh": 77.0}, …]}}

``prices`` starts at today 00:00 market time; ``forecast`` only has slots after ``known_until``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from common.utc import format_utc
from device.market import MARKET_TZ
from device.prices.days import day_bounds
from device.prices.service import PriceStatus
from device.store import AsyncStore, Store


def build_prices_payload(
    status: PriceStatus,
    prices: Sequence[Mapping[str, Any]],
    forecast: Sequence[tuple[int, float]],
    now: float,
    forecast_made_at: int | None = None,
) -> dict[str, Any]:
    """The payload from store rows (``ts``, ``price_eur_mwh``, ``resolution_s``) and forecast slots."""
    known_until = max((int(r["ts"]) + int(r["resolution_s"]) for r in prices), default=None)
    future = [(ts, v) for ts, v in forecast if known_until is None or ts >= known_until]
    return {
        "zone": status.zone,
        "source": status.source,
        "unit": "EUR/MWh",
        "updated_at": format_utc(now),
        "today": status.today,
        "tomorrow": status.tomorrow,
        "stale": status.stale,
        "last_error": status.last_error,
        "known_until": None if known_until is None else format_utc(known_until),
        "prices": [
            {"ts": format_utc(r["ts"]), "eur_mwh": round(float(r["price_eur_mwh"]), 2), "resolution_s": int(r["resolution_s"])}
            for r in prices
        ],
        "forecast": {
            "made_at": None if forecast_made_at is None else format_utc(forecast_made_at),
            "slots": [{"ts": format_utc(ts), "eur_mwh": round(float(v), 2)} for ts, v in future],
        },
    }


async def prices_payload(store: AsyncStore, status: PriceStatus, now: float, horizon_h: float = 48.0) -> dict[str, Any]:
    """Read today's and later prices and the latest price forecast from the store; build the payload."""
    start = int(day_bounds(datetime.fromtimestamp(now, ZoneInfo(MARKET_TZ)).date())[0].timestamp())
    end = int(now + horizon_h * 3600) + 86_400
    prices = await store.call(Store.prices_for, status.zone, start, end)
    rows = await store.call(Store.latest_forecast, "price", start, end)
    made = await store.call(Store.latest_forecast_made_at, "price")
    return build_prices_payload(status, prices, [(r["ts"], r["value"]) for r in rows], now, made)
