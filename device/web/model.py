"""What each page shows, as plain JSON-ready data: the HTML pages and the JSON API share it.

All times are epoch seconds (UTC); local days are cut in the home's time zone (a day has 92, 96
or 100 quarter hours). Money in EUR, prices in EUR/MWh, power in W, as everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from common.mscons import OBIS_IMPORT
from common.utc import format_utc
from device.modbus.codec import EncodeError, decode_raw, encode
from device.modbus.mapmodel import Register, RegisterMap
from device.store import AsyncStore, Reading, Store
from device.accounting import expand_hourly
from device.prices.tariff import Tariff
from device.config import Config
from device.web import explain
from device.web.deps import HealthSource

SLOT_S = 900


def day_bounds(day: date, tz: ZoneInfo) -> tuple[int, int]:
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    return int(start.timestamp()), int(end.timestamp())


def local_today(tz: ZoneInfo, now: float) -> date:
    return datetime.fromtimestamp(now, tz).date()


def parse_clock(text: str, key: str) -> tuple[int, int]:
    hours, sep, minutes = text.partition(":")
    if sep and hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60:
        return int(hours), int(minutes)
    raise ValueError(f"{key}: got {text!r}, expected local time HH:MM")


def tomorrow_state(known_tomorrow: int, tz: ZoneInfo, now: float, late_after: tuple[int, int]) -> str:
    """``known`` (published), ``pending`` (not due yet) or ``late`` (due, still missing)."""
    if known_tomorrow:
        return "known"
    local = datetime.fromtimestamp(now, tz)
    return "late" if (local.hour, local.minute) >= late_after else "pending"


async def prices_and_plan(
    store: AsyncStore, zone: str, tz: ZoneInfo, now: float, late_after: tuple[int, int], tariff: Tariff | None = None,
) -> dict[str, Any]:
    """Today's and tomorrow's prices per slot (known vs forecast) and the current plan.

    With ``tariff`` each point also has what the homeowner pays for import and gets for export
    (``import_eur_mwh``, ``export_eur_mwh``); ``start``/``end`` are today's 00:00 and the end of
    tomorrow, the charts' common time axis."""
    today = local_today(tz, now)
    start, _ = day_bounds(today, tz)
    _, end = day_bounds(today + timedelta(days=1), tz)
    known = await store.call(Store.price_points, zone, start, end)
    forecast = await store.call(Store.latest_forecast, "price", start, end)
    known_ts = {p["ts"] for p in known}
    points = [{"ts": p["ts"], "eur_mwh": p["eur_mwh"], "forecast": False} for p in known]
    points += [{"ts": f["ts"], "eur_mwh": f["value"], "forecast": True} for f in forecast if f["ts"] not in known_ts]
    points.sort(key=lambda p: p["ts"])
    if tariff is not None and points:
        ts, spot = [p["ts"] for p in points], [p["eur_mwh"] for p in points]
        for p, imp, exp in zip(points, tariff.import_price(ts, spot), tariff.export_price(ts, spot), strict=True):
            p["import_eur_mwh"], p["export_eur_mwh"] = round(float(imp), 3), round(float(exp), 3)
    tomorrow_start = day_bounds(today + timedelta(days=1), tz)[0]
    plan = await store.call(Store.latest_plan)
    slots = [] if plan is None else [s for s in plan.get("slots", []) if start <= s["ts"] < end]
    return {
        "today": today.isoformat(),
        "start": start,
        "end": end,
        "now": now,
        "tomorrow_start": tomorrow_start,
        "tomorrow": tomorrow_state(sum(p["ts"] >= tomorrow_start for p in known), tz, now, late_after),
        "prices": points,
        "plan": None if plan is None else {
            "created_at": plan["created_at"],
            "reason": plan["reason"],
            "slots": [_plan_slot(s) for s in slots],
        },
    }


async def today_at_a_glance(store: AsyncStore, cfg: Config, tz: ZoneInfo, now: float) -> dict[str, Any]:
    """The overview's facts: the import price now and today's range (EUR/MWh, the tariff applied),
    the plan's current action (see :mod:`device.web.explain`), today's energy (Wh) and saving so far,
    and the newest day the official meter's values were compared with ours (grid import; None
    until the aggregator's EDI gateway has both), and this home's energy-sharing trades of today
    and this month as the aggregator last summed them up (``community``: rows per period)."""
    today = local_today(tz, now)
    start, end = day_bounds(today, tz)
    points = {int(p["ts"]): float(p["eur_mwh"])
              for p in expand_hourly(await store.call(Store.price_points, cfg.prices.zone, start, end))}
    tariff = Tariff(cfg.tariff, cfg.device.timezone)
    ts = sorted(points)
    imports = [float(p) for p in tariff.import_price(ts, [points[t] for t in ts])] if ts else []
    by_ts = dict(zip(ts, imports, strict=True))
    current = by_ts.get(int(now // SLOT_S) * SLOT_S)
    plan = await store.call(Store.latest_plan)
    rows = await store.call(Store.energy_with_money, start, end)
    return {
        "price": explain.price_position(imports, current),
        "action": None if plan is None else explain.current_action(plan.get("slots", []), now),
        "energy": explain.energy_totals(rows),
        "energy_slots": len(rows),
        "saving": _money(await store.call(Store.settlement_totals, start, end)),
        "meter": await store.call(Store.latest_reconciliation, OBIS_IMPORT),
        "community": await store.call(Store.community_summary, start, day_bounds(today.replace(day=1), tz)[0]),
    }


def _plan_slot(slot: Mapping[str, Any]) -> dict[str, Any]:
    """Planned battery power in our sign (+ discharge) from the plan's charge/discharge columns."""
    battery_w = float(slot.get("discharge_w") or 0) - float(slot.get("charge_w") or 0)
    return {"ts": slot["ts"], "battery_w": battery_w, "soc_pct": slot.get("soc_pct"), "action": slot.get("action")}


async def savings(store: AsyncStore, tz: ZoneInfo, now: float) -> dict[str, Any]:
    """Net cost and savings for today, this month and this year (local calendar)."""
    today = local_today(tz, now)
    periods = {
        "today": today,
        "month": today.replace(day=1),
        "year": today.replace(month=1, day=1),
    }
    _, end = day_bounds(today, tz)
    result: dict[str, Any] = {}
    for name, first in periods.items():
        totals = await store.call(Store.settlement_totals, day_bounds(first, tz)[0], end)
        result[name] = _money(totals)
    return result


def _money(totals: Mapping[str, Any]) -> dict[str, Any]:
    """Savings = what it would have cost minus the actual net cost (import cost − export revenue)."""
    if not totals["slots"]:
        return {"slots": 0, "cost_eur": None, "saved_vs_no_battery_eur": None, "saved_vs_self_consumption_eur": None}
    actual = (totals["cost_eur"] or 0.0) - (totals["revenue_eur"] or 0.0)
    no_battery, self_only = totals["cost_no_battery_eur"], totals["cost_self_consumption_eur"]
    return {
        "slots": totals["slots"],
        "import_wh": totals["import_wh"],
        "export_wh": totals["export_wh"],
        "cost_eur": actual,
        "saved_vs_no_battery_eur": None if no_battery is None else no_battery - actual,
        "saved_vs_self_consumption_eur": None if self_only is None else self_only - actual,
    }


def raw_value(register: Register, value: float | None) -> int | float | None:
    """The number on the wire for a decoded value (what an installer compares with a datasheet)."""
    if value is None:
        return None
    try:
        return decode_raw(register, encode(register, value))
    except (EncodeError, OverflowError, ValueError):
        return None


def registers(regmap: RegisterMap, reading: Reading | None) -> list[dict[str, Any]]:
    """Every register of the map with its last reading, by device (the map's main unit first,
    then each further device in the map's order: Fronius's meter at 200 reuses the inverter's
    addresses), table and address; ``unit_id`` and ``device`` say which Modbus device holds it."""
    values = {} if reading is None else reading.registers
    order = {name: i for i, name in enumerate(["", *(name for name, _ in regmap.protocol.devices)])}
    rows = []
    for reg in sorted(regmap.registers.values(), key=lambda r: (order[r.device], r.table, r.address)):
        value = values.get(reg.name)
        rows.append({
            "name": reg.name, "unit_id": regmap.protocol.unit_of(reg.device), "device": reg.device,
            "address": reg.address, "table": reg.table, "type": reg.type,
            "unit": reg.unit, "access": reg.access, "description": reg.description,
            "min": reg.min, "max": reg.max, "enum": {str(k): v for k, v in reg.enum.items()},
            "value": value, "raw": raw_value(reg, value),
        })
    return rows


async def health(store: AsyncStore, sources: Mapping[str, HealthSource], web: Mapping[str, Any]) -> dict[str, Any]:
    """Every part's figures, plus the prices as the store sees them (ISO times for people)."""
    result: dict[str, Any] = {name: dict(source.health()) for name, source in sources.items()}
    status = await store.call(Store.price_fetch_status)
    result["prices"] = {key.removesuffix("_ts"): None if ts is None else format_utc(ts) for key, ts in status.items()}
    result["web"] = dict(web)
    return result
