from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from device import config as configuration
from device.prices.runtime import build_source, run_prices
from device.store import AsyncStore, Store


async def test_simulate_setup_fetches_forecasts_and_publishes_from_the_csv_sample(tmp_path: Path) -> None:
    cfg = configuration.load(environ={}, overrides={"prices": {"source": "csv"}})
    payloads: list[dict[str, Any]] = []
    published = asyncio.Event()

    async def publish(payload: dict[str, Any]) -> None:
        payloads.append(payload)
        published.set()

    async with AsyncStore(tmp_path / "nattery.db") as store:
        task = asyncio.create_task(run_prices(cfg, store, publish))
        await asyncio.wait_for(published.wait(), 60)
        task.cancel()
        p = payloads[-1]
        assert p["zone"] == "DE_LU" and p["source"] == "csv" and p["today"] == "complete"
        assert p["prices"] and p["forecast"]["slots"]  # known prices, then the forecast after them
        assert p["forecast"]["slots"][0]["ts"] == p["known_until"]
        made = await store.call(Store.latest_forecast_made_at, "price")
        assert made is not None


def test_entsoe_without_token_is_refused() -> None:
    cfg = configuration.load(environ={})
    with pytest.raises(ValueError, match="prices.entsoe_token"):
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
