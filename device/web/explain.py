"""The overview's answer to "what is it doing and why": the price now, the plan's current action
with a one-line reason, and today's energy and saving so far.

The reason compares the current slot with the slot the plan prepares for: charging from the grid
at 12 ct "for tomorrow morning at 38 ct" names the next slot in which the plan discharges; holding
the charge names it too. Times of day are words ("this evening", "tomorrow morning"), prices are
what the homeowner pays (the tariff applied to the spot price, as the planner sees them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from device.web.i18n import Locale

SLOT_S = 900
ENERGY_KEYS = ("pv_wh", "load_wh", "import_wh", "export_wh", "charge_wh", "discharge_wh")
_DAY_PARTS = ((5, "morning"), (11, "midday"), (14, "afternoon"), (18, "evening"), (23, "night"))
_WHEN = {
    "en": {"today": {"morning": "this morning", "midday": "midday", "afternoon": "this afternoon",
                     "evening": "this evening", "night": "tonight"},
           "tomorrow": {"morning": "tomorrow morning", "midday": "tomorrow midday", "afternoon": "tomorrow afternoon",
                        "evening": "tomorrow evening", "night": "tomorrow night"}},
    "de": {"today": {"morning": "heute Morgen", "midday": "heute Mittag", "afternoon": "heute Nachmittag",
                     "evening": "heute Abend", "night": "heute Nacht"},
           "tomorrow": {"morning": "morgen früh", "midday": "morgen Mittag", "afternoon": "morgen Nachmittag",
                        "evening": "morgen Abend", "night": "morgen Nacht"}},
}
_SENTENCES = {
    "en": {
        "charge_grid": "Charging from the grid at {price} for {when} at {later}",
        "charge_pv": "Charging from the solar surplus for {when} at {later}",
        "charge": "Charging from the grid at {price}, the cheapest hours ahead",
        "hold": "Holding {soc} % for the peak {when} at {later}",
        "hold_plain": "Holding {soc} %: no dearer hour is planned ahead",
        "discharge": "Supplying the house from the battery while the price is high ({price})",
        "self_consumption": "Self-consumption: solar surplus into the battery, the battery covers the house",
        "none": "The inverter runs on its own rules (the mode is off)",
        "manual_charge": "Manual charge until {until}, as you set it",
        "manual_discharge": "Manual discharge until {until}, as you set it",
        "no_plan": "No plan yet: the battery runs in self-consumption",
    },
    "de": {
        "charge_grid": "Lädt aus dem Netz zu {price} für {when} zu {later}",
        "charge_pv": "Lädt mit Solarüberschuss für {when} zu {later}",
        "charge": "Lädt aus dem Netz zu {price}, den günstigsten Stunden voraus",
        "hold": "Hält {soc} % für die Spitze {when} zu {later}",
        "hold_plain": "Hält {soc} %: keine teurere Stunde ist geplant",
        "discharge": "Versorgt das Haus aus der Batterie, solange der Preis hoch ist ({price})",
        "self_consumption": "Eigenverbrauch: Solarüberschuss in die Batterie, die Batterie versorgt das Haus",
        "none": "Der Wechselrichter regelt selbst (Betriebsart aus)",
        "manual_charge": "Manuelles Laden bis {until}, wie von Ihnen eingestellt",
        "manual_discharge": "Manuelles Entladen bis {until}, wie von Ihnen eingestellt",
        "no_plan": "Noch kein Plan: die Batterie arbeitet im Eigenverbrauch",
    },
}


def when(ts: float, now: float, tz: ZoneInfo, lang: str) -> str:
    """A slot's time as words relative to ``now``: "this evening", "tomorrow morning", or a date."""
    local, today = datetime.fromtimestamp(ts, tz), datetime.fromtimestamp(now, tz).date()
    part = "night"
    for hour, name in _DAY_PARTS:
        if local.hour >= hour:
            part = name
    days = (local.date() - today).days
    if local.hour < 5:  # the small hours belong to the night before
        days, part = days - 1, "night"
    if days in (0, 1):
        return _WHEN[lang]["today" if days == 0 else "tomorrow"][part]
    return local.strftime("%d.%m. %H:%M" if lang == "de" else "%d %b %H:%M")


def current_action(slots: Sequence[Mapping[str, Any]], now: float) -> dict[str, Any] | None:
    """The plan's slot at ``now`` and the slot it prepares for (the next discharge), as facts."""
    index = next((i for i, s in enumerate(slots) if s["ts"] <= now < s["ts"] + SLOT_S), None)
    if index is None:
        return None
    slot = slots[index]
    target = next((s for s in slots[index + 1:] if float(s.get("discharge_w") or 0) > 0), None)
    return {
        "action": slot.get("action"),
        "from_grid": float(slot.get("import_w") or 0) > float(slot.get("load_w") or 0),
        "price": slot.get("import_price"),
        "soc_pct": slot.get("soc_pct"),
        "target_ts": None if target is None else target["ts"],
        "target_price": None if target is None else target.get("import_price"),
    }


def reason(facts: Mapping[str, Any] | None, override: Any, now: float, L: Locale) -> str:
    """The one-line reason in the visitor's language."""
    text = _SENTENCES[L.lang]
    if override is not None:
        return text[f"manual_{override.action}"].format(until=L.clock(override.until))
    if facts is None:
        return text["no_plan"]
    action, price = facts["action"], L.ct_kwh(facts["price"])
    has_target = facts["target_ts"] is not None
    later = L.ct_kwh(facts["target_price"])
    target_when = when(facts["target_ts"], now, L.tz, L.lang) if has_target else ""
    if action == "charge":
        if not has_target:
            return text["charge"].format(price=price)
        return text["charge_grid" if facts["from_grid"] else "charge_pv"].format(price=price, when=target_when, later=later)
    if action == "hold":
        soc = L.number(facts["soc_pct"])
        if not has_target:
            return text["hold_plain"].format(soc=soc)
        return text["hold"].format(soc=soc, when=target_when, later=later)
    if action == "discharge":
        return text["discharge"].format(price=price)
    if action == "self_consumption":
        return text["self_consumption"]
    return text["none"]


def price_position(prices: Sequence[float], current: float | None) -> dict[str, Any] | None:
    """Where the current price sits in today's range: min, max and 0–100 %."""
    if current is None or not prices:
        return None
    low, high = min(prices), max(prices)
    pct = 50.0 if high == low else (current - low) / (high - low) * 100
    return {"now": current, "min": low, "max": high, "pct": round(pct)}


def energy_totals(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Sums of the energy columns (Wh) over slots."""
    return {key: float(sum(r[key] or 0 for r in rows)) for key in ENERGY_KEYS}
