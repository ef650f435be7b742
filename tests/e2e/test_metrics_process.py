"""``nattery run --simulate`` (broker, bridge on the simulated inverter, app) scraped over HTTP:
the bridge's Modbus figures reach the app's ``/metrics`` through the retained ``health`` and
keep moving, and the alert rules are evaluated."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "e2e-scrape-token"
ALERT = 'nattery_alert_active{"alert": "inverter_unreachable"}'


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    return {s.name + json.dumps(s.labels, sort_keys=True): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_the_running_appliance_exports_the_bridge_figures(tmp_path: Path) -> None:
    env = {**os.environ, "NATTERY_LOG_LEVEL": "info", "NATTERY_MQTT_PORT": "0", "NATTERY_LOG_FORMAT": "json",
           "NATTERY_WEB_METRICS_TOKEN": TOKEN, "NATTERY_BRIDGE_HEALTH_INTERVAL_S": "1",
           "NATTERY_INVERTER_POLL_INTERVAL_S": "1"}  # the figures move every second, not every default 5 s
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from device.cli import main; main()", "run", "--simulate", "--port", "0",
        "--data-dir", str(tmp_path / "data"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(180):
            url = None
            while url is None:
                line = await process.stderr.readline()
                assert line, "the process ended before the web page listened"
                event = json.loads(line)
                url = event.get("url") if event.get("event") == "web page listening" else None
            async with aiohttp.ClientSession() as session:
                polls = 0.0
                while polls < 2:  # until the bridge's health after its first polls has reached the app
                    metrics = await scrape(session, url)
                    polls = metrics.get("nattery_bridge_polls_total{}", 0.0)
                    await asyncio.sleep(0.2)
                first = metrics["nattery_modbus_transactions_total{}"]
                while metrics["nattery_modbus_transactions_total{}"] <= first or ALERT not in metrics:
                    await asyncio.sleep(0.2)
                    metrics = await scrape(session, url)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.stderr.read(), 60)
        await process.wait()
    assert metrics["nattery_inverter_reachable{}"] == 1
    assert metrics["nattery_modbus_transaction_seconds_count{}"] >= metrics["nattery_modbus_transactions_total{}"] - 5
    assert metrics[ALERT] == 0
    assert metrics["nattery_disk_free_bytes{}"] > 0
    assert process.returncode == 0
