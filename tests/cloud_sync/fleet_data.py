"""A small fleet's data, uploaded to a running aggregator through its real ingest API, with the
figures the operator's views must show for it (savings, forecast errors, completeness).

``ops-a`` is healthy: fresh readings, two days of complete quarter-hours, settlements, an MSCONS
file, cleared prices and forecasts of them. ``ops-late`` last uploaded readings two hours old
(the ``sync_lag`` alert). ``ops-new`` is registered and has uploaded nothing.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from dataclasses import dataclass, field

import requests
from sqlalchemy import update

from cloud_sync.savings import month_bounds
from cloud_sync.schema.sync import devices
from common import sync_protocol as protocol
from tests.cloud_sync.aggregator import Aggregator

SLOT = 900
SCHEDULE_KWH = 19.2  # revision 1 of tomorrow's schedule: 96 quarter-hours of 200 Wh imported
SAVED_PER_SLOT = 0.12  # cost_no_battery 0.20 − (cost 0.10 − revenue 0.02)
PRICE = 80.0
DAY_AHEAD_ERROR = 10.0  # forecasts made 30 h ahead are 10 EUR/MWh too high
INTRADAY_ERROR = -5.0  # forecasts made 10 h ahead are 5 EUR/MWh too low


@dataclass
class Fleet:
    now: float
    credentials: dict[str, str] = field(default_factory=dict)
    settled_slots: int = 0
    energy_slots: int = 0
    priced_hours: int = 0

    @property
    def savings_eur(self) -> float:
        return round(self.settled_slots * SAVED_PER_SLOT, 2)


def upload(agg: Aggregator, credential: str, device: str, stream: str, items: list[dict[str, object]]) -> None:
    lines = [json.dumps({"seq": i + 1, **item}).encode() for i, item in enumerate(items)]
    body, _, _ = protocol.encode(device, stream, lines, backlog=0)
    response = requests.post(f"{agg.url}/v1/ingest/{stream}", data=body, timeout=30, headers={
        "Content-Type": protocol.CONTENT_TYPE, "Authorization": f"Bearer {credential}"})
    assert response.status_code == 200, response.text


def seed(agg: Aggregator, prefix: str = "ops") -> Fleet:
    now = time.time()
    fleet = Fleet(now)
    for name in ("a", "late", "new"):
        fleet.credentials[f"{prefix}-{name}"] = agg.add_device(f"{prefix}-{name}")
    a, cred = f"{prefix}-a", fleet.credentials[f"{prefix}-a"]
    upload(agg, cred, a, "readings", [
        {"ts": now - 60 + i, "data": {"roles": {"soc_pct": 64.0, "battery_w": -1200.0, "grid_w": 300.0}, "registers": {}}}
        for i in range(10)])
    last_slot = int(now // SLOT) * SLOT - SLOT  # the newest slot that has ended
    slots = [last_slot - i * SLOT for i in range(2 * 96)][::-1]
    fleet.energy_slots = len(slots)
    # registered when its first slot began: every quarter-hour since is expected of it
    agg.execute(update(devices).where(devices.c.id == a).values(created_at=float(slots[0])))
    upload(agg, cred, a, "energy", [
        {"key": str(ts), "data": {"ts": ts, "import_wh": 100.0, "export_wh": 20.0, "charge_wh": 50.0,
                                  "discharge_wh": 40.0, "pv_wh": 150.0, "load_wh": 220.0, "samples": 900,
                                  "covered_s": 900.0, "complete": 1, "source": "counter"}} for ts in slots])
    month_start, _ = month_bounds(now)
    settled = [ts for ts in slots if ts >= month_start]
    fleet.settled_slots = len(settled)
    upload(agg, cred, a, "settlements", [
        {"key": str(ts), "data": {"ts": ts, "import_wh": 100.0, "export_wh": 20.0, "import_price": 300.0,
                                  "export_price": 80.0, "cost_eur": 0.10, "revenue_eur": 0.02,
                                  "cost_no_battery_eur": 0.20, "cost_self_consumption_eur": 0.15}} for ts in settled]
        + [{"key": "unpriced", "data": {"ts": last_slot, "import_wh": 1.0, "export_wh": 0.0, "import_price": None,
                                        "export_price": None, "cost_eur": None, "revenue_eur": None,
                                        "cost_no_battery_eur": None, "cost_self_consumption_eur": None}}])
    upload(agg, cred, a, "edi", [{"key": "MSCONS_ops_1.edi", "data": {
        "name": "MSCONS_ops_1.edi", "created_at": now - 3600, "period_start": last_slot - 86_400,
        "period_end": last_slot, "content": "UNB+UNOC:3+9900000000003:500'"}}])
    start = int(now // 86_400) * 86_400 + 86_400  # tomorrow, 00:00 UTC
    day = datetime.fromtimestamp(start, UTC).date().isoformat()
    upload(agg, cred, a, "schedules", [
        {"key": f"{day}/{revision}", "data": {"ts": now - 7200 + revision, "day": day, "revision": revision,
                                                "kind": "day_ahead" if revision == 0 else "intraday",
                                                "slots": [[start + i * SLOT, 100 * (revision + 1), 0] for i in range(96)]}}
        for revision in (0, 1)])
    hours = [int(now // 3600) * 3600 - h * 3600 for h in range(1, 25)]
    fleet.priced_hours = len(hours)
    prices: list[dict[str, object]] = []
    for slot in hours:
        prices.append({"key": f"cleared:DE_LU:{slot}", "data": {
            "kind": "cleared", "ts": slot - 86_400 + 600, "zone": "DE_LU", "slot": slot, "resolution_s": 3600,
            "price_eur_mwh": PRICE, "source": "entsoe"}})
        for ahead_h, error in ((30, DAY_AHEAD_ERROR), (10, INTRADAY_ERROR)):
            made = slot - ahead_h * 3600
            prices.append({"key": f"forecast:{made}:{slot}", "data": {
                "kind": "forecast", "ts": made, "slot": slot, "forecast_eur_mwh": PRICE + error}})
    upload(agg, cred, a, "prices", prices)
    late = f"{prefix}-late"
    upload(agg, fleet.credentials[late], late, "readings", [
        {"ts": now - 7200 + i, "data": {"roles": {"soc_pct": 20.0}, "registers": {}}} for i in range(3)])
    return fleet
