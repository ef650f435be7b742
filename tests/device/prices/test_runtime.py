from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from device import config as configuration
from device.prices.runtime import PricesApp, run_prices
from device.prices.sources import build_source
from device.store import AsyncStore, Store


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel the prices task and wait for it: it ends its worker process on the way out."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_simulate_setup_fetches_forecasts_and_publishes_from_the_csv_sample(tmp_path: Path) -> None:
    cfg = configuration.load(environ={}, overrides={"prices": {"source": "csv"}})
    payloads: list[dict[str, Any]] = []
    published = asyncio.Event()

    async def publish(payload: dict[str, Any]) -> None:
        payloads.append(payload)
        published.set()

    async with AsyncStore(tmp_path / "nattery.db") as store:
        app = PricesApp(cfg, store, publish)
        task = asyncio.create_task(app.run())
        await asyncio.wait_for(published.wait(), 60)
        await stop(task)
        health = app.health()
        assert health["today"] == "complete" and health["model"] == "price_de_lu.tflite"
        assert set(health["forecast"].values()) <= {"blend", "network"}  # type: ignore[union-attr]
        p = payloads[-1]
        assert p["zone"] == "DE_LU" and p["source"] == "csv" and p["today"] == "complete"
        assert p["prices"] and p["forecast"]["slots"]  # known prices, then the forecast after them
        assert p["forecast"]["slots"][0]["ts"] == p["known_until"]
        # the 15-minute market: every forecast quarter-hour its own value, not its hour's repeated
        values = [s["eur_mwh"] for s in p["forecast"]["slots"][:96]]
        assert len(values) == 96 and all(r["resolution_s"] == 900 for r in p["prices"])
        assert all(len(set(values[h * 4 : h * 4 + 4])) > 1 for h in range(24))
        made = await store.call(Store.latest_forecast_made_at, "price")
        assert made is not None


def test_entsoe_without_token_is_refused() -> None:
    cfg = configuration.load(environ={})
    with pytest.raises(ValueError, match=r"prices.entsoe_token"):
        build_source(cfg.prices)


def test_prices_command_prints_a_day_and_fails_on_missing_token(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from click.testing import CliRunner

    from device.cli import main

    monkeypatch.setenv("NATTERY_PRICES_SOURCE", "csv")
    result = CliRunner().invoke(main, ["prices", "--day", "2026-03-29", "--json"])
    assert result.exit_code == 0, result.output
    day = json.loads(result.output)
    assert day["state"] == "complete" and len(day["slots"]) == 92 and day["resolution_s"] == 900
    monkeypatch.setenv("NATTERY_PRICES_SOURCE", "entsoe")
    result = CliRunner().invoke(main, ["prices"])
    assert result.exit_code == 1 and "prices.entsoe_token" in result.output


async def test_entsoe_loop_publishes_when_tomorrow_turns_stale_and_again_when_it_arrives(
    entsoe_api: Any, tmp_path: Path
) -> None:
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    brussels = ZoneInfo("Europe/Brussels")
    entsoe_api.partial[date(2025, 10, 15)] = 50
    cfg = configuration.load(environ={}, overrides={"prices": {
        "entsoe_token": "t0ken", "history_days": 7, "retry_min_s": 0.05, "retry_max_s": 0.05, "timeout_s": 1}})
    now = [datetime(2025, 10, 14, 13, 0, tzinfo=brussels).timestamp()]
    payloads: list[dict[str, Any]] = []
    event = asyncio.Event()

    async def publish(payload: dict[str, Any]) -> None:
        payloads.append(payload)
        event.set()

    async def next_payload() -> dict[str, Any]:
        event.clear()
        await asyncio.wait_for(event.wait(), 30)
        return payloads[-1]

    async with AsyncStore(tmp_path / "nattery.db") as store:
        task = asyncio.create_task(run_prices(cfg, store, publish, clock=lambda: now[0]))
        first = await next_payload()
        assert first["tomorrow"] == "missing" and first["stale"] is False and first["forecast"]["slots"]
        now[0] = datetime(2025, 10, 14, 14, 5, tzinfo=brussels).timestamp()
        # nothing new arrives, but tomorrow is now late: that alone must be published
        while not (await next_payload())["stale"]:
            pass
        entsoe_api.partial.clear()
        while (p := await next_payload())["tomorrow"] != "complete":
            pass
        await stop(task)
        assert p["stale"] is False and len(p["prices"]) == 96 * 2
        assert p["forecast"]["slots"][0]["ts"] == p["known_until"] == "2025-10-15T22:00:00.000Z"
