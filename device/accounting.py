"""Settlement: what each metered quarter-hour cost, and what the battery saved.

Per slot, from the metered energy (``energy_slots``) and that slot's prices (the tariff applied
to the day-ahead price):

* ``cost_eur`` = import_wh × import price, ``revenue_eur`` = export_wh × export price;
* ``cost_no_battery_eur``: the same slot without a battery — the metered load and PV netted
  within the slot (``load − pv`` imported when positive, exported when negative);
* ``cost_self_consumption_eur``: the same load and PV through a battery run by the plain
  self-consumption rule (:func:`device.plan.baseline.simulate_self_consumption`), slot by slot, with
  its own state of charge carried from day to day in ``settlement_days``.

Both counterfactuals use only the measurements, so savings = counterfactual − (cost − revenue)
is what the battery and the planner were worth. A slot without a price is settled with NULL
money and left out of the totals (``unpriced_slots`` counts them). Settled slots reach the
cloud through the store's outbox triggers; daily totals are kept per local date as a running sum,
so today's figures fill up quarter-hour by quarter-hour.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import structlog

from common.crash import crash_point
from device.home.effective import EffectiveSettings
from device.plan.baseline import simulate_self_consumption
from device.plan.model import Battery
from device.prices.tariff import Tariff
from device.rounds import repeat
from device.store import AsyncStore, Store

CRASH_VARIABLE = "TEST_APP_CRASH"  # kill -9 tests: ``settlement_read:<n>``, ``plan_stored:<n>``
log = structlog.get_logger(__name__)
SLOT_S = 900


@dataclass(frozen=True)
class Settlement:
    ts: int
    import_wh: float
    export_wh: float
    import_price: float | None  # EUR/MWh
    export_price: float | None
    cost_eur: float | None
    revenue_eur: float | None
    cost_no_battery_eur: float | None
    cost_self_consumption_eur: float | None


def settle(
    slots: list[dict[str, Any]],
    spot: dict[int, float],
    tariff: Tariff,
    battery: Battery,
    sc_soc_pct: float,
) -> tuple[list[Settlement], float, float]:
    """Settle metered slots (``energy_slots`` rows, oldest first) against spot prices by slot start.

    Returns the settlements, the self-consumption counterfactual's SoC after the last slot, and
    how much more energy (Wh, in the battery) the real battery stored over these slots than the
    counterfactual: a grid charge kept for tomorrow is not lost money (the forcing gate's
    feedback values it, :func:`day_result_eur`).
    """
    if not slots:
        return [], sc_soc_pct, 0.0
    ts = np.array([int(s["ts"]) for s in slots], dtype=np.int64)
    load_w = np.array([s["load_wh"] for s in slots], dtype=float) * 3600 / SLOT_S
    pv_w = np.array([s["pv_wh"] for s in slots], dtype=float) * 3600 / SLOT_S
    spot_arr = np.array([spot.get(int(t), np.nan) for t in ts])
    imp_p = tariff.import_price(ts, spot_arr)
    exp_p = tariff.export_price(ts, spot_arr)
    sc_battery_w, sc_soc = simulate_self_consumption(load_w, pv_w, sc_soc_pct, battery)
    net_wh = (load_w - pv_w) * SLOT_S / 3600
    sc_net_wh = (load_w - pv_w - sc_battery_w) * SLOT_S / 3600
    result = []
    for i, row in enumerate(slots):
        priced = bool(np.isfinite(spot_arr[i]))
        pi, pe = (float(imp_p[i]), float(exp_p[i])) if priced else (None, None)
        result.append(Settlement(
            ts=int(ts[i]),
            import_wh=float(row["import_wh"]),
            export_wh=float(row["export_wh"]),
            import_price=pi,
            export_price=pe,
            cost_eur=_money(row["import_wh"], pi),
            revenue_eur=_money(row["export_wh"], pe),
            cost_no_battery_eur=_net_cost(net_wh[i], pi, pe),
            cost_self_consumption_eur=_net_cost(sc_net_wh[i], pi, pe),
        ))
    charged = np.array([s.get("charge_wh") or 0.0 for s in slots], dtype=float)
    discharged = np.array([s.get("discharge_wh") or 0.0 for s in slots], dtype=float)
    stored = charged * battery.charge_efficiency - discharged / battery.discharge_efficiency
    sc_stored = np.where(sc_battery_w > 0, -sc_battery_w / battery.discharge_efficiency,
                         -sc_battery_w * battery.charge_efficiency) * SLOT_S / 3600
    return result, float(sc_soc[-1]), float(stored.sum() - sc_stored.sum())


def _money(wh: float, price: float | None) -> float | None:
    return None if price is None else wh / 1e6 * price


def _net_cost(net_wh: float, import_price: float | None, export_price: float | None) -> float | None:
    if import_price is None or export_price is None:
        return None
    return net_wh / 1e6 * (import_price if net_wh > 0 else export_price)


def day_bounds(day: date, timezone: str) -> tuple[int, int]:
    """Epoch seconds of the local day's first slot and of the next day's (92/96/100 slots)."""
    zone = ZoneInfo(timezone)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    return int(start.timestamp()), int(end.timestamp())


def totals(settlements: list[Settlement], sc_soc_end_pct: float, stored_vs_sc_wh: float = 0.0) -> dict[str, Any]:
    """Daily totals (EUR, Wh): net cost, both counterfactuals and the savings against each, and
    what the forcing gate's feedback needs (:func:`day_result_eur`)."""
    priced = [s for s in settlements if s.cost_eur is not None]
    cost = sum((s.cost_eur or 0.0) - (s.revenue_eur or 0.0) for s in priced)
    no_battery = sum(s.cost_no_battery_eur or 0.0 for s in priced)
    self_consumption = sum(s.cost_self_consumption_eur or 0.0 for s in priced)
    return {
        "slots": len(settlements),
        "unpriced_slots": len(settlements) - len(priced),
        "import_wh": round(sum(s.import_wh for s in settlements), 3),
        "export_wh": round(sum(s.export_wh for s in settlements), 3),
        "net_cost_eur": round(cost, 9),
        "cost_no_battery_eur": round(no_battery, 9),
        "cost_self_consumption_eur": round(self_consumption, 9),
        "savings_vs_no_battery_eur": round(no_battery - cost, 9),
        "savings_vs_self_consumption_eur": round(self_consumption - cost, 9),
        "sc_soc_end_pct": round(sc_soc_end_pct, 9),  # carried into the next slot: no drift
        "stored_vs_self_consumption_wh": round(stored_vs_sc_wh, 9),
        "import_price_sum_eur_mwh": round(sum(s.import_price or 0.0 for s in priced), 9),
    }


def day_result_eur(day: dict[str, Any], discharge_efficiency: float) -> float | None:
    """What the battery's running earned against self-consumption on a settled day (EUR): the
    saving, plus the energy it stored beyond the counterfactual's over the day valued at the
    day's mean import price after the discharge loss (negative when it ended the day with less).
    Without it a grid charge in the evening for tomorrow's morning counts as a loss today and a
    gain tomorrow, and a week cut at the wrong day looks lost. None without a saving."""
    saving = day.get("savings_vs_self_consumption_eur")
    if saving is None:
        return None
    priced = int(day.get("slots", 0)) - int(day.get("unpriced_slots", 0))
    mean_price = float(day.get("import_price_sum_eur_mwh", 0.0)) / priced if priced > 0 else 0.0
    return float(saving) + float(day.get("stored_vs_self_consumption_wh", 0.0)) / 1e6 * mean_price * discharge_efficiency


def settle_day(
    store: Store, day: date, tariff: Tariff, battery: Battery, timezone: str, zone: str, now: float | None = None
) -> dict[str, Any] | None:
    """Settle the complete slots of one local day that are not settled yet, and add them to the
    day's running totals; returns the new totals, or None when no slot was new.

    Slots are derived in time order and never change once complete, so each is settled once, as
    soon as it is in: today's totals grow during the day, and every settled slot reaches the
    outbox once. The self-consumption counterfactual continues from the state after the day's
    last settled slot (the previous day's end, or the battery's floor for the first day).
    Only slots over by ``now`` (default: the end of the day) are settled.
    """
    start, end = day_bounds(day, timezone)
    settled = store.settlement_day(day.isoformat())
    after = store.last_settled_ts(start, end)
    first = start if after is None else after + SLOT_S
    until = end if now is None else min(end, int(now // SLOT_S) * SLOT_S)
    slots = [s for s in store.energy_slots(first, until) if s["complete"]]
    if not slots:
        return None
    spot = {int(p["ts"]): float(p["eur_mwh"]) for p in expand_hourly(store.price_points(zone, first - 3600, end))}
    if settled is None or after is None:
        previous = store.settlement_day((day - timedelta(days=1)).isoformat())
        sc_soc = previous["sc_soc_end_pct"] if previous else battery.floor_pct
        settled = None
    else:
        sc_soc = settled.get("sc_soc_end_pct", battery.floor_pct)
    settlements, sc_end, stored = settle(slots, spot, tariff, battery, sc_soc)
    result = add_totals(settled, totals(settlements, sc_end, stored))
    crash_point(CRASH_VARIABLE, "settlement_read")
    store.save_settlements([asdict(s) for s in settlements], day.isoformat(), result, time.time())
    log.info("settled", day=day.isoformat(), new_slots=len(settlements),
             **{k: result[k] for k in ("slots", "net_cost_eur")})
    return result


_SUMMED = ("slots", "unpriced_slots", "import_wh", "export_wh", "net_cost_eur", "cost_no_battery_eur",
           "cost_self_consumption_eur", "savings_vs_no_battery_eur", "savings_vs_self_consumption_eur",
           "stored_vs_self_consumption_wh", "import_price_sum_eur_mwh")


def add_totals(before: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A day's running totals: ``before`` (the slots settled so far, or None) plus ``new``
    (the next slots); the counterfactual's state is the newer one."""
    if before is None:
        return new
    summed = {k: round(before.get(k, 0) + new.get(k, 0), 9) for k in _SUMMED}
    return {**summed, "slots": int(summed["slots"]), "unpriced_slots": int(summed["unpriced_slots"]),
            "sc_soc_end_pct": new["sc_soc_end_pct"]}


def expand_hourly(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hourly prices → four quarter-hours each (the market was hourly before 2025-10-01)."""
    out = []
    for p in points:
        step = int(p.get("resolution_s") or SLOT_S)
        for k in range(max(step // SLOT_S, 1)):
            out.append({"ts": int(p["ts"]) + k * SLOT_S, "eur_mwh": p["eur_mwh"]})
    return out


async def settle_pending(
    store: AsyncStore, tariff: Tariff, battery: Battery, timezone: str, zone: str, now: float,
    days_back: int = 3,
) -> list[dict[str, Any]]:
    """Settle every complete slot not settled yet, from ``days_back`` days ago up to today
    (oldest first, so each day's counterfactual continues from the day before); idempotent.

    Returns the running totals of the days that got new slots.
    """
    today = datetime.fromtimestamp(now, ZoneInfo(timezone)).date()
    done = []
    for back in range(days_back, -1, -1):
        result = await store.call(settle_day, today - timedelta(days=back), tariff, battery, timezone, zone, now)
        if result is not None:
            done.append(result)
    return done


async def settlement_loop(
    store: AsyncStore,
    settings: EffectiveSettings,
    *,
    every_s: float = 60.0,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Settle each quarter-hour within ``every_s`` of its energy slot being derived (the store's
    housekeeping derives a slot a few minutes after it ends); runs until cancelled.

    Each round settles with the effective tariff and battery of that moment, so a tariff the
    homeowner changed counts from the next settled slot on.
    """
    async def step(now: float) -> None:
        cfg = settings.config
        await settle_pending(store, Tariff(cfg.tariff, cfg.device.timezone), Battery.from_config(cfg),
                             cfg.device.timezone, cfg.prices.zone, now)

    await repeat(step, every_s, "settlement_failed", clock=clock, sleep=sleep)
