"""How well the fleet's price forecasts did, by bidding zone and horizon.

Devices sync what they forecast (stream ``prices``, documents ``forecast:<made_at>:<slot>``) and
the prices the market cleared (``cleared:<zone>:<slot>``, with the price's resolution). Each
forecast value is paired with the cleared price of the same device covering its slot (an hourly
price covers its four quarter-hours); the device's zone is the cleared price's. Per zone and
horizon (the slot's start minus the forecast's time, in whole-day buckets):

* MAE = mean |forecast − price|, RMSE = √(mean (forecast − price)²) (EUR/MWh);
* WAPE = Σ |forecast − price| / Σ |price| (None when the prices sum to 0).

Forecasts made within the window (``days`` back from now) count; the pairing is done here, not in
SQL, since it spans JSON fields of two kinds of document.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from cloud_sync.db import Database
from cloud_sync.schema.sync import documents
from common.numbers import finite_float

HORIZONS = ((0, 24), (24, 48), (48, 72), (72, None))  # hours ahead, [low, high)
_CLEARED_LOOKBACK_S = 4 * 86_400  # a forecast's slot lies at most a few days after it was made


@dataclass
class _Errors:
    n: int = 0
    abs_sum: float = 0.0
    sq_sum: float = 0.0
    price_abs_sum: float = 0.0

    def add(self, forecast: float, price: float) -> None:
        error = forecast - price
        self.n += 1
        self.abs_sum += abs(error)
        self.sq_sum += error * error
        self.price_abs_sum += abs(price)

    def figures(self) -> dict[str, Any]:
        return {
            "pairs": self.n,
            "mae_eur_mwh": round(self.abs_sum / self.n, 2),
            "rmse_eur_mwh": round(math.sqrt(self.sq_sum / self.n), 2),
            "wape_pct": None if self.price_abs_sum == 0 else round(100.0 * self.abs_sum / self.price_abs_sum, 1),
        }


def horizon_label(hours: float) -> str | None:
    for low, high in HORIZONS:
        if hours >= low and (high is None or hours < high):
            return f"{low}–{high} h" if high is not None else f"{low} h +"
    return None  # a forecast for a slot before it was made: not a forecast


def _finite(value: Any) -> bool:
    return finite_float(value) is not None


async def accuracy(db: Database, now: float, days: int) -> list[dict[str, Any]]:
    """``[{"zone", "horizon", "pairs", "mae_eur_mwh", "rmse_eur_mwh", "wape_pct"}]`` by zone, then horizon."""
    since = now - days * 86_400
    doc = documents.c
    async with db.read() as conn:
        rows = (await conn.execute(select(doc.device_id, doc.key, doc.data).where(
            doc.stream == "prices", doc.ts >= since - _CLEARED_LOOKBACK_S).order_by(doc.device_id))).all()
    cleared: dict[str, list[tuple[float, float, float, str]]] = defaultdict(list)  # device → (slot, end, price, zone)
    forecasts: list[tuple[str, float, float, float]] = []  # (device, made_at, slot, value)
    for device, key, data in rows:
        doc = json.loads(data)
        if str(key).startswith("cleared:") and _finite(doc.get("slot")) and _finite(doc.get("price_eur_mwh")) \
                and _finite(doc.get("resolution_s")) and isinstance(doc.get("zone"), str):
            cleared[device].append((float(doc["slot"]), float(doc["slot"]) + float(doc["resolution_s"]),
                                    float(doc["price_eur_mwh"]), doc["zone"]))
        elif str(key).startswith("forecast:") and _finite(doc.get("ts")) and doc["ts"] >= since \
                and _finite(doc.get("slot")) and _finite(doc.get("forecast_eur_mwh")):
            forecasts.append((device, float(doc["ts"]), float(doc["slot"]), float(doc["forecast_eur_mwh"])))
    for prices in cleared.values():
        prices.sort()
    groups: dict[tuple[str, str], _Errors] = defaultdict(_Errors)
    for device, made_at, slot, value in forecasts:
        prices = cleared.get(device, [])
        at = bisect.bisect_right(prices, (slot, math.inf, math.inf, "")) - 1
        if at < 0 or not prices[at][0] <= slot < prices[at][1]:
            continue  # the market has not cleared that slot (yet), or the device has not synced it
        label = horizon_label((slot - made_at) / 3600)
        if label is not None:
            groups[(prices[at][3], label)].add(value, prices[at][2])
    order = {horizon_label(low): i for i, (low, _) in enumerate(HORIZONS)}
    return [{"zone": zone, "horizon": label, **errors.figures()}
            for (zone, label), errors in sorted(groups.items(), key=lambda g: (g[0][0], order[g[0][1]]))]
