"""The local page in headless Chromium, as a homeowner and an installer would use it.

Against ``nattery run --simulate`` (simulator, bridge and app in one process, on a real mosquitto)
with a day of prices, a forecast, a plan and a month of settlements in its database, and tomorrow's
prices missing. Screenshots (desktop and 360 px phone) land in ``artifacts/screenshots``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Page, StorageState, expect

from device.store import Store
from device.web.i18n import TEXT
from tests.conftest import running_broker
from tests.device.web.harness import seed_history
from tests.e2e.browser import (
    BROWSER_TESTS, DESKTOP, PHONE, entsoe_stand_in, nattery_simulate, screenshot_path,
)

pytestmark = BROWSER_TESTS
NEW = {"homeowner": "sunny-battery-7", "installer": "wiring-check-42"}
DEFAULT = {"homeowner": "nattery", "installer": "installer"}
CHANGED: set[str] = set()  # accounts whose default password the module's tests already replaced
#: Per account, the cookies of a session logged in through the form by ``logged_in_page``.
SESSIONS: dict[str, StorageState] = {}


@dataclass
class Site:
    url: str
    db: Path

    def events(self) -> list[dict[str, Any]]:
        store = Store(self.db)
        try:
            return store.events(20)
        finally:
            store.close()

    def settled_today(self) -> int:
        """Quarter-hours of the local day settled so far."""
        store = Store(self.db)
        try:
            start = int(datetime.combine(datetime.now(ZoneInfo("Europe/Berlin")).date(), datetime.min.time(),
                                         ZoneInfo("Europe/Berlin")).timestamp())
            return int(store.settlement_totals(start, start + 86_400 + 3600)["slots"])
        finally:
            store.close()

    def fetched_prices(self) -> int:
        """Price slots the appliance stored from ENTSO-E (the stand-in), not seeded by the test."""
        store = Store(self.db)
        try:
            return int(store.db.execute(
                "SELECT count(*) FROM prices WHERE zone = 'DE_LU' AND source = 'entsoe'").fetchone()[0])
        finally:
            store.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One ``nattery run --simulate`` for the module (it takes seconds to start)."""
    tmp = tmp_path_factory.mktemp("browser")
    # The price client fetches from a local ENTSO-E stand-in that has published nothing beyond
    # today, and prices count as "late" from midnight on: the late state at any time of day.
    today = datetime.now(ZoneInfo("Europe/Brussels")).date()
    # The appliance runs on demo time (60x): started no later than 20:00, its day stays the test's
    # day for the module's few minutes (a few demo hours).
    start = min(datetime.now(ZoneInfo("Europe/Berlin")).strftime("%H:%M"), "20:00")
    with running_broker(tmp) as broker, entsoe_stand_in(published_until=today) as endpoint, nattery_simulate(
        tmp, broker.port, prices_late_after="00:00", start=start,
        env={"ENTSOE_ENDPOINT_URL": endpoint, "NATTERY_PRICES_SOURCE": "entsoe",
             "NATTERY_PRICES_ENTSOE_TOKEN": "browser-test-token", "NATTERY_PRICES_HISTORY_DAYS": "14"},
    ) as url:
        store = Store(tmp / "nattery.db")
        seed_history(store, ZoneInfo("Europe/Berlin"), time.time())
        store.close()
        yield Site(url, tmp / "nattery.db")


async def first_login(page: Page, url: str, role: str) -> None:
    """Log in; the first time with the documented default and through the forced password change."""
    await page.goto(url + "/")
    await expect(page).to_have_url(re.compile(r"/login"))
    await page.select_option("#account", role)
    if role in CHANGED:
        await page.fill("#password", NEW[role])
        await page.click("form.panel button[type=submit]")
        await expect(page).to_have_url(url + "/")
        return
    await page.fill("#password", DEFAULT[role])
    await page.click("form.panel button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/password$"))
    # (the alert banner, prices late in this module, is an alert too: pick the page's own)
    must_change = re.compile("|".join(re.escape(text) for text in TEXT["must_change"].values()))
    await expect(page.get_by_role("alert").filter(has_text=must_change)).to_be_visible()  # either language
    await page.fill("#old_password", DEFAULT[role])
    await page.fill("#new_password", NEW[role])
    await page.fill("#repeat_password", NEW[role])
    await page.click("form.panel button[type=submit]")
    await expect(page).to_have_url(url + "/")
    CHANGED.add(role)


async def logged_in_page(browser: Browser, url: str, role: str, **options: Any) -> Page:
    """A page in a browser context of the test's own (``options``: viewport, locale, ...), logged
    in as ``role``: through the form the first time, after that with that session's cookie, as
    the visitor's browser keeps it (a page load less per test; the form's ways, the forced
    password change, a wrong password and the logout, are tests of their own). Nobody logs that
    session out. Where the page then stands is the caller's to choose."""
    context = await browser.new_context(storage_state=SESSIONS.get(role), **options)
    page = await context.new_page()
    if role not in SESSIONS:
        await first_login(page, url, role)
        SESSIONS[role] = await context.storage_state()
    return page


async def soc(page: Page) -> float:
    text = await page.locator('[data-live="soc_pct"]').inner_text()
    return float(text.replace(",", "."))


#: True once the page's scripts ran: live values applied (where the page has them) and charts drawn.
DRAWN = """() => {
  const charts = ["price-chart", "plan-chart"].map((id) => document.getElementById(id)).filter(Boolean);
  const live = document.getElementById("live-data") === null || document.body.dataset.liveTs !== undefined;
  return live && charts.every((el) => el.querySelector("canvas") !== null);
}"""


async def drawn(page: Page) -> None:
    await page.wait_for_function(DRAWN)


async def shoot(page: Page, name: str, paths: list[str], url: str) -> None:
    for path in paths:
        await page.goto(url + path)
        await drawn(page)
        label = path.strip("/").replace("/", "-") or "overview"
        await page.screenshot(path=str(screenshot_path(f"{name}-{label}")), full_page=True)


async def test_homeowner_first_login_live_values_manual_charge_and_late_prices(site: Site, browser: Browser) -> None:
    context = await browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="Europe/Berlin")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await first_login(page, site.url, "homeowner")

    # live values: the page's telemetry timestamp moves on without a reload
    body = page.locator("body")
    await expect(body).to_have_attribute("data-live-ts", re.compile(r"\d"))
    first = await body.get_attribute("data-live-ts")
    await expect(body).not_to_have_attribute("data-live-ts", first or "")
    await expect(page.locator('[data-live="online"]')).to_have_text("online")

    # manual charge until an hour from now; the simulated battery's SoC rises on the overview
    await page.goto(site.url + "/settings")
    await page.check("input[name=action][value=charge]")
    await page.fill("#power_w", "3000")
    end = datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(hours=1)
    until = end.strftime("%H:%M")
    await page.fill("#until", end.strftime("%Y-%m-%dT%H:%M"))  # a date and a time
    await page.get_by_role("button", name="Start").click()
    await expect(page.locator(".flash.ok")).to_contain_text(f"Manual charge at 3,000 W started now; it ends {end:%d %b %H:%M}")
    # the mode shows the running override as one control (with its stop button), not a radio button
    await expect(page.locator("#mode-now .big")).to_have_text(f"Manual charge until {until}")
    await expect(page.locator("#mode-now button")).to_have_text("End manual operation")
    await expect(page.locator("#power-limit")).to_contain_text("At most")
    await page.goto(site.url + "/")
    await expect(page.locator(".card .big").nth(1)).to_have_text("Manual charge")
    start = await soc(page)
    await expect(page.locator('[data-live="battery_dir"]')).to_have_text("charging")
    await page.wait_for_function(  # live values: the simulated battery charges (60x speed)
        """start => parseFloat(document.querySelector('[data-live="soc_pct"]').textContent.replace(",", ".")) > start""",
        arg=start, timeout=20_000)
    assert any(e["kind"] == "control" and e["data"]["power_w"] == 3000 for e in site.events())

    # prices: the appliance fetched today's from the ENTSO-E stand-in, none for tomorrow (late);
    # known and forecast are told apart
    fetched = 0
    for _ in range(100):
        fetched = site.fetched_prices()
        if fetched >= 92:
            break
        await page.wait_for_timeout(200)
    assert fetched >= 92, "no complete day of prices fetched from the ENTSO-E stand-in"
    await page.goto(site.url + "/prices")
    await expect(page.locator('[data-state="late"]')).to_contain_text("late")
    await expect(page.locator("#price-chart canvas")).to_have_count(1)
    await expect(page.locator("#plan-chart canvas")).to_have_count(1)
    await expect(page.locator("tr.forecast").first).to_contain_text("≈")

    await page.goto(site.url + "/savings")
    await expect(page.locator('[data-period="month"] .big')).to_contain_text("€")
    await shoot(page, "desktop-homeowner", ["/", "/prices", "/savings", "/settings"], site.url)

    # the installer page is refused to a homeowner
    response = await page.goto(site.url + "/installer")
    assert response is not None and response.status == 403
    assert errors == []
    await context.close()


async def test_phone_width_in_german(site: Site, browser: Browser) -> None:
    page = await logged_in_page(browser, site.url, "homeowner", viewport=PHONE, locale="de-DE",
                                timezone_id="Europe/Berlin", device_scale_factor=1, is_mobile=True, has_touch=True)
    await page.goto(site.url + "/")
    await expect(page.locator("h2").first).to_have_text("Ladestand")
    for path in ("/", "/prices", "/savings", "/settings"):
        await page.goto(site.url + path)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} scrolls sideways at 360 px ({width} px)"
    await shoot(page, "phone-homeowner", ["/", "/prices", "/savings", "/settings"], site.url)
    await page.context.close()


async def test_installer_reads_and_writes_a_register_with_confirmation(site: Site, browser: Browser) -> None:
    context = await browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = await context.new_page()
    await first_login(page, site.url, "installer")
    await page.goto(site.url + "/installer")
    cell = page.locator('[data-reg="battery_soc"]')
    await expect(cell).to_have_text(re.compile(r"^\d+"))
    await expect(page.locator('[data-raw="pv1_voltage"]')).to_have_text(re.compile(r"^\d+$"))

    await page.select_option("#reg-name", "battery_soc")
    await page.get_by_role("button", name="Read").click()
    await expect(page.locator(".flash.ok")).to_contain_text(re.compile(r"battery_soc = [\d.]+ %"))

    # a register none of the controls writes (the controller keeps the TOU programmes its own, and
    # on demo time it refreshes them every second or so)
    await page.select_option("#reg-name", "max_discharge_current")
    await page.fill("#reg-value", "37")
    await page.get_by_role("button", name="Write…").click()
    await expect(page.get_by_role("alert").filter(has_text="Really write")).to_contain_text(
        "Really write 37 A to register max_discharge_current?")
    await page.get_by_role("link", name="Cancel").click()  # nothing is written without confirmation
    await page.select_option("#reg-name", "max_discharge_current")
    await page.get_by_role("button", name="Read").click()
    await expect(page.locator(".flash.ok")).not_to_contain_text(re.compile(r"max_discharge_current = 37\b"))

    await page.select_option("#reg-name", "max_discharge_current")
    await page.fill("#reg-value", "37")
    await page.get_by_role("button", name="Write…").click()
    await page.click("#confirm-write")
    await expect(page.locator(".flash.ok")).to_contain_text("max_discharge_current ← 37 A")
    await page.select_option("#reg-name", "max_discharge_current")
    await page.get_by_role("button", name="Read").click()
    await expect(page.locator(".flash.ok")).to_have_text(  # read back from the inverter
        re.compile(r"^max_discharge_current = 37(\.0)? A$"))

    await page.select_option("#reg-name", "max_discharge_current")
    await page.fill("#reg-value", "250")
    await page.get_by_role("button", name="Write…").click()
    await expect(page.locator(".flash.error:not(.alert-banner)")).to_contain_text(
        re.compile(r"250(\.0)? A outside 0\.\.185"))

    await expect(page.locator("table.events")).to_contain_text("wrote 37 to max_discharge_current")
    await shoot(page, "desktop-installer", ["/installer"], site.url)
    await page.set_viewport_size(PHONE)
    await shoot(page, "phone-installer", ["/installer"], site.url)
    await context.close()


async def test_installer_sees_results_by_the_form_enum_labels_live_and_a_readable_health(
    site: Site, browser: Browser
) -> None:
    page = await logged_in_page(browser, site.url, "installer", viewport=DESKTOP, locale="en-GB")
    await page.goto(site.url + "/installer")
    result = page.locator("#register-form + #register-result")  # right below the form

    await page.select_option("#reg-name", "battery_soc")
    await page.get_by_role("button", name="Read").click()
    await expect(result).to_have_class(re.compile(r"\bok\b"))
    await expect(result).to_contain_text(re.compile(r"battery_soc = [\d.]+ %"))
    await expect(result).to_be_in_viewport()  # where the installer is looking, no jump to the list
    await expect(page.locator("main > p.flash")).to_have_count(0)  # nothing at the top
    await expect(page.locator("#reg-name")).to_have_value("battery_soc")  # the choice is kept

    await page.select_option("#reg-name", "prog1_soc")
    await page.fill("#reg-value", "250")
    await page.get_by_role("button", name="Write…").click()
    await expect(result).to_have_class(re.compile(r"\berror\b"))
    await expect(result).to_contain_text("250.0 % outside 0..100")
    await expect(result).to_be_in_viewport()
    await expect(page.locator("#reg-name")).to_have_value("prog1_soc")

    state = page.locator('[data-reg="run_state"]')
    await expect(state).to_have_text(re.compile(r"^\d\.0 \((standby|selfcheck|normal|alarm|fault|activating)\)$"))
    first = await page.locator("body").get_attribute("data-live-ts")
    await expect(page.locator("body")).not_to_have_attribute("data-live-ts", first or "")  # a live update came
    await expect(state).to_have_text(re.compile(r"^\d\.0 \((standby|selfcheck|normal|alarm|fault|activating)\)$"))

    await page.goto(site.url + "/installer")  # health as of now: telemetry has flowed (above)
    bridge = page.locator('.card.health[data-part="bridge"]')
    summary = await bridge.locator("table").inner_text()
    assert "modbus.state" in summary and "inverter_online" in summary
    assert re.search(r"latency\.transaction\s+p50 [\d,]+ ms · p99 [\d,]+ ms · max [\d,]+ ms", summary), summary
    assert re.search(r"\bts\s+[\d.]+ (s|min) ago", summary), summary
    for raw in ("True", "False", "None", "buckets", "le_0.005"):
        assert raw not in summary
    assert not re.search(r"\b1[6-9]\d{8}\b|\d{4}-\d\d-\d\dT", summary)  # no epoch, no ISO timestamp
    raw_json = bridge.locator("details pre")
    await expect(raw_json).to_be_hidden()
    await bridge.locator("details summary").click()
    await expect(raw_json).to_contain_text('"buckets"')  # the raw figures, one click away
    await page.context.close()


async def test_wrong_password_and_logout(site: Site, browser: Browser) -> None:
    context = await browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = await context.new_page()
    await page.goto(site.url + "/login")
    await page.fill("#password", "not-it")
    await page.click("form.panel button[type=submit]")
    await expect(page.get_by_role("alert").filter(has_text="Wrong")).to_have_text("Wrong account or password.")
    await page.screenshot(path=str(screenshot_path("desktop-login-failed")))
    await first_login(page, site.url, "homeowner")
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    await page.goto(site.url + "/settings")
    await expect(page).to_have_url(re.compile(r"/login\?next=/settings"))
    await context.close()


HOMEOWNER_PAGES = ("/", "/prices", "/history", "/history?period=day", "/history?period=week", "/history?period=year",
                   "/history/report", "/savings", "/settings")
#: What must never reach a homeowner: a float's NaN, Python's None/True/False, JavaScript's
#: undefined, or a raw epoch timestamp (ten digits from 2001 on) instead of a time.
RAW = re.compile(r"\b(NaN|None|undefined|True|False|Infinity)\b|\b1[0-9]{9}\b")


async def test_overview_says_what_and_why_history_report_and_csv(site: Site, browser: Browser) -> None:
    page = await logged_in_page(browser, site.url, "homeowner", viewport=DESKTOP, locale="en-GB",
                                timezone_id="Europe/Berlin", accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(site.url + "/")
    await expect(page.locator("#doing-now .why")).to_have_text(re.compile(
        r"^(Charging|Holding|Supplying|Self-consumption|Manual|No plan|The inverter)"))
    await expect(page.locator("#price-now .big")).to_have_text(re.compile(r"^\d+\.\d ct/kWh$"))
    await expect(page.locator("#price-now .muted")).to_contain_text("today")
    await expect(page.locator("#energy-today")).to_contain_text("kWh")
    if site.settled_today():  # today's saving so far (just after midnight nothing is settled yet)
        await expect(page.locator("#energy-today .saved-today")).to_contain_text("€")
    else:
        await expect(page.locator("#energy-today")).to_contain_text(re.compile(r"Nothing settled yet\.|€"))

    seeded_day = datetime.fromtimestamp(time.time() - 1800, ZoneInfo("Europe/Berlin")).date()  # the seed's last
    await page.goto(site.url + f"/history?period=month&date={seeded_day.isoformat()}")
    await expect(page.locator("figure.bars svg").first).to_be_visible()
    assert await page.locator("figure.bars rect").count() >= 6
    await expect(page.locator("#history-total")).to_contain_text("€")
    async with page.expect_download() as download:
        await page.get_by_role("link", name="Download as CSV").click()
    csv_path = await (await download.value).path()
    lines = Path(csv_path).read_text().splitlines()
    assert lines[0].startswith("start,pv_kwh,house_kwh") and lines[-1].startswith("total,")
    await page.get_by_role("link", name="Monthly report").click()
    await expect(page.locator("#report-money")).to_contain_text("€")
    await expect(page.locator("#report-prices")).to_contain_text("ct/kWh")
    response = await page.goto(site.url + "/history?period=fortnight")
    assert response is not None and response.status == 400
    await expect(page.locator("body")).to_contain_text("period: got 'fortnight', allowed: day, week, month, year")

    # prices: one axis from 00:00, hover values with units and 24-hour local time, two plan colours
    await page.goto(site.url + "/prices")
    over = page.locator("#price-chart .u-over")
    box = await over.bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    legend = page.locator("#price-chart .u-legend")
    await expect(legend).to_contain_text("Import (you pay)")
    await expect(legend).to_contain_text("Spot price")
    await expect(legend).to_contain_text(re.compile(r"\d{2}:\d{2}"))
    await expect(legend).to_contain_text(re.compile(r"\d+\.\d ct/kWh"))
    await expect(page.locator("#plan-chart .u-legend")).to_contain_text("Charging")
    await expect(page.locator("#plan-chart .u-legend")).to_contain_text("Discharging")
    assert "-0.0" not in await page.locator("main").inner_text()
    await shoot(page, "desktop-homeowner", ["/history", "/history/report"], site.url)  # "/": the first test's
    await page.set_viewport_size(PHONE)
    await shoot(page, "phone-homeowner", ["/history", "/history/report"], site.url)
    for path in ("/", "/history", "/history/report"):
        await page.goto(site.url + path)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} scrolls sideways at 360 px ({width} px)"
    assert errors == []
    await page.context.close()


@pytest.mark.parametrize("lang", ["en-GB", "de-DE"])
@pytest.mark.parametrize(("role", "pages"), [("homeowner", HOMEOWNER_PAGES), ("installer", ("/installer",))])
async def test_no_page_shows_raw_values(site: Site, browser: Browser, lang: str, role: str,
                                        pages: tuple[str, ...]) -> None:
    """NaN, None, undefined, True or an epoch timestamp on any page (after the scripts ran, so
    live values, register values and chart legends count too) is a bug."""
    page = await logged_in_page(browser, site.url, role, viewport=DESKTOP, locale=lang, timezone_id="Europe/Berlin")
    if lang == "de-DE":
        await page.goto(site.url + "/lang/de?next=/")
    for path in pages:
        await page.goto(site.url + path)
        await expect(page).to_have_url(site.url + path)  # the page itself, not the login page
        await drawn(page)
        text = await page.locator("body").inner_text()
        found = RAW.search(text)
        assert found is None, f"{path} ({lang}) shows {found.group(0)!r}: …{text[max(found.start() - 60, 0):found.end() + 60]}…"
    await page.context.close()
