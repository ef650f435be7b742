"""The app service: job supervision, and its health on MQTT (real mosquitto, real store)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import aiomqtt

from device import config as configuration
from device.app import run_app
from device.supervision import TaskHealth, supervise
from tests.conftest import Broker


async def test_supervise_restarts_a_crashing_job_and_records_its_state() -> None:
    runs: list[str] = []
    record = TaskHealth()

    async def flaky() -> Any:
        runs.append(record.state["flaky"])
        if len(runs) < 3:
            raise RuntimeError("boom")

    await asyncio.wait_for(supervise("flaky", flaky, backoff_max_s=0.01, record=record), 10)
    assert runs == ["running"] * 3
    assert record.health() == {"flaky": {"state": "done", "restarts": 2, "last_error": "RuntimeError('boom')"}}


async def test_the_app_publishes_its_health_retained_next_to_the_bridges(tmp_path: Path, mosquitto: Broker) -> None:
    cfg = configuration.load([configuration.DEFAULT_FILE], environ={}, overrides={
        "device": {"data_dir": str(tmp_path), "id": "apphealth"},
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port},
        "web": {"host": "127.0.0.1", "port": 0},
        "prices": {"source": "csv", "exogenous": False},
        "bridge": {"health_interval_s": 0.5},
        "cloud": {"url": "http://127.0.0.1:9", "credential": "nobody-listens", "backoff_min_s": 0.05,
                  "backoff_max_s": 0.1},
    })
    stop = asyncio.Event()
    app = asyncio.create_task(run_app(cfg, stop))
    health: dict[str, Any] = {}
    try:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as watcher, asyncio.timeout(90):
            await watcher.subscribe("nattery/apphealth/health/app", qos=1)
            async for message in watcher.messages:
                health = json.loads(message.payload)  # type: ignore[arg-type]
                if health.get("sync", {}).get("state") == "failing" and "today" in health.get("prices", {}):
                    break
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(app, 30)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as later, asyncio.timeout(10):
        await later.subscribe("nattery/apphealth/health/app", qos=1)
        kept = await anext(aiter(later.messages))
        assert kept.retain  # kept by the broker for whoever subscribes later
    assert health["ts"].endswith("Z")
    assert {"stale", "today", "tomorrow", "last_success"} <= set(health["prices"])  # price freshness
    assert health["planning"]["planner"]["compromises"] == []  # no plan yet: none
    assert health["planning"]["controller"]["fallbacks"] == 0
    assert health["sync"]["streams"]["readings"]["pending"] == 0  # the backlog, per stream
    states = {name: t["state"] for name, t in health["tasks"].items()}
    assert states.items() >= {"mqtt": "running", "prices": "running", "planning": "running", "health": "running",
                              "sync": "running"}.items()
