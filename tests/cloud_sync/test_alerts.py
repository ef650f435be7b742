"""Alerts at the aggregator: ``device_silent`` and ``sync_lag`` raised and cleared, as rules on a
driven clock and through ``/v1/alerts`` and ``/v1/devices`` of a real ``nattery-cloud serve``."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import update

from cloud_sync.alerting import device_alerts
from cloud_sync.schema import sync as schema
from common.utc import format_utc
from tests.cloud_sync.aggregator import Aggregator, aggregator, batch_body, cloud_target, pg_url  # noqa: F401
from tests.cloud_sync.test_app import get, post

T0 = 1_780_000_000.0


def row(last_seen: float | None, newest: float | None, **extra: Any) -> dict[str, Any]:
    return {"id": "d", "created_at": format_utc(T0 - 86_400), "revoked": False,
            "last_seen": None if last_seen is None else format_utc(last_seen),
            "latest_telemetry": None if newest is None else {"ts": newest}, **extra}


def names(alerts: list[dict[str, Any]]) -> list[str]:
    return [a["alert"] for a in alerts]


def test_device_silent_is_raised_after_30_minutes_and_cleared_by_an_upload() -> None:
    assert names(device_alerts(row(T0, T0), T0 + 1799)) == []
    silent = device_alerts(row(T0, T0 - 10), T0 + 1801)
    assert names(silent) == ["device_silent"] and silent[0]["since"] == format_utc(T0 + 1800)
    assert silent[0]["severity"] == "critical"
    assert names(device_alerts(row(T0 + 1900, T0 + 1890), T0 + 1901)) == []  # it uploaded again


def test_a_device_that_never_uploaded_is_silent_from_its_registration() -> None:
    assert names(device_alerts(row(None, None), T0 - 86_400 + 1000)) == []
    assert names(device_alerts(row(None, None), T0)) == ["device_silent"]


def test_sync_lag_is_raised_and_cleared() -> None:
    lagging = device_alerts(row(T0, T0 - 4000), T0)  # uploading, but an old backlog
    assert names(lagging) == ["sync_lag"] and lagging[0]["since"] == format_utc(T0 - 400)
    assert names(device_alerts(row(T0, T0 - 30), T0)) == []


def test_a_revoked_device_has_no_alert() -> None:
    assert device_alerts(row(T0 - 99_999, T0 - 99_999, revoked=True), T0) == []


def readings(first: int, last: int, ts: float) -> list[dict[str, Any]]:
    return [{"seq": s, "ts": ts + s, "data": {"roles": {"soc_pct": 50.0}, "registers": {}}} for s in range(first, last + 1)]


async def test_alerts_over_http(aggregator: Aggregator) -> None:
    op, dev = aggregator.add_operator("alerts-op"), aggregator.add_device("alerts-dev")
    now = time.time()
    assert (await post(aggregator, dev, "readings", batch_body("alerts-dev", "readings", readings(1, 5, now - 7200))))[0] == 200
    status, listing = await get(aggregator, op, "/v1/alerts")
    assert status == 200
    assert [a["alert"] for a in listing["alerts"] if a["device"] == "alerts-dev"] == ["sync_lag"]

    aggregator.execute(update(schema.devices).where(schema.devices.c.id == "alerts-dev").values(last_seen=now - 4000))
    _, one = await get(aggregator, op, "/v1/devices/alerts-dev")
    assert names(one["alerts"]) == ["sync_lag", "device_silent"]
    _, devices = await get(aggregator, op, "/v1/devices")
    assert names(next(d for d in devices["devices"] if d["id"] == "alerts-dev")["alerts"]) == ["sync_lag", "device_silent"]

    assert (await post(aggregator, dev, "readings", batch_body("alerts-dev", "readings", readings(6, 10, now - 20))))[0] == 200
    _, listing = await get(aggregator, op, "/v1/alerts")
    assert [a for a in listing["alerts"] if a["device"] == "alerts-dev"] == []
    assert (await get(aggregator, dev, "/v1/alerts"))[0] == 403
