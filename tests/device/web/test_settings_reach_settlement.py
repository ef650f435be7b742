"""A tariff the homeowner changes on the web page prices the next settled slots, without a restart.

The web page (real aiohttp server, real store, real mosquitto) and the settlement loop share one
:class:`~device.home.effective.EffectiveSettings`, as in ``nattery app``. The loop's clock and its
pause between rounds are driven by the test.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from device.accounting import day_bounds, settlement_loop
from device.store import Store
from tests.device.web.conftest import api
from tests.device.web.harness import WebStack

DAYS = [date(2024, 6, 1), date(2024, 6, 2), date(2024, 6, 3)]
SLOT_WH = 250.0  # imported every quarter-hour
SPOT = 80.0
VAT = 1.19


def seed(store: Store, tz: str) -> None:
    start, end = day_bounds(DAYS[0], tz)[0], day_bounds(DAYS[1], tz)[1]
    store.db.table("energy_slots").insert_all(
        {"ts": t, "import_wh": SLOT_WH, "export_wh": 0.0, "charge_wh": 0.0, "discharge_wh": 0.0, "pv_wh": 0.0,
         "load_wh": SLOT_WH, "complete": 1, "samples": 180, "covered_s": 900, "source": "power", "updated_at": 0.0}
        for t in range(start, end, 900))
    store.db.table("prices").insert_all(
        {"zone": "DE_LU", "ts": t, "resolution_s": 3600, "price_eur_mwh": SPOT, "source": "csv", "fetched_at": 0.0}
        for t in range(start, end, 3600))


def day_cost(store: Store, day: date, tz: str) -> Any:
    return store.settlement_totals(*day_bounds(day, tz))["cost_eur"]


async def test_a_tariff_changed_on_the_page_prices_the_next_settled_day(
    stack: WebStack, homeowner: TestClient
) -> None:
    tz = stack.cfg.device.timezone
    await stack.store.call(seed, tz)
    now = [day_bounds(DAYS[1], tz)[0] + 600.0]  # 00:10 on the second day: the first is finished
    rounds: asyncio.Queue[None] = asyncio.Queue()  # the loop finished a round
    go_on: asyncio.Queue[None] = asyncio.Queue()  # the test lets it start the next

    async def pause(_: float) -> None:
        rounds.put_nowait(None)
        await go_on.get()

    loop = asyncio.create_task(settlement_loop(stack.store, stack.settings, clock=lambda: now[0], sleep=pause))
    try:
        await asyncio.wait_for(rounds.get(), 30)
        installer_price = (stack.cfg.tariff.markup_eur_mwh + stack.cfg.tariff.grid_fee_eur_mwh
                           + stack.cfg.tariff.levies_eur_mwh + stack.cfg.tariff.electricity_tax_eur_mwh + SPOT) * VAT
        first = await stack.store.call(day_cost, DAYS[0], tz)
        assert first == pytest.approx(96 * SLOT_WH / 1e6 * installer_price)

        status, body = await api(homeowner, "PATCH", "/api/v1/settings", {"tariff": {"markup_eur_mwh": 115.0}})
        assert status == 200 and body["tariff"]["markup_eur_mwh"] == 115.0

        now[0] = day_bounds(DAYS[2], tz)[0] + 600.0  # a day later, without a restart
        go_on.put_nowait(None)
        await asyncio.wait_for(rounds.get(), 30)
        new_price = installer_price + (115.0 - stack.cfg.tariff.markup_eur_mwh) * VAT
        assert await stack.store.call(day_cost, DAYS[1], tz) == pytest.approx(96 * SLOT_WH / 1e6 * new_price)
        assert await stack.store.call(day_cost, DAYS[0], tz) == pytest.approx(first)  # settled days stay
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
