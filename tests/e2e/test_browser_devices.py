"""The installer page in headless Chromium for a map with two Modbus devices behind the link:
``nattery run --simulate`` with the Fronius GEN24 map (the inverter at unit 1, its grid meter at
unit 200, whose registers reuse the inverter's addresses). Every register row says which unit id
holds it, and a register read from the form goes to that unit."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.async_api import Browser, expect

from tests.conftest import running_broker
from tests.e2e.browser import BROWSER_TESTS, DESKTOP, nattery_simulate

pytestmark = BROWSER_TESTS
NEW_PASSWORD = "wiring-check-42"


@pytest.fixture(scope="module")
def fronius_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("browser-fronius")
    with running_broker(tmp) as broker, nattery_simulate(
            tmp, broker.port, env={"NATTERY_INVERTER_MAP": "fronius_gen24"}) as url:
        yield url


async def test_installer_sees_each_registers_unit_id_and_reads_the_meter_at_its_own(
        fronius_site: str, browser: Browser) -> None:
    context = await browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = await context.new_page()
    await page.goto(fronius_site + "/")
    await page.select_option("#account", "installer")
    await page.fill("#password", "installer")
    await page.click("form.panel button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/password$"))
    await page.fill("#old_password", "installer")
    await page.fill("#new_password", NEW_PASSWORD)
    await page.fill("#repeat_password", NEW_PASSWORD)
    await page.click("form.panel button[type=submit]")
    await expect(page).to_have_url(fronius_site + "/")
    await page.goto(fronius_site + "/installer")

    # the same address at two units: the inverter's state (unit 1) and the meter's export counter (200)
    state_row = page.locator("table.registers tr", has=page.locator('th:text-is("inverter_state")'))
    export_row = page.locator("table.registers tr", has=page.locator('th:text-is("meter_export_energy")'))
    await expect(state_row.locator("td").nth(0)).to_have_text("1")
    await expect(state_row.locator("td").nth(1)).to_have_text("40108")
    await expect(export_row.locator("td").nth(0)).to_have_text("200 (meter)")
    await expect(export_row.locator("td").nth(1)).to_have_text("40108")
    await expect(page.locator("#reg-name option[value=meter_power]")).to_have_text("meter_power · 200:40088")

    # a read from the form: the inverter's state at unit 1 is one of its codes (at unit 200 the
    # word is the high half of the meter's export counter); the meter's frequency a grid frequency
    result = page.locator("#register-form + #register-result")
    await page.select_option("#reg-name", "inverter_state")
    await page.get_by_role("button", name="Read").click()
    await expect(result).to_have_text(re.compile(r"^inverter_state = [1-8](\.0)?\s*$"))
    await page.select_option("#reg-name", "meter_frequency")
    await page.get_by_role("button", name="Read").click()
    await expect(result).to_have_text(re.compile(r"^meter_frequency = (49|50)(\.\d+)? Hz$"))
    await context.close()
