"""The overview answers "what is it doing and why": price now and its place in today's range, the
plan's action with a one-line reason, today's energy and saving so far."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient

from device.home.settings import Override
from device.store import Store
from device.web.explain import current_action, price_position, reason
from device.web.i18n import Locale
from device.web.keys import DEPS
from tests.device.web.harness import WebStack

TZ = ZoneInfo("Europe/Berlin")
EN, DE = Locale("en", TZ), Locale("de", TZ)


def at(hour: int, minute: int = 0, day: int = 3) -> int:
    return int(datetime(2024, 6, day, hour, minute, tzinfo=TZ).timestamp())


def slot(ts: int, action: str, price: float, *, charge: float = 0, discharge: float = 0, imp: float = 0,
         load: float = 500, soc: float = 50) -> dict[str, Any]:
    return {"ts": ts, "action": action, "import_price": price, "charge_w": charge, "discharge_w": discharge,
            "import_w": imp, "load_w": load, "soc_pct": soc}


def test_grid_charging_names_the_slot_it_charges_for() -> None:
    slots = [slot(at(23, 0), "charge", 120.0, charge=3000, imp=3500), slot(at(23, 15), "charge", 125.0),
             slot(at(7, 30, day=4), "discharge", 380.0, discharge=2000)]
    facts = current_action(slots, at(23, 5))
    assert reason(facts, None, at(23, 5), EN) == "Charging from the grid at 12.0 ct/kWh for tomorrow morning at 38.0 ct/kWh"
    assert reason(facts, None, at(23, 5), DE) == "Lädt aus dem Netz zu 12,0 ct/kWh für morgen früh zu 38,0 ct/kWh"


def test_holding_names_the_evening_peak() -> None:
    slots = [slot(at(14, 0), "hold", 250.0, soc=50), slot(at(19, 0), "discharge", 410.0, discharge=2500)]
    facts = current_action(slots, at(14, 3))
    assert reason(facts, None, at(14, 3), EN) == "Holding 50 % for the peak this evening at 41.0 ct/kWh"


def test_a_manual_override_and_a_missing_plan_are_said_plainly() -> None:
    override = Override("charge", 3000, float(at(21, 34)))
    assert reason(None, override, at(20), EN) == "Manual charge until 21:34, as you set it"
    assert reason(None, None, at(20), EN).startswith("No plan yet")
    assert current_action([slot(at(10), "hold", 1.0)], at(12)) is None  # the plan does not cover now


def test_price_position_in_todays_range() -> None:
    assert price_position([100.0, 300.0, 200.0], 150.0) == {"now": 150.0, "min": 100.0, "max": 300.0, "pct": 25}
    assert price_position([], 150.0) is None and price_position([1.0], None) is None


async def test_the_overview_shows_price_reason_energy_and_saving(stack: WebStack, homeowner: TestClient) -> None:
    assert stack.cfg.device.timezone == "Europe/Berlin"
    now = float(at(14, 5))
    stack.app[DEPS].clock = lambda: now
    day = at(0)

    def seed(store: Store) -> None:
        store.db.table("prices").insert_all(
            {"zone": "DE_LU", "ts": t, "resolution_s": 900, "price_eur_mwh": 50.0 + (t - day) / 900,
             "source": "csv", "fetched_at": 0.0} for t in range(day, day + 96 * 900, 900))
        store.db.table("energy_slots").insert_all(
            {"ts": t, "import_wh": 100.0, "export_wh": 50.0, "charge_wh": 200.0, "discharge_wh": 25.0, "pv_wh": 400.0,
             "load_wh": 275.0, "samples": 90, "covered_s": 900, "complete": 1, "source": "power", "updated_at": 0.0}
            for t in range(day, at(14), 900))
        store.save_settlements([{"ts": day, "import_wh": 100.0, "export_wh": 50.0, "import_price": 300.0,
                                 "export_price": 80.0, "cost_eur": 0.03, "revenue_eur": 0.004,
                                 "cost_no_battery_eur": 0.05, "cost_self_consumption_eur": 0.04}], "2024-06-03", {}, now)
        store.insert_plan(now, "test", {"slots": [slot(at(14), "hold", 999.0, soc=64),
                                                  slot(at(19), "discharge", 1234.0, discharge=2000)]})

    await stack.store.call(seed)
    html = await (await homeowner.get("/", headers={"Accept-Language": "en"})).text()
    doing = html.split('id="doing-now"', 1)[1].split("</div>", 1)[0]
    assert "Holding 64 % for the peak this evening at 123.4 ct/kWh" in doing
    price = html.split('id="price-now"', 1)[1].split("</div>", 1)[0]
    assert "ct/kWh" in price and "today" in price
    assert 'value="59"' in price  # spot 106 in today's 50…145 (the tariff adds the same to each)
    energy = html.split('id="energy-today"', 1)[1].split("</section>", 1)[0]
    assert "22.4 kWh" in energy  # PV: 56 quarter-hours × 400 Wh
    assert "15.4 kWh" in energy  # house: 56 × 275 Wh
    assert "€0.02" in energy  # saved: 0.05 − (0.03 − 0.004)
