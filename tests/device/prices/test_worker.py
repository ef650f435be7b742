"""The prices worker as the app uses it: a real child process, stopped when it hangs or crashes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from device import config as configuration
from device.config import Config
from device.prices.runtime import PricesApp
from device.prices.service import PriceService
from device.prices.worker import PricesWorker
from device.store import AsyncStore
from tests.device.prices.entsoe_api import Api

NOW = datetime(2025, 10, 14, 13, 0, tzinfo=ZoneInfo("Europe/Brussels")).timestamp()


def entsoe_config() -> Config:
    # ENTSO-E's own timeouts well beyond the worker's: what stops the hang below is the app
    return configuration.load(environ={}, overrides={"prices": {"entsoe_token": "t0ken", "timeout_s": 20}})


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
async def store(tmp_path: Path):
    async with AsyncStore(tmp_path / "nattery.db") as s:
        yield s


async def test_a_hung_worker_is_killed_and_shown_and_the_next_round_starts_a_new_one(
    entsoe_api: Api, store: AsyncStore
) -> None:
    entsoe_api.failures.append("hang")
    cfg = entsoe_config()
    worker = PricesWorker(cfg, fetch_timeout=3)
    service = PriceService(cfg.prices, store, worker, clock=lambda: NOW)
    await service.run_once()
    first = worker.pid
    assert service.status.last_error == "prices worker: no answer to day_ahead within 3 s; stopped it"
    assert service.health()["last_error"] == service.status.last_error and service.status.today == "missing"
    assert first is None or gone(first)  # killed and reaped, not left behind
    await service.run_once()  # the hang is over: a new worker fetches today and tomorrow
    assert service.status.last_error is None and service.status.today == service.status.tomorrow == "complete"
    await worker.close()


async def test_a_crashed_worker_is_an_error_with_its_exit_code(entsoe_api: Api, store: AsyncStore) -> None:
    entsoe_api.failures.append("hang")
    cfg = entsoe_config()
    worker = PricesWorker(cfg)
    service = PriceService(cfg.prices, store, worker, clock=lambda: NOW)
    task = asyncio.create_task(service.run_once())
    await entsoe_api.hanging.wait()  # the worker is inside its first request
    assert worker.pid is not None
    pid = worker.pid
    os.kill(pid, signal.SIGKILL)
    await task
    assert service.status.last_error == (
        f"prices worker exited (code {-signal.SIGKILL}) during day_ahead; its log is in the app's log")
    assert gone(pid) and worker.pid is None
    await service.run_once()
    assert service.status.last_error is None and service.status.today == "complete"
    await worker.close()


async def test_a_forecast_without_an_answer_is_on_health_and_the_prices_are_still_published(
    store: AsyncStore,
) -> None:
    cfg = configuration.load(environ={}, overrides={"prices": {"source": "csv"}})
    payloads: list[dict[str, Any]] = []
    published = asyncio.Event()

    async def publish(payload: dict[str, Any]) -> None:
        payloads.append(payload)
        published.set()

    # no worker starts, loads the model and forecasts four months in a hundredth of a second
    app = PricesApp(cfg, store, publish, worker=PricesWorker(cfg, forecast_timeout=0.01))
    task = asyncio.create_task(app.run())
    await asyncio.wait_for(published.wait(), 60)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    health = app.health()
    assert health["forecast_error"] == "prices worker: no answer to forecast within 0.01 s; stopped it"
    assert health["today"] == "complete" and health["forecast"] == {}
    assert payloads[-1]["prices"] and payloads[-1]["forecast"]["slots"] == []


def test_a_missing_token_is_refused_before_any_worker_starts() -> None:
    with pytest.raises(ValueError, match=r"prices.entsoe_token"):
        PricesWorker(configuration.load(environ={}))


async def test_the_worker_ends_between_rounds(store: AsyncStore) -> None:
    cfg = configuration.load(environ={}, overrides={"prices": {"source": "csv"}})
    worker = PricesWorker(cfg)
    start, end = (datetime(2026, 1, 5, tzinfo=ZoneInfo("UTC")), datetime(2026, 1, 6, tzinfo=ZoneInfo("UTC")))
    slots = await worker.day_ahead("DE_LU", start, end)
    assert len(slots) == 96 and slots[0][0] == int(start.timestamp())
    pid = worker.pid
    assert pid is not None and not gone(pid)
    await worker.close()
    assert gone(pid) and worker.pid is None
    assert date.fromtimestamp(slots[-1][0]) <= end.date()
