"""``GET /metrics`` over real HTTP: parsed with prometheus_client's own parser; the figures follow
the bridge's retained ``health`` (on a real mosquitto), the app's sources and the store."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from device.store import Store
from device.web.keys import DEPS
from tests.device.web.conftest import logged_in
from tests.device.web.harness import WebStack

TOKEN = "scrape-secret-1"


@pytest.fixture
def web_settings() -> dict[str, Any]:
    return {"metrics_token": TOKEN}


class Figures:
    """A health source whose figures the test changes."""

    def __init__(self, figures: dict[str, Any]) -> None:
        self.figures = figures

    def health(self) -> dict[str, Any]:
        return self.figures


SYNC = {"state": "ok", "lag_s": 12.5, "consecutive_failures": 0, "last_success": "2026-11-29T10:00:00Z",
        "streams": {"readings": {"pending": 40, "items": 1000, "bytes": 5000}, "energy": {"pending": 0, "items": 3, "bytes": 90}}}
PLANNING = {"planner": {"replans": 3, "compromises": ["reserve raised"]},
            "controller": {"commands": 7, "failures": 1, "fallbacks": 1}}


@pytest.fixture
async def scraper(stack: WebStack) -> AsyncIterator[tuple[TestClient, dict[str, Figures]]]:
    sources = {"sync": Figures(dict(SYNC)), "planning": Figures(dict(PLANNING))}
    deps = stack.app[DEPS]
    stack.app[DEPS] = dataclasses.replace(deps, health={**deps.health, **sources})
    async with TestClient(TestServer(stack.app, host="127.0.0.1")) as client:
        yield client, sources


async def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(await response.text()) for s in family.samples}


def bridge_health(transactions: int, timeouts: int, trips: int, latency_counts: list[int], total_s: float) -> dict[str, Any]:
    bounds = ["le_0.005", "le_0.01", "le_0.025", "le_0.05", "le_0.1", "le_inf"]
    return {
        "inverter_online": True, "last_poll": "2026-11-29T10:00:00Z", "readings_buffered": 4, "polls": 10, "written_bytes": 4096 * transactions,
        "modbus": {"state": "ok", "transactions": transactions, "retries": 2, "reconnects": 0,
                   "errors": {"timeout": timeouts, "corrupt": 1}, "queue_depth": {"control": 0, "telemetry": 2},
                   "latency": {"transaction_s": {"count": sum(latency_counts), "sum": total_s,
                                                 "buckets": dict(zip(bounds, latency_counts, strict=True))}}},
        "watchdog": {"mode": "charge", "trips": trips, "expires_in_s": 300.0},
    }


async def publish_bridge_health(stack: WebStack, health: dict[str, Any]) -> None:
    await stack.bridge.session.publish_json(stack.bridge.topics.health, health, retain=True)
    async with asyncio.timeout(10):  # until the app's link has it (the broker delivers it)
        while stack.link.health().get("modbus", {}).get("transactions") != health["modbus"]["transactions"]:
            await asyncio.sleep(0.02)


async def test_metrics_follow_the_bridge_health(stack: WebStack, scraper: tuple[TestClient, dict[str, Figures]]) -> None:
    client, _ = scraper
    await publish_bridge_health(stack, bridge_health(100, 3, 0, [50, 30, 10, 5, 5, 0], 1.5))
    m = await scrape(client)
    assert m[("nattery_modbus_transactions_total", ())] == 100
    assert m[("nattery_modbus_errors_total", (("kind", "timeout"),))] == 3
    assert m[("nattery_modbus_queue_depth", (("priority", "telemetry"),))] == 2
    assert m[("nattery_modbus_transaction_seconds_bucket", (("le", "0.01"),))] == 80  # cumulative
    assert m[("nattery_modbus_transaction_seconds_bucket", (("le", "+Inf"),))] == 100
    assert m[("nattery_modbus_transaction_seconds_sum", ())] == 1.5
    assert m[("nattery_modbus_state", (("state", "ok"),))] == 1
    assert m[("nattery_watchdog_forced", ())] == 1
    assert m[("nattery_inverter_reachable", ())] == 1

    await publish_bridge_health(stack, bridge_health(250, 7, 1, [100, 60, 40, 25, 20, 5], 9.0))
    m = await scrape(client)
    assert m[("nattery_modbus_transactions_total", ())] == 250
    assert m[("nattery_modbus_errors_total", (("kind", "timeout"),))] == 7
    assert m[("nattery_watchdog_trips_total", ())] == 1
    assert m[("nattery_modbus_transaction_seconds_bucket", (("le", "+Inf"),))] == 250
    assert m[("nattery_modbus_transaction_seconds_count", ())] == 250
    assert m[("nattery_bridge_written_bytes_total", ())] == 4096 * 250


async def test_metrics_follow_the_app_sources(scraper: tuple[TestClient, dict[str, Figures]]) -> None:
    client, sources = scraper
    m = await scrape(client)
    assert m[("nattery_sync_lag_seconds", ())] == 12.5
    assert m[("nattery_sync_pending", (("stream", "readings"),))] == 40
    assert m[("nattery_controller_fallbacks_total", ())] == 1
    assert m[("nattery_planner_compromises", ())] == 1
    assert m[("nattery_disk_free_bytes", ())] > 0 and m[("nattery_disk_size_bytes", ())] >= m[("nattery_disk_free_bytes", ())]
    assert m[("nattery_app_written_bytes_total", ())] >= 0

    sources["sync"].figures = {**SYNC, "lag_s": 7200.0, "streams": {"readings": {"pending": 900, "items": 1, "bytes": 1}}}
    sources["planning"].figures = {"planner": {"compromises": []}, "controller": {"fallbacks": 4}}
    m = await scrape(client)
    assert m[("nattery_sync_lag_seconds", ())] == 7200
    assert m[("nattery_sync_pending", (("stream", "readings"),))] == 900
    assert m[("nattery_controller_fallbacks_total", ())] == 4
    assert m[("nattery_planner_compromises", ())] == 0


async def test_forecast_error_over_the_last_day(stack: WebStack, scraper: tuple[TestClient, dict[str, Figures]]) -> None:
    client, _ = scraper
    assert ("nattery_price_forecast_mae_eur_per_mwh", ()) not in await scrape(client)  # nothing to compare yet
    now = int(time.time()) // 900 * 900
    slots = range(now - 8 * 3600, now - 4 * 3600, 900)
    await stack.store.call(Store.upsert_prices, stack.cfg.prices.zone, [(ts, 100.0) for ts in slots], 900, "entsoe", now)
    await stack.store.call(Store.insert_forecast, "price", now - 86_400, [(ts, 90.0) for ts in slots])
    m = await scrape(client)
    assert m[("nattery_price_forecast_mae_eur_per_mwh", ())] == pytest.approx(10.0)
    assert m[("nattery_price_forecast_error_slots", ())] == 16
    await stack.store.call(Store.insert_forecast, "price", now - 40_000, [(ts, 130.0) for ts in slots])  # newer run wins
    m = await scrape(client)
    assert m[("nattery_price_forecast_mae_eur_per_mwh", ())] == pytest.approx(30.0)


async def test_metrics_need_the_token(scraper: tuple[TestClient, dict[str, Figures]]) -> None:
    client, _ = scraper
    assert (await client.get("/metrics")).status == 401
    refused = await client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert refused.status == 401 and "web.metrics_token" in await refused.text()


@pytest.mark.parametrize("web_settings", [{}])
async def test_metrics_are_off_without_a_token(client: TestClient) -> None:
    response = await client.get("/metrics", headers={"Authorization": "Bearer "})
    assert response.status == 404 and "web.metrics_token" in await response.text()


class Alerts:
    def __init__(self) -> None:
        self.active: list[dict[str, Any]] = []

    def health(self) -> dict[str, Any]:
        return {"active": self.active}


async def test_pages_show_a_banner_while_an_alert_is_active(stack: WebStack) -> None:
    alerts = Alerts()
    deps = stack.app[DEPS]
    stack.app[DEPS] = dataclasses.replace(deps, health={**deps.health, "alerts": alerts})
    async with TestClient(TestServer(stack.app, host="127.0.0.1")) as client:
        await logged_in(client, "homeowner")
        assert "alert-banner" not in await (await client.get("/")).text()
        alerts.active = [{"alert": "sync_lag", "summary": "the aggregator is behind", "since": "2026-11-29T10:00:00.000Z"}]
        page = await (await client.get("/")).text()
        assert "alert-banner" in page and "the aggregator is behind (sync_lag" in page
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        families = {s.labels["alert"]: s.value for f in text_string_to_metric_families(await response.text())
                    if f.name == "nattery_alert_active" for s in f.samples}
        assert families["sync_lag"] == 1 and families["data_gap"] == 0 and len(families) == 9
        alerts.active = []
        assert "alert-banner" not in await (await client.get("/")).text()
