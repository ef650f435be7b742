"""Energy history: bars per hour, day or month of PV, house, grid import/export, battery
charge/discharge, cost and saving, from the stored quarter-hours (``energy_slots``, with their
settlement where there is one); the same as CSV; and a printable monthly report.

Periods are local: ``day`` (24 hourly bars, 23 or 25 on a DST change), ``week`` (ISO week, 7
daily bars), ``month`` (daily bars), ``year`` (monthly bars). Energy in Wh, money in EUR, prices
in EUR/MWh, as everywhere; the page formats them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from device.store import AsyncStore, Store
from device.web.inputs import ActionError
from device.web.model import day_bounds
from device.web.explain import ENERGY_KEYS

PERIODS = ("day", "week", "month", "year")
MONEY_KEYS = ("cost_eur", "saved_vs_no_battery_eur", "saved_vs_self_consumption_eur")
CSV_COLUMNS = ("start", "pv_kwh", "house_kwh", "import_kwh", "export_kwh", "battery_charge_kwh",
               "battery_discharge_kwh", "cost_eur", "saved_vs_no_battery_eur", "saved_vs_self_consumption_eur")


@dataclass(frozen=True)
class Period:
    kind: str
    first: date  # the period's first local day

    @property
    def last(self) -> date:
        """The first local day after the period."""
        if self.kind == "day":
            return self.first + timedelta(days=1)
        if self.kind == "week":
            return self.first + timedelta(days=7)
        if self.kind == "month":
            return _add_months(self.first, 1)
        return self.first.replace(year=self.first.year + 1)

    def step(self, n: int) -> Period:
        """The period ``n`` periods later (earlier when negative)."""
        if self.kind == "day":
            return Period("day", self.first + timedelta(days=n))
        if self.kind == "week":
            return Period("week", self.first + timedelta(days=7 * n))
        if self.kind == "month":
            return Period("month", _add_months(self.first, n))
        return Period("year", self.first.replace(year=self.first.year + n))

    @classmethod
    def containing(cls, kind: str, day: date) -> Period:
        if kind == "day":
            return cls(kind, day)
        if kind == "week":
            return cls(kind, day - timedelta(days=day.weekday()))
        if kind == "month":
            return cls(kind, day.replace(day=1))
        return cls(kind, day.replace(month=1, day=1))


def _add_months(day: date, n: int) -> date:
    months = day.year * 12 + day.month - 1 + n
    return date(months // 12, months % 12 + 1, 1)


def parse_query(query: Mapping[str, str], allowed: Iterable[str], today: date) -> dict[str, Any]:
    """Checked query parameters: ``period`` (day|week|month|year, default month), ``date``
    (YYYY-MM-DD, default today) and ``month`` (YYYY-MM, default this month), each only where
    ``allowed``. Anything else, or a value out of range, is a 400 naming the parameter."""
    allowed = tuple(allowed)
    for name in query:
        if name not in allowed:
            raise ActionError(f"{name}: unknown parameter; allowed: {', '.join(allowed)}", name)
    out: dict[str, Any] = {}
    if "period" in allowed:
        period = query.get("period", "month")
        if period not in PERIODS:
            raise ActionError(f"period: got {period!r}, allowed: {', '.join(PERIODS)}", "period")
        out["period"] = period
    if "date" in allowed:
        out["date"] = _parse_date(query.get("date"), "date", "YYYY-MM-DD", today)
    if "month" in allowed:
        text = query.get("month")
        out["month"] = today.replace(day=1) if text is None else _parse_date(f"{text}-01", "month", "YYYY-MM", today, text)
    return out


def _parse_date(text: str | None, name: str, form: str, today: date, shown: str | None = None) -> date:
    if text is None:
        return today
    try:
        value = date.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or len(text) != 10 or not 2000 <= value.year <= 2100:
        raise ActionError(f"{name}: got {shown if shown is not None else text!r}, allowed: a date {form} "
                          f"from 2000 to 2100", name)
    return value


def _bucket_start(local: datetime, kind: str) -> datetime:
    if kind == "day":
        return local.replace(minute=0, second=0, microsecond=0)
    if kind in ("week", "month"):
        return local.replace(hour=0, minute=0, second=0, microsecond=0)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _empty() -> dict[str, Any]:
    return {**dict.fromkeys(ENERGY_KEYS, 0.0), **dict.fromkeys(MONEY_KEYS), "slots": 0, "settled": 0}


def _add(bucket: dict[str, Any], row: Mapping[str, Any]) -> None:
    for key in ENERGY_KEYS:
        bucket[key] += float(row[key] or 0)
    bucket["slots"] += 1
    if row["cost_eur"] is None:
        return
    actual = float(row["cost_eur"]) - float(row["revenue_eur"] or 0)
    bucket["settled"] += 1
    bucket["cost_eur"] = (bucket["cost_eur"] or 0.0) + actual
    for key, counterfactual in (("saved_vs_no_battery_eur", "cost_no_battery_eur"),
                                ("saved_vs_self_consumption_eur", "cost_self_consumption_eur")):
        if row[counterfactual] is not None:
            bucket[key] = (bucket[key] or 0.0) + float(row[counterfactual]) - actual


def bars(rows: Iterable[Mapping[str, Any]], period: Period, tz: ZoneInfo) -> list[dict[str, Any]]:
    """Every bar of the period in order (empty ones too), each with its local ``start`` (epoch s)."""
    start, end = day_bounds(period.first, tz)[0], day_bounds(period.last, tz)[0]
    buckets: dict[int, dict[str, Any]] = {}  # by epoch: the two 02:00 hours of a DST end differ
    t = start
    while t < end:  # one bucket per local hour / day / month, found by walking the quarter-hours
        key = int(_bucket_start(datetime.fromtimestamp(t, tz), period.kind).timestamp())
        buckets.setdefault(key, {"start": key, **_empty()})
        t += 900 if period.kind == "day" else 3600
    for row in rows:
        key = int(_bucket_start(datetime.fromtimestamp(row["ts"], tz), period.kind).timestamp())
        if key in buckets:
            _add(buckets[key], row)
    return list(buckets.values())


def total(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    out = _empty()
    for item in items:
        for key in (*ENERGY_KEYS, "slots", "settled"):
            out[key] += item[key]
        for key in MONEY_KEYS:
            if item[key] is not None:
                out[key] = (out[key] or 0.0) + item[key]
    return out


async def history(store: AsyncStore, period: Period, tz: ZoneInfo) -> dict[str, Any]:
    start, end = day_bounds(period.first, tz)[0], day_bounds(period.last, tz)[0]
    rows = await store.call(Store.energy_with_money, start, end)
    items = bars(rows, period, tz)
    return {"period": period.kind, "first": period.first.isoformat(), "bars": items, "total": total(items)}


def to_csv(data: Mapping[str, Any], tz: ZoneInfo) -> str:
    """The bars and a ``total`` row; local start times with their offset, kWh and EUR with a dot."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for label, item in [(datetime.fromtimestamp(b["start"], tz).isoformat(), b) for b in data["bars"]] + [
            ("total", data["total"])]:
        writer.writerow([label, *(f"{item[k] / 1000:.3f}" for k in ENERGY_KEYS),
                         *("" if item[k] is None else f"{item[k]:.4f}" for k in MONEY_KEYS)])
    return out.getvalue()


async def monthly_report(store: AsyncStore, month: date, tz: ZoneInfo) -> dict[str, Any]:
    """A month to keep with the bill: daily bars and totals (energy, cost, savings against both
    counterfactuals) and the month's import and export prices (min, energy-weighted mean, max)."""
    period = Period("month", month)
    start, end = day_bounds(period.first, tz)[0], day_bounds(period.last, tz)[0]
    rows = await store.call(Store.energy_with_money, start, end)
    items = bars(rows, period, tz)
    priced = [r for r in rows if r["import_price"] is not None]
    prices: dict[str, Any] = {}
    for side, energy in (("import", "import_wh"), ("export", "export_wh")):
        values = [float(r[f"{side}_price"]) for r in priced if r[f"{side}_price"] is not None]
        weight = sum(float(r[energy] or 0) for r in priced)
        weighted = (sum(float(r[f"{side}_price"] or 0) * float(r[energy] or 0) for r in priced) / weight
                    if weight > 0 else None)
        prices[side] = {"min": min(values, default=None), "max": max(values, default=None),
                        "mean": sum(values) / len(values) if values else None, "weighted": weighted}
    return {"month": month.isoformat()[:7], "bars": items, "total": total(items), "prices": prices}


def chart(items: list[Mapping[str, Any]], keys: tuple[str, ...], width: float = 720, height: float = 200
          ) -> dict[str, Any]:
    """SVG geometry for grouped bars (the page draws it without scripts): per item one group of
    ``keys`` side by side, scaled to the largest magnitude, negative values below the zero line."""
    values = [float(item[k] or 0) for item in items for k in keys]
    high, low = max([*values, 0.0]), min([*values, 0.0])
    span = (high - low) or 1.0
    zero = height * high / span
    group = width / max(len(items), 1)
    bar = group * 0.8 / len(keys)
    rects = []
    for i, item in enumerate(items):
        for j, key in enumerate(keys):
            value = float(item[key] or 0)
            size = abs(value) / span * height
            rects.append({"x": round(i * group + group * 0.1 + j * bar, 2), "y": round(zero - size if value > 0 else zero, 2),
                          "w": round(bar, 2), "h": round(size, 2), "key": key, "i": i, "value": item[key]})
    return {"width": width, "height": height, "zero": round(zero, 2), "rects": rects, "group": group}
