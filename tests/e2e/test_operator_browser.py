"""The operator page in headless Chromium against a real ``nattery-cloud serve`` on SQLite and on
PostgreSQL (one per backend for the module), with a small fleet uploaded through the ingest API
(tests/cloud_sync/fleet_data.py): log in, see the fleet, open a device, see its alert, find the
login in the audit log; and a group settled through the library: open Settlement, follow the run
and see its summary, anomaly, members and quarter-hours. No page shows "None", "NaN", "nan" or
"undefined". Screenshots land in ``artifacts/screenshots``."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import text

from cloud_sync.balance import registry, runs
from cloud_sync.balance.timegrid import day_bounds, parse_boundary
from cloud_sync.db import Database, using
from common.market_ids import bdew_check_digit
from tests.cloud_sync.aggregator import Aggregator, aggregator, cloud_target, pg_url, run  # noqa: F401
from tests.cloud_sync.fleet_data import Fleet, seed
from tests.e2e.browser import BROWSER_TESTS, DESKTOP, PHONE, screenshot_path

pytestmark = BROWSER_TESTS
UNKNOWN_WORDS = re.compile(r"\b(None|NaN|nan|undefined)\b")
DAY = date(2026, 6, 18)
MELOS = [f"DE0001234567890000000000000888{n:03d}" for n in range(3)]


@pytest.fixture(scope="module")
def fleet(aggregator: Aggregator) -> Fleet:
    return seed(aggregator, prefix="web")


async def no_unknown_words(page: Page) -> None:
    text = await page.locator("body").inner_text()
    found = UNKNOWN_WORDS.search(text)
    assert found is None, f"{page.url} shows {found.group(0)!r}: …{text[max(0, found.start() - 80):found.end() + 80]}…"


def backend_of(aggregator: Aggregator) -> str:
    return "postgresql" if aggregator.target.startswith("postgresql") else "sqlite"


async def desktop_page(browser: Browser) -> tuple[Page, list[str]]:
    """A desktop page in a browser context of its own, and the list its script errors and console
    errors go to (not the console's "failed to load resource" lines: the 401s and 404s the tests
    ask for)."""
    page = await (await browser.new_context(viewport=DESKTOP, locale="en-GB")).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    return page, errors


async def test_operator_logs_in_sees_the_fleet_a_device_its_alert_and_the_audit_entry(
        aggregator: Aggregator, fleet: Fleet, browser: Browser) -> None:
    backend = backend_of(aggregator)
    credential = aggregator.add_operator(f"browser-{backend}")
    page, errors = await desktop_page(browser)

    await page.goto(f"{aggregator.url}/ops/")
    await expect(page).to_have_url(f"{aggregator.url}/ops/login")
    await page.fill("#credential", credential[:-3] + "xyz")
    await page.click("form.login button[type=submit]")
    await expect(page.get_by_role("alert")).to_contain_text("credential not accepted")
    await page.fill("#credential", credential)
    await page.click("form.login button[type=submit]")
    await expect(page).to_have_url(f"{aggregator.url}/ops/")

    late = page.locator('tr[data-device="web-late"]')
    await expect(late.locator(".alert")).to_have_text("sync_lag")
    healthy = page.locator('tr[data-device="web-a"]')
    await expect(healthy).to_contain_text("online")
    await expect(healthy).to_contain_text(f"{fleet.savings_eur:,.2f} EUR")
    await no_unknown_words(page)
    await page.screenshot(path=str(screenshot_path(f"ops-fleet-{backend}")), full_page=True)

    await late.get_by_role("link", name="web-late").click()
    await expect(page).to_have_url(f"{aggregator.url}/ops/devices/web-late")
    await expect(page.locator("#alerts")).to_contain_text("sync_lag")
    await expect(page.locator("#alerts")).to_contain_text("more than 3600 s behind")
    await no_unknown_words(page)
    await page.goto(f"{aggregator.url}/ops/devices/web-a")
    await expect(page.locator("#telemetry")).to_contain_text("soc_pct")
    await expect(page.locator("#edi")).to_contain_text("MSCONS_ops_1.edi")
    await no_unknown_words(page)
    await page.screenshot(path=str(screenshot_path(f"ops-device-{backend}")), full_page=True)

    for path in ("/ops/forecasts", "/ops/quality", "/ops/devices/web-new", "/ops/devices/nobody"):
        await page.goto(aggregator.url + path)
        await no_unknown_words(page)
    await expect(page.get_by_role("alert")).to_contain_text("no device 'nobody' is registered")
    await page.goto(f"{aggregator.url}/ops/forecasts")
    await expect(page.locator("#accuracy tbody tr")).to_have_count(2)

    await page.get_by_role("link", name="Audit log").click()
    mine = page.locator("#audit tbody tr", has_text=f"op:browser-{backend}")
    await expect(mine.filter(has_text="refused: credential not accepted")).to_have_count(1)
    await expect(mine.filter(has=page.locator("td", has_text=re.compile(r"^login$")))
                 .filter(has=page.locator("td.ok"))).to_have_count(1)
    await no_unknown_words(page)
    await page.screenshot(path=str(screenshot_path(f"ops-audit-{backend}")), full_page=True)

    await page.set_viewport_size(PHONE)
    await page.goto(f"{aggregator.url}/ops/")
    await page.screenshot(path=str(screenshot_path(f"ops-fleet-phone-{backend}")), full_page=True)
    await page.click("form.logout button")
    await expect(page).to_have_url(f"{aggregator.url}/ops/login")
    assert errors == []
    await page.context.close()


async def settled_group(db: Database) -> dict[str, Any]:
    """Three meter locations of group PAGE-1 settled for ``DAY`` through the library (one of them
    4 kWh off in its first quarter-hour); the run's summary."""
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


async def test_the_operator_opens_a_settlement_run(aggregator: Aggregator, browser: Browser) -> None:
    settled = run(using(aggregator.target, settled_group))
    backend = backend_of(aggregator)
    credential = aggregator.add_operator(f"settlement-{backend}")
    page, errors = await desktop_page(browser)
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
    await page.context.close()
