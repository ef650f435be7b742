"""The settlement report page of the operator page in headless Chromium against a real
``nattery-cloud serve`` (SQLite and PostgreSQL): a group settled through the library, then the
operator logs in, opens Settlement, follows the run and sees its summary, anomaly, members and
quarter-hours, and no page shows "None", "NaN" or "undefined"."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from playwright.async_api import Browser, expect
from sqlalchemy import text

from cloud_sync.balance import registry, runs
from cloud_sync.balance.timegrid import day_bounds, parse_boundary
from cloud_sync.db import connect
from common.market_ids import bdew_check_digit
from tests.cloud_sync.aggregator import Aggregator, aggregator, cloud_target, pg_url, run  # noqa: F401
from tests.e2e.browser import BROWSER_TESTS, DESKTOP, screenshot_path
from tests.e2e.test_operator_browser import no_unknown_words

pytestmark = BROWSER_TESTS
DAY = date(2026, 6, 18)
MELOS = [f"DE0001234567890000000000000888{n:03d}" for n in range(3)]


async def seed(target: str) -> dict[str, Any]:
    db = await connect(target)
    try:
        brp = "990000000888" + str(bdew_check_digit("990000000888"))
        await registry.add_participant(db, brp, "293", "Page BRP", ["brp"])
        await registry.add_group(db, "PAGE-1", "page fleet", brp)
        start, end = day_bounds(DAY)
        for n, melo in enumerate(MELOS):
            await registry.add_location(db, melo, None, None, 11000)
            await registry.join(db, "PAGE-1", melo, parse_boundary("2026-06-01T00:00", "s"))
            async with db.begin() as conn:
                await conn.execute(text(
                    "INSERT INTO schedules_in_force (melo_id, ts, revision, kind, import_wh, export_wh) "
                    "VALUES (:m, :t, 0, 'day_ahead', 200, 0)"), [{"m": melo, "t": t} for t in range(start, end, 900)])
                await conn.execute(text(
                    "INSERT INTO actuals (melo_id, ts, source, import_wh, export_wh, received_at) "
                    "VALUES (:m, :t, 'device', :i, 0, 1)"),
                    [{"m": melo, "t": t, "i": 4000 if (n, t) == (0, start) else 210 + n} for t in range(start, end, 900)])
        prices = "".join(f"{datetime.fromtimestamp(t, UTC):%Y-%m-%dT%H:%M:%SZ},80\n" for t in range(start, end, 3600))
        await runs.upload_prices(db, "reBAP", "timestamp,price\n" + prices)
        return await runs.settle_group(db, "PAGE-1", start, end)
    finally:
        await db.close()


async def test_the_operator_opens_a_settlement_run(aggregator: Aggregator, browser: Browser) -> None:
    settled = run(seed(aggregator.target))
    backend = "postgresql" if aggregator.target.startswith("postgresql") else "sqlite"
    credential = aggregator.add_operator(f"settlement-{backend}")
    page = await (await browser.new_context(viewport=DESKTOP, locale="en-GB")).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{aggregator.url}/ops/login")
    await page.fill("#credential", credential)
    await page.click("form.login button[type=submit]")
    await expect(page).to_have_url(f"{aggregator.url}/ops/")
    await page.get_by_role("link", name="Settlement").click()
    row = page.locator(f'tr[data-run="{settled["run"]}"]')
    await expect(row).to_contain_text("PAGE-1")
    await expect(row).to_contain_text(f"{settled['deviation_kwh']} kWh")
    await no_unknown_words(page)
    await row.get_by_role("link", name=f"run {settled['run']}").click()
    await expect(page).to_have_url(f"{aggregator.url}/ops/settlement/{settled['run']}")
    await expect(page.locator("#summary")).to_contain_text(f"cost {settled['cost_eur']} EUR")
    await expect(page.locator("#anomalies")).to_contain_text("above_limit")
    await expect(page.locator("#members tbody tr").first).to_contain_text(MELOS[0])  # the largest deviation
    await expect(page.locator("#slots tbody tr")).to_have_count(96)
    await no_unknown_words(page)
    await page.screenshot(path=str(screenshot_path(f"ops-settlement-{backend}")), full_page=True)
    await page.goto(f"{aggregator.url}/ops/settlement/99999")
    await expect(page.locator("body")).to_contain_text("no settlement run '99999'")
    assert errors == []
