"""The server-rendered pages and their forms (no JavaScript needed)."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient

from device.prices.tariff import Tariff
from device.web.model import day_bounds, local_today
from device.store import Store
from tests.device.web.conftest import csrf
from tests.device.web.harness import WebStack, seed_history


async def form(client: TestClient, path: str, data: dict[str, str]) -> tuple[int, str, str]:
    response = await client.post(path, data={"csrf": await csrf(client), **data}, allow_redirects=False)
    location = response.headers.get("Location", "")
    follow = await client.get(location) if location else response
    return response.status, location, await follow.text()


async def test_every_page_renders_for_each_role(homeowner: TestClient) -> None:
    for path, text in [("/", "Charge level"), ("/prices", "No prices available."), ("/savings", "Nothing settled yet."),
                       ("/settings", "Self-consumption")]:
        response = await homeowner.get(path, headers={"Accept-Language": "en"})
        assert response.status == 200, path
        assert text in await response.text(), path


async def test_pages_in_german_after_the_language_switch(homeowner: TestClient) -> None:
    response = await homeowner.get("/lang/de?next=/settings")
    page = await response.text()
    assert response.url.path == "/settings" and '<html lang="de">' in page and "Betriebsart" in page
    assert (await homeowner.get("/lang/xx", allow_redirects=False)).status == 404


async def test_tariff_form_takes_ct_per_kwh(stack: WebStack, homeowner: TestClient) -> None:
    status, location, page = await form(homeowner, "/settings", {
        "form": "tariff", "markup_eur_mwh": "2,5", "vat_pct": "19", "export": "spot", "grid_fee_eur_mwh": "9.5"})
    assert (status, location) == (303, "/settings")
    assert "Saved: Supplier markup 1.5 ct/kWh → 2.5 ct/kWh, Grid fee " in page  # what changed …
    assert "→ 9.5 ct/kWh" in page and "Export paid fixed rate → at spot price" in page
    assert "savings count it from the next settled quarter-hour" in page  # … and when it counts
    saved = json.loads((stack.cfg.device.data_dir / "settings.json").read_text())["sections"]["tariff"]
    assert saved["markup_eur_mwh"] == 25.0 and saved["grid_fee_eur_mwh"] == 95.0 and saved["export"] == "spot"
    assert 'value="2.5"' in page  # shown back in ct/kWh


async def test_form_errors_are_shown_on_the_page(homeowner: TestClient) -> None:
    _, _, page = await form(homeowner, "/settings", {"form": "mode", "mode": "auto", "reserve_pct": "250"})
    assert "battery.reserve_pct: got 250.0, allowed: 0 to 100" in page and 'class="flash error"' in page
    _, _, page = await form(homeowner, "/settings", {"form": "manual", "action": "charge", "power_w": "100", "until": ""})
    assert "until: got &#39;&#39;, expected a local date and time YYYY-MM-DDTHH:MM" in page


async def test_forms_without_token_are_refused(homeowner: TestClient) -> None:
    response = await homeowner.post("/settings", data={"form": "mode", "mode": "off", "reserve_pct": "10"})
    assert response.status == 403 and "CSRF" in await response.text()


async def test_login_form_sends_a_default_password_to_the_change_page(client: TestClient) -> None:
    status, location, page = await form(client, "/login", {"account": "installer", "password": "installer", "next": "/installer"})
    assert (status, location) == (303, "/password")
    assert "Please replace the default password" in page
    assert (await client.get("/prices", allow_redirects=False)).headers["Location"] == "/password"


async def test_login_form_ignores_offsite_next(client: TestClient) -> None:
    await form(client, "/login", {"account": "homeowner", "password": "nattery"})
    _, location, _ = await form(client, "/password", {
        "old_password": "nattery", "new_password": "long-enough-1", "repeat_password": "long-enough-1"})
    assert location == "/"
    await form(client, "/logout", {})
    status, location, _ = await form(client, "/login", {
        "account": "homeowner", "password": "long-enough-1", "next": "//evil.example/"})
    assert (status, location) == (303, "/")


async def test_installer_page_shows_every_register_and_health(stack: WebStack, installer: TestClient) -> None:
    page = await (await installer.get("/installer")).text()
    assert page.count('data-reg="') == len(stack.bridge.registers)
    assert "modbus.queue_depth" in page and "Recent events" in page


async def test_register_write_asks_for_confirmation_first(stack: WebStack, installer: TestClient) -> None:
    status, _, page = await form(installer, "/installer/register", {"op": "write", "name": "prog1_soc", "value": "55"})
    assert status == 200 and "Really write 55 % to register prog1_soc?" in page
    assert stack.bridge.registers["prog1_soc"] != 55
    status, _location, page = await form(installer, "/installer/register", {
        "op": "write", "name": "prog1_soc", "value": "55", "confirm": "yes"})
    assert status == 303 and "prog1_soc ← 55 %" in page and stack.bridge.registers["prog1_soc"] == 55


async def test_prices_table_shows_every_quarter_hour_grouped_by_day_and_hour(
    stack: WebStack, homeowner: TestClient
) -> None:
    await stack.store.call(seed_history, ZoneInfo(stack.cfg.device.timezone), time.time())
    page = await (await homeowner.get("/prices", headers={"Accept-Language": "en"})).text()
    table = page[page.index('<table class="data slots">'):]
    rows = re.findall(r'<tr class="(hour|quarter)( forecast)?">', table)
    hours = [r for r in rows if r[0] == "hour"]
    assert len(rows) in (4 * len(hours) - 4, 4 * len(hours), 4 * len(hours) + 4)  # 92/96/100 a day
    assert len(hours) in (47, 48, 49) and any(r[1] for r in rows) and not all(r[1] for r in rows)
    assert re.findall(r'<tr class="day"><th scope="rowgroup" colspan="5">(\w+)</th>', table) == ["Today", "Tomorrow"]


async def test_prices_page_shows_what_the_homeowner_pays_on_one_axis_from_midnight(
    stack: WebStack, homeowner: TestClient
) -> None:
    tz = ZoneInfo(stack.cfg.device.timezone)
    now = time.time()
    await stack.store.call(seed_history, tz, now)
    page = await (await homeowner.get("/prices", headers={"Accept-Language": "en"})).text()
    data = json.loads(page.split('<script type="application/json" id="prices-data">', 1)[1].split("</script>", 1)[0])
    today = local_today(tz, data["now"])
    assert data["start"] == day_bounds(today, tz)[0] and data["end"] > data["start"] + 86_400 - 7200
    tariff = Tariff(stack.cfg.tariff, stack.cfg.device.timezone)
    first = data["prices"][0]
    assert first["import_eur_mwh"] == pytest.approx(float(tariff.import_price([first["ts"]], [first["eur_mwh"]])[0]), abs=1e-3)
    assert first["import_eur_mwh"] > first["eur_mwh"]  # fees and VAT on top of spot
    table = page[page.index('<table class="data slots">'):]
    assert f"<td>{first['import_eur_mwh'] / 10:.1f} ct/kWh" in table.replace(",", "")
    assert "-0.0" not in page and "−0.0" not in page


async def test_settings_say_what_changed_and_show_a_running_override_as_the_mode(
    stack: WebStack, homeowner: TestClient
) -> None:
    _, _, page = await form(homeowner, "/settings", {"form": "mode", "mode": "auto", "reserve_pct": "20"})
    assert "Saved: reserve 10 % → 20 %. The planner uses it now" in page or "Saved: reserve" in page
    assert 'id="mode-now"' not in page
    tz = ZoneInfo(stack.cfg.device.timezone)
    end = datetime.now(tz).replace(second=0, microsecond=0) + timedelta(hours=20)  # likely tomorrow
    _, _, page = await form(homeowner, "/settings", {
        "form": "manual", "action": "charge", "power_w": "2500", "until": end.strftime("%Y-%m-%dT%H:%M")})
    flash = page.split('class="flash', 1)[1].split("</p>", 1)[0]
    assert f"Manual charge at 2,500 W started now; it ends {end:%d %b %H:%M}, then the battery returns to" in flash, flash
    mode_now = page.split('id="mode-now"', 1)[1].split("</form>", 1)[0]
    assert f"Manual charge until {end:%H:%M}" in mode_now and "End manual operation" in mode_now
    assert 'type="radio" name="mode" value="manual"' not in page  # the override is not a second radio
    assert "At most 5,000 W when charging" in page or 'id="power-limit">At most' in page
    # saving the reserve again keeps the override running (only a new mode ends it)
    _, _, page = await form(homeowner, "/settings", {"form": "mode", "mode": "auto", "reserve_pct": "25"})
    assert 'id="mode-now"' in page and "reserve 20 % → 25 %" in page
    _, _, page = await form(homeowner, "/settings", {"form": "manual_stop"})
    assert "Manual operation ended now; the battery is back in Automatic (follow plan)." in page
    assert 'id="mode-now"' not in page


async def test_installer_page_lists_mscons_files_with_upload_and_acknowledgement(
    stack: WebStack, installer: TestClient
) -> None:
    page = await (await installer.get("/installer")).text()
    assert "No file yet (set the market identities, section market:)." in page
    assert '<th scope="row">market.malo_id</th><td>–</td>' in page  # none configured in the harness

    def store_file(store: Any) -> None:
        store.db.execute("INSERT INTO edi_files (name, created_at, period_start, period_end, content) "
                         "VALUES ('MSCONS_DE0001_2026-06-15_00000001.edi', 1781561400, 1781474400, 1781560800, 'x')")
        store.db.conn.commit()

    await stack.store.call(store_file)
    page = await (await installer.get("/installer")).text()
    row = re.search(r"<tr><th scope=\"row\">MSCONS_DE0001_2026-06-15_00000001.edi</th>(.*?)</tr>", page)
    assert row is not None and "waiting for upload" in row.group(1) and "none received" in row.group(1)

    def acknowledge(store: Any) -> None:
        seq = store.db.execute("SELECT max(seq) FROM outbox WHERE stream = 'edi'").fetchone()[0]
        store.set_sync_cursor("edi", seq)

    await stack.store.call(acknowledge)
    page = await (await installer.get("/installer")).text()
    assert "waiting for upload" not in page and ">uploaded<" in page
    assert await stack.store.call(Store.unacknowledged_edi_files, 10) == ["MSCONS_DE0001_2026-06-15_00000001.edi"]

    # The gateway's answer, as the sync client stores it (GET /v1/edi/answers).
    answer = {"name": "MSCONS_DE0001_2026-06-15_00000001.edi", "state": "rejected",
              "errors": [{"level": "APERAK", "code": "Z39", "text": "MIG version '2.5' is not in force"}]}
    await stack.store.call(Store.record_edi_answers, [answer], [], 1781565000.0)
    page = await (await installer.get("/installer")).text()
    row = re.search(r"<tr><th scope=\"row\">MSCONS_DE0001_2026-06-15_00000001.edi</th>(.*?)</tr>", page)
    assert row is not None and "rejected" in row.group(1) and "<code>Z39</code> MIG version &#39;2.5&#39; is not in force" in row.group(1)
    assert await stack.store.call(Store.unacknowledged_edi_files, 10) == []


async def test_homeowner_sees_how_far_the_official_meter_differs(stack: WebStack, homeowner: TestClient) -> None:
    page = await (await homeowner.get("/")).text()
    assert 'id="meter-values"' not in page  # the official values never arrived
    day = {"day": "2026-06-15", "obis": "1-1:1.29.0", "device_wh": 10_250, "partner_wh": 10_000, "diff_pct": 2.5,
           "flagged": True}
    await stack.store.call(Store.record_edi_answers, [], [day, {**day, "day": "2026-06-14", "diff_pct": -0.4}], 1781565000.0)
    page = await (await homeowner.get("/")).text()
    assert "Your meter&#39;s values for 2026-06-15 arrived: they differ from ours by 2.5 %." in page
    assert "More than the usual metering tolerance" in page


async def test_homeowner_sees_todays_and_this_months_community_trades(stack: WebStack, homeowner: TestClient) -> None:
    page = await (await homeowner.get("/")).text()
    assert 'id="community"' not in page  # not in a community (the aggregator sent nothing)
    tz, now = ZoneInfo(stack.cfg.device.timezone), time.time()
    today = local_today(tz, now)
    midnight, month = day_bounds(today, tz)[0], day_bounds(today.replace(day=1), tz)[0]
    trades = {"community": "lindenstr", "member": "DE0002", "sold_wh": 0, "bought_wh": 800, "buyers": 0, "sellers": 2,
              "revenue_neur": 0, "cost_neur": 800 * 204_700, "saving_neur": 800 * 115_300}
    await stack.store.call(Store.record_community_summary, "today", midnight, [trades], now)
    await stack.store.call(Store.record_community_summary, "month", month, [
        {**trades, "sold_wh": 2_500, "buyers": 3, "revenue_neur": 2_500 * 194_700, "saving_neur": 800 * 115_300 + 2_500 * 115_300}], now)
    page = await (await homeowner.get("/")).text()
    card = page.split('id="community"', 1)[1].split("</div>", 1)[0]
    assert "bought 0.80 kWh from 2 neighbours, paid €0.16 (€0.20 per kWh)" in card
    assert "sold 2.50 kWh to 3 neighbours, received €0.49" in card
    assert "€0.09 better than with the grid" in card and "€0.38 better than with the grid" in card
