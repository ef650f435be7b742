"""One run of `nattery run --simulate` (broker, bridge on the simulated inverter, app, solver,
forecast), as under Balena, checked two ways:

- the device log is JSON lines only: the process writes nothing else on stdout or stderr — no
  library banner, no plain-text line — from the start until the parts with native banners have
  run (HiGHS plans, LiteRT price forecast) and through the shutdown;
- scraped over HTTP, the bridge's Modbus figures reach the app's ``/metrics`` through the
  retained ``health`` and keep moving, and the alert rules are evaluated.

One appliance serves both: each is a few seconds of a run whose start-up is most of its time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

#: Events that show the parts with native banners ran: HiGHS (plans) and LiteRT (price forecast).
WANTED = {"replanned", "price_forecast"}
TOKEN = "e2e-scrape-token"
ALERT = 'nattery_alert_active{"alert": "inverter_unreachable"}'


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    return {s.name + json.dumps(s.labels, sort_keys=True): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


class Log:
    """The process' stderr read line by line as it comes (the pipe never fills), with the events seen."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.stream = stream
        self.lines: list[bytes] = []
        self.events: dict[str, dict[str, object]] = {}
        self.changed = asyncio.Event()
        self.ended = False

    async def read(self) -> None:
        while line := await self.stream.readline():
            self.lines.append(line)
            with contextlib.suppress(ValueError, AttributeError):  # reported by the JSON check
                event = json.loads(line)
                self.events.setdefault(event.get("event"), event)
            self.changed.set()
        self.ended = True
        self.changed.set()

    async def wait_for(self, events: set[str]) -> None:
        while not events <= self.events.keys():
            assert not self.ended, f"the process ended early: {b''.join(self.lines[-20:]).decode()}"
            self.changed.clear()
            await self.changed.wait()


async def test_the_running_appliance_logs_json_only_and_exports_the_bridge_figures(tmp_path: Path) -> None:
    env = {**os.environ, "NATTERY_LOG_LEVEL": "info", "NATTERY_MQTT_PORT": "0",
           "NATTERY_WEB_METRICS_TOKEN": TOKEN, "NATTERY_BRIDGE_HEALTH_INTERVAL_S": "1",
           "NATTERY_INVERTER_POLL_INTERVAL_S": "1"}  # the figures move every second, not every default 5 s
    env.pop("NATTERY_LOG_FORMAT", None)  # auto: JSON, as under Balena (no TTY)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from device.cli import main; main()", "run", "--simulate", "--port", "0",
        "--data-dir", str(tmp_path / "data"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    log = Log(process.stderr)
    reader = asyncio.create_task(log.read())
    try:
        async with asyncio.timeout(180):
            await log.wait_for({"web page listening"})
            url = str(log.events["web page listening"]["url"])
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
            await log.wait_for(WANTED)
    finally:
        process.send_signal(signal.SIGTERM)
        _, out = await asyncio.wait_for(asyncio.gather(reader, process.stdout.read()), 60)
        await process.wait()
    assert metrics["nattery_inverter_reachable{}"] == 1
    assert metrics["nattery_modbus_transaction_seconds_count{}"] >= metrics["nattery_modbus_transactions_total{}"] - 5
    assert metrics[ALERT] == 0
    assert metrics["nattery_disk_free_bytes{}"] > 0
    not_json = [line for line in log.lines + out.splitlines(keepends=True) if not _is_json_object(line)]
    assert not_json == []
    assert process.returncode == 0


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
