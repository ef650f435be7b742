"""Today's saving appears during the day: the app's jobs, run on an injected clock, turn the
bridge's readings into quarter-hours (store housekeeping), settle each one as it ends
(settlement loop) and the Savings page shows today's figure before the day is over.

Real parts: the web app over HTTP, a real store file, real mosquitto (the stand-in bridge).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date, datetime
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient

from device.accounting import day_bounds, settlement_loop
from device.store import Reading, Store
from device.web.keys import DEPS
from tests.device.web.harness import WebStack

DAY = date(2024, 6, 3)
SPOT = 150.0  # EUR/MWh, all day


def readings(start: float, end: float) -> list[Reading]:
    """Every 10 s: the house draws 1.5 kW, the battery covers 1 kW of it, the grid the rest."""
    return [Reading(float(t), {"soc_pct": 60.0, "load_w": 1500.0, "pv_w": 0.0, "battery_w": 1000.0,
                               "grid_w": 500.0}, {}) for t in range(int(start), int(end), 10)]


async def test_todays_saving_appears_after_the_first_quarter_hours_end(stack: WebStack, homeowner: TestClient) -> None:
    tz = stack.cfg.device.timezone
    start, end = day_bounds(DAY, tz)
    ten = int(datetime(DAY.year, DAY.month, DAY.day, 10, tzinfo=ZoneInfo(tz)).timestamp())
    now = [ten + 5.0]
    stack.app[DEPS].clock = lambda: now[0]
    await stack.store.call(lambda s: s.db.table("prices").insert_all(  # type: ignore[arg-type]
        {"zone": "DE_LU", "ts": t, "resolution_s": 900, "price_eur_mwh": SPOT, "source": "csv", "fetched_at": 0.0}
        for t in range(start, end, 900)))
    rounds: asyncio.Queue[None] = asyncio.Queue()
    go_on: asyncio.Queue[None] = asyncio.Queue()

    async def pause(_: float) -> None:
        rounds.put_nowait(None)
        await go_on.get()

    async def page_today() -> str:
        response = await homeowner.get("/savings")
        html = await response.text()
        return html.split('data-period="today"', 1)[1].split("</div>\n", 1)[0]

    loop = asyncio.create_task(settlement_loop(stack.store, stack.settings, clock=lambda: now[0], sleep=pause))
    try:
        await asyncio.wait_for(rounds.get(), 30)
        assert "€" not in await page_today()  # 10:00: nothing over yet today

        await stack.store.call(Store.insert_readings, readings(ten, ten + 2200))
        now[0] = ten + 2200.0  # 10:36:40: two quarter-hours are over (and derived)
        assert await stack.store.call(Store.update_energy_slots, now[0]) == 2  # the housekeeping job
        go_on.put_nowait(None)
        await asyncio.wait_for(rounds.get(), 30)

        response = await homeowner.get("/api/v1/savings")
        today = (await response.json())["today"]
        assert today["slots"] == 2
        assert today["saved_vs_no_battery_eur"] > 0  # 1 kW the battery covered, for half an hour
        assert today["import_wh"] == 2 * 125.0
        card = await page_today()
        assert "€" in card and "data-period" not in card
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
