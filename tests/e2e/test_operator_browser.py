"""The operator page in headless Chromium against a real ``nattery-cloud serve`` on SQLite and on
PostgreSQL, with a small fleet uploaded through the ingest API (tests/cloud_sync/fleet_data.py):
log in, see the fleet, open a device, see its alert, find the login in the audit log, and no page
shows "None", "NaN", "nan" or "undefined". Screenshots land in ``artifacts/screenshots``."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect

from tests.cloud_sync.aggregator import Aggregator, aggregator, cloud_target, pg_url  # noqa: F401
from tests.cloud_sync.fleet_data import Fleet, seed
from tests.e2e.browser import BROWSER_TESTS, DESKTOP, PHONE, screenshot_path

pytestmark = BROWSER_TESTS
UNKNOWN_WORDS = re.compile(r"\b(None|NaN|nan|undefined)\b")


@pytest.fixture(scope="module")
def fleet(aggregator: Aggregator) -> Fleet:
    return seed(aggregator, prefix="web")


async def no_unknown_words(page: Page) -> None:
    text = await page.locator("body").inner_text()
    found = UNKNOWN_WORDS.search(text)
    assert found is None, f"{page.url} shows {found.group(0)!r}: …{text[max(0, found.start() - 80):found.end() + 80]}…"


async def test_operator_logs_in_sees_the_fleet_a_device_its_alert_and_the_audit_entry(
        aggregator: Aggregator, fleet: Fleet, browser: Browser) -> None:
    backend = "postgresql" if aggregator.target.startswith("postgresql") else "sqlite"
    credential = aggregator.add_operator(f"browser-{backend}")
    context = await browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # (the console's "failed to load resource" lines are the 401 and 404 this test asks for)
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)

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
    await context.close()
