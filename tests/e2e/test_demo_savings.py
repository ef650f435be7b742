"""A demo at ``--speed 60`` shows today's saving within a minute: the whole appliance runs on the
demo's time, so quarter-hours end every 15 s, are derived from the bridge's readings, settled
and shown, with energy figures of a real quarter-hour (not sixty times inflated).

Real parts: ``nattery run --simulate`` as a process (simulator, bridge and app), real mosquitto,
the web API over HTTP with a homeowner login.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from tests.conftest import Broker
from tests.e2e.browser import nattery_simulate

PASSWORD = "sunny-battery-7"
TZ = ZoneInfo("Europe/Berlin")  # the shipped default timezone


async def login(http: aiohttp.ClientSession, url: str) -> str:
    """Log in as the homeowner over the API; returns the session's CSRF token."""
    async with http.get(f"{url}/api/v1/session") as response:
        token = (await response.json())["csrf"]
    async with http.post(f"{url}/api/v1/login", json={"account": "homeowner", "password": PASSWORD},
                         headers={"X-CSRF-Token": token}) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["csrf"])


async def savings_today(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(f"{url}/api/v1/savings") as response:
        assert response.status == 200, await response.text()
        return dict((await response.json())["today"])


async def test_a_demo_at_speed_60_settles_todays_quarter_hours_as_they_end(tmp_path: Path, mosquitto: Broker) -> None:
    with nattery_simulate(tmp_path, mosquitto.port, speed=60, start="10:00", homeowner_password=PASSWORD) as url:
        started = time.monotonic()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            await login(http, url)
            today = await savings_today(http, url)
            while today["slots"] < 2:  # polls the condition; at 60x a quarter-hour is 15 s
                assert time.monotonic() - started < 100, f"no quarter-hour settled in demo time: {today}"
                today = await savings_today(http, url)
            async with http.get(f"{url}/savings") as response:
                page = await response.text()
            async with http.get(f"{url}/api/v1/overview") as response:
                overview = await response.json()

    # the demo's clock: it started at 10:00 local today and runs sixty times faster than ours
    demo_now = datetime.fromtimestamp(overview["now"], TZ)
    assert demo_now.date() == datetime.now(TZ).date() and 10 <= demo_now.hour < 14
    # a quarter-hour of a house at most a few kW: real energy, not scaled by the demo's speed
    slot_kwh = (today["import_wh"] + today["export_wh"]) / today["slots"] / 1000
    assert 0 <= slot_kwh < 5, today
    assert today["saved_vs_no_battery_eur"] is not None
    card = page.split('data-period="today"', 1)[1].split("</div>\n", 1)[0]
    assert "€" in card
