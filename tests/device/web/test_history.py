"""Energy history: bars per hour/day/month from the stored quarter-hours, totals, CSV, the
monthly report, and a clear 400 for every bad query parameter. Real app, real store file."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient

from device.store import Store
from device.web.history import Period, bars, parse_query
from device.web.keys import DEPS
from tests.device.web.harness import WebStack

TZ = ZoneInfo("Europe/Berlin")
DAY1, DAY2 = date(2024, 6, 3), date(2024, 6, 4)


def midnight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=TZ).timestamp())


def seed(store: Store) -> None:
    """Two days of quarter-hours (PV 100 Wh, house 200 Wh, import 150, export 50, charge 30,
    discharge 20); the first day settled (import cost 0.04, revenue 0.01, no battery 0.05, self 0.045)."""
    start, end = midnight(DAY1), midnight(date(2024, 6, 5))
    store.db.table("energy_slots").insert_all(
        {"ts": t, "pv_wh": 100.0, "load_wh": 200.0, "import_wh": 150.0, "export_wh": 50.0, "charge_wh": 30.0,
         "discharge_wh": 20.0, "samples": 90, "covered_s": 900, "complete": 1, "source": "power", "updated_at": 0.0}
        for t in range(start, end, 900))
    store.save_settlements(
        [{"ts": t, "import_wh": 150.0, "export_wh": 50.0, "import_price": 300.0 + (t - start) / 900,
          "export_price": 80.0, "cost_eur": 0.04, "revenue_eur": 0.01, "cost_no_battery_eur": 0.05,
          "cost_self_consumption_eur": 0.045} for t in range(start, midnight(DAY2), 900)],
        DAY1.isoformat(), {}, 0.0)


@pytest.fixture
async def seeded(stack: WebStack, homeowner: TestClient) -> TestClient:
    assert stack.cfg.device.timezone == TZ.key
    await stack.store.call(seed)
    stack.app[DEPS].clock = lambda: float(midnight(DAY2) + 12 * 3600)
    return homeowner


def test_bars_follow_the_local_calendar() -> None:
    assert len(bars([], Period("day", date(2024, 3, 31)), TZ)) == 23  # spring forward
    assert len(bars([], Period("day", date(2024, 10, 27)), TZ)) == 25
    assert len(bars([], Period.containing("week", date(2024, 6, 5)), TZ)) == 7
    assert Period.containing("week", date(2024, 6, 5)).first == date(2024, 6, 3)  # a Monday
    assert len(bars([], Period("month", date(2024, 2, 1)), TZ)) == 29
    assert len(bars([], Period("year", date(2024, 1, 1)), TZ)) == 12
    assert Period("month", date(2024, 12, 1)).step(1).first == date(2025, 1, 1)


async def test_month_bars_and_totals(seeded: TestClient) -> None:
    response = await seeded.get("/history?period=month&date=2024-06-17", headers={"Accept-Language": "en"})
    assert response.status == 200
    html = await response.text()
    assert html.count("<tr><td>") == 30  # one row per day of June
    total = html.split('id="history-total"', 1)[1].split("</tr>", 1)[0]
    assert "<td>19.2</td>" in total  # PV: 192 quarter-hours × 100 Wh
    assert "<td>38.4</td>" in total  # house
    assert "€2.88" in total  # cost: 96 × (0.04 − 0.01), the settled day only
    assert "€1.92" in total  # saved vs no battery: 96 × (0.05 − 0.03)
    assert html.count("<rect ") == 30 * 6 + 30 * 2  # energy and money bars, one group per day


async def test_csv_has_the_bars_and_the_total(seeded: TestClient) -> None:
    response = await seeded.get("/history.csv?period=week&date=2024-06-04")
    assert response.status == 200 and response.content_type == "text/csv"
    assert "nattery-week-2024-06-03.csv" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [r["start"] for r in rows[:2]] == ["2024-06-03T00:00:00+02:00", "2024-06-04T00:00:00+02:00"]
    assert rows[0]["pv_kwh"] == "9.600" and rows[0]["cost_eur"] == "2.8800"
    assert rows[1]["cost_eur"] == ""  # not settled: empty, never 0 or None
    assert rows[-1]["start"] == "total" and rows[-1]["house_kwh"] == "38.400"


async def test_monthly_report_energy_money_and_prices(seeded: TestClient) -> None:
    html = await (await seeded.get("/history/report?month=2024-06", headers={"Accept-Language": "en"})).text()
    money = html.split('id="report-money"', 1)[1].split("</dl>", 1)[0]
    assert "€2.88" in money and "€1.92" in money and "€1.44" in money  # vs self: 96 × (0.045 − 0.03)
    prices = html.split('id="report-prices"', 1)[1].split("</table>", 1)[0]
    assert "30.0 ct/kWh" in prices and "39.5 ct/kWh" in prices and "34.8 ct/kWh" in prices  # min, max, mean
    assert "8.0 ct/kWh" in prices  # export


@pytest.mark.parametrize(("query", "named"), [
    ("period=decade", "period: got 'decade', allowed: day, week, month, year"),
    ("date=2024-13-01", "date: got '2024-13-01', allowed: a date YYYY-MM-DD"),
    ("date=1999-01-01", "date: got '1999-01-01'"),
    ("date=2024-6-1", "date: got '2024-6-1'"),
    ("colour=red", "colour: unknown parameter; allowed: period, date"),
])
async def test_bad_parameters_are_refused_by_name(seeded: TestClient, query: str, named: str) -> None:
    for path in ("/history", "/history.csv"):
        response = await seeded.get(f"{path}?{query}")
        assert response.status == 400 and named in await response.text()


async def test_bad_report_month_is_refused_by_name(seeded: TestClient) -> None:
    response = await seeded.get("/history/report?month=2024-1")
    assert response.status == 400 and "month: got '2024-1', allowed: a date YYYY-MM" in await response.text()
    response = await seeded.get("/history/report?period=day")
    assert response.status == 400 and "period: unknown parameter; allowed: month" in await response.text()


def test_parse_query_defaults() -> None:
    assert parse_query({}, ("period", "date"), DAY2) == {"period": "month", "date": DAY2}


async def test_the_api_serves_the_same_bars_and_refuses_the_same_parameters(seeded: TestClient) -> None:
    response = await seeded.get("/api/v1/history?period=week&date=2024-06-04")
    body = await response.json()
    assert response.status == 200 and len(body["bars"]) == 7 and body["total"]["pv_wh"] == 192 * 100.0
    assert body["bars"][0]["cost_eur"] == pytest.approx(2.88) and body["bars"][1]["cost_eur"] is None
    response = await seeded.get("/api/v1/history?period=hour")
    body = await response.json()
    assert response.status == 400 and body["field"] == "period" and "allowed: day, week, month, year" in body["error"]
