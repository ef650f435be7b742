from datetime import date
from pathlib import Path

import pytest

from device.accounting import day_bounds, day_result_eur, settle, settle_day, totals
from device.config import TariffSettings
from device.plan.model import Battery
from device.prices.tariff import Tariff
from device.store import Store

T0 = 1717200000  # 2024-06-01T00:00Z, a slot start
IMPORT = (80 + 15 + 100 + 32.34 + 20.5) * 1.19  # 294.9296 EUR/MWh at spot 80
EXPORT = 79.4
BAT = Battery(capacity_wh=10_000, min_soc_pct=0, reserve_pct=0, max_charge_w=5000, max_discharge_w=5000)


def slot(ts: int, imp: float, exp: float, load: float, pv: float, ch: float = 0, dis: float = 0) -> dict[str, float]:
    return {"ts": ts, "import_wh": imp, "export_wh": exp, "charge_wh": ch, "discharge_wh": dis,
            "pv_wh": pv, "load_wh": load, "complete": 1}


def test_two_slots_by_hand() -> None:
    slots = [
        # night: battery covered 700 of 1200 Wh load; 500 Wh imported
        slot(T0, 500, 0, 1200, 0, dis=700),
        # noon: 2000 Wh PV, 500 Wh load, battery took 1500 Wh; nothing exported
        slot(T0 + 900, 0, 0, 500, 2000, ch=1500),
    ]
    result, sc_end, _ = settle(slots, {T0: 80.0, T0 + 900: 80.0}, Tariff(TariffSettings()), BAT, sc_soc_pct=0.0)
    night, noon = result
    assert night.cost_eur == pytest.approx(500 / 1e6 * IMPORT)
    assert night.revenue_eur == 0
    assert night.cost_no_battery_eur == pytest.approx(1200 / 1e6 * IMPORT)
    # the self-consumption battery is empty at night: same as no battery
    assert night.cost_self_consumption_eur == pytest.approx(1200 / 1e6 * IMPORT)
    # noon without battery: 1500 Wh exported
    assert noon.cost_no_battery_eur == pytest.approx(-1500 / 1e6 * EXPORT)
    # self-consumption charges at most 5 kW = 1250 Wh in the slot, exports the other 250 Wh
    assert noon.cost_self_consumption_eur == pytest.approx(-250 / 1e6 * EXPORT)
    assert sc_end == pytest.approx(1250 * 0.95 / 10_000 * 100)


def test_energy_stored_for_tomorrow_is_not_counted_as_lost() -> None:
    """An evening grid charge kept for tomorrow's morning: today's saving against
    self-consumption is its whole cost, but the forcing gate's day result values the energy
    still stored beyond the counterfactual's at the day's mean import price after the discharge
    loss, so only the round-trip loss remains (a restart reads the same from the day's totals)."""
    charge = slot(T0, 1000, 0, 0, 0, ch=1000)  # 1 kWh from the grid into the battery, no load
    idle = slot(T0 + 900, 0, 0, 0, 0)
    settlements, sc_end, stored = settle([charge, idle], {T0: 80.0, T0 + 900: 80.0}, Tariff(TariffSettings()), BAT, 0.0)
    assert stored == pytest.approx(1000 * 0.95)  # the counterfactual stored nothing
    day = totals(settlements, sc_end, stored)
    assert day["savings_vs_self_consumption_eur"] == pytest.approx(-1000 / 1e6 * IMPORT)
    assert day_result_eur(day, 0.95) == pytest.approx(-(1000 - 1000 * 0.95 * 0.95) / 1e6 * IMPORT)
    assert day_result_eur({"slots": 1}, 0.95) is None  # nothing saved or lost yet: no result


def test_unpriced_slot_is_left_out_of_money() -> None:
    result, _, _ = settle([slot(T0, 100, 0, 100, 0)], {}, Tariff(TariffSettings()), BAT, 0.0)
    assert result[0].cost_eur is None and result[0].cost_no_battery_eur is None


def test_dst_day_has_92_slots() -> None:
    start, end = day_bounds(date(2024, 3, 31), "Europe/Berlin")
    assert (end - start) // 900 == 92
    start, end = day_bounds(date(2024, 10, 27), "Europe/Berlin")
    assert (end - start) // 900 == 100


def test_settle_day_stores_slots_totals_and_queues_sync(tmp_path: Path) -> None:
    store = Store(tmp_path / "nattery.db")
    start, end = day_bounds(date(2024, 6, 1), "Europe/Berlin")
    rows = [
        {**slot(t, 250, 0, 250, 0), "samples": 180, "covered_s": 900, "source": "power", "updated_at": 0.0}
        for t in range(start, end, 900)
    ]
    store.db.table("energy_slots").insert_all(rows)
    store.db.table("prices").insert_all(
        {"zone": "DE_LU", "ts": t, "resolution_s": 3600, "price_eur_mwh": 80.0, "source": "csv", "fetched_at": 0.0}
        for t in range(start, end, 3600)
    )
    totals = settle_day(store, date(2024, 6, 1), Tariff(TariffSettings()), BAT, "Europe/Berlin", "DE_LU")
    assert totals is not None and totals["slots"] == 96 and totals["unpriced_slots"] == 0
    assert totals["net_cost_eur"] == pytest.approx(96 * 250 / 1e6 * IMPORT)
    assert totals["savings_vs_no_battery_eur"] == pytest.approx(0.0, abs=1e-9)
    assert store.settlement_day("2024-06-01") == totals
    assert store.settlement_totals(start, end)["slots"] == 96
    queued = store.db.execute("SELECT count(*) FROM outbox WHERE stream = 'settlements'").fetchone()[0]
    assert queued == 96
    # settling again finds nothing new: no slot is duplicated or queued twice
    assert settle_day(store, date(2024, 6, 1), Tariff(TariffSettings()), BAT, "Europe/Berlin", "DE_LU") is None
    assert store.settlement_totals(start, end)["slots"] == 96
    assert store.db.execute("SELECT count(*) FROM outbox WHERE stream = 'settlements'").fetchone()[0] == 96


def test_a_day_settled_quarter_hour_by_quarter_hour_adds_up_to_the_whole_day(tmp_path: Path) -> None:
    """Today's totals are a running sum: settling slot by slot as each ends gives the same
    day totals (money, energy and the counterfactual battery's state) as settling the day at once."""
    day = date(2024, 6, 1)
    start, end = day_bounds(day, "Europe/Berlin")
    # a day with sun at noon, so the self-consumption counterfactual charges and discharges
    rows = [{**slot(t, 0, 0, 400, 1500 if 40 <= i < 64 else 0), "samples": 180, "covered_s": 900,
             "source": "power", "updated_at": 0.0} for i, t in enumerate(range(start, end, 900))]
    for r in rows:
        r["import_wh"], r["export_wh"] = max(r["load_wh"] - r["pv_wh"], 0), max(r["pv_wh"] - r["load_wh"], 0)
    prices = [{"zone": "DE_LU", "ts": t, "resolution_s": 900, "price_eur_mwh": 50.0 + (t - start) / 900,
               "source": "csv", "fetched_at": 0.0} for t in range(start, end, 900)]
    whole, stepwise = Store(tmp_path / "whole.db"), Store(tmp_path / "steps.db")
    for store in (whole, stepwise):
        store.db.table("prices").insert_all(prices)
    whole.db.table("energy_slots").insert_all(rows)
    at_once = settle_day(whole, day, Tariff(TariffSettings()), BAT, "Europe/Berlin", "DE_LU")
    running = []
    for row in rows:  # each slot arrives as it ends, and is settled then
        stepwise.db.table("energy_slots").insert(row)
        running.append(settle_day(stepwise, day, Tariff(TariffSettings()), BAT, "Europe/Berlin", "DE_LU"))
    assert [r["slots"] for r in running if r] == list(range(1, 97))
    assert running[-1] == pytest.approx(at_once, abs=1e-6)  # sums in another order: equal within a µWh, a µEUR
    half = stepwise.settlement_totals(start, start + 48 * 900)  # noon: the running sum so far
    assert running[47]["net_cost_eur"] == pytest.approx(half["cost_eur"] - half["revenue_eur"])


async def test_pending_days_are_settled_once_their_slots_are_in(tmp_path: Path) -> None:
    from device.accounting import settle_pending
    from device.store import AsyncStore

    start, end = day_bounds(date(2024, 6, 1), "Europe/Berlin")
    async with AsyncStore(tmp_path / "nattery.db") as store:
        now = end + 3600.0
        tariff = Tariff(TariffSettings())
        assert await settle_pending(store, tariff, BAT, "Europe/Berlin", "DE_LU", now, days_back=1) == []
        rows = [{**slot(t, 250, 0, 250, 0), "samples": 180, "covered_s": 900, "source": "power", "updated_at": 0.0}
                for t in range(start, end, 900)]
        await store.call(lambda s: s.db.table("energy_slots").insert_all(rows))  # type: ignore[arg-type]
        second = await settle_pending(store, tariff, BAT, "Europe/Berlin", "DE_LU", now, days_back=1)
        assert second[0]["slots"] == 96
        assert await settle_pending(store, tariff, BAT, "Europe/Berlin", "DE_LU", now, days_back=1) == []


def test_accounting_needs_only_the_baseline_not_the_lp() -> None:
    """Settlement compares against the self-consumption rule; HiGHS stays out of its imports."""
    import subprocess
    import sys

    check = "import sys, device.accounting; print(sorted(m for m in ('highspy', 'device.plan.lp') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
