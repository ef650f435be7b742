"""What a saved setting changed and when it takes effect, in the visitor's language: the
Settings page's confirmation ("Saved: reserve 10 % → 20 %. The planner uses it now; …")."""

from __future__ import annotations

from device.config import Config
from device.home.settings import EDITABLE, Override
from device.web.i18n import Locale

_TEXT = {
    "en": {
        "nothing": "Nothing changed.",
        "saved": "Saved: {changes}.",
        "mode_effect": "The planner uses it now; savings count it from the next quarter-hour.",
        "tariff_effect": "The plan uses it now; savings count it from the next settled quarter-hour.",
        "manual": "Manual {action} at {power} started now; it ends {until}, then the battery returns to {mode}.",
        "stopped": "Manual operation ended now; the battery is back in {mode}.",
        "reserve": "reserve",
    },
    "de": {
        "nothing": "Nichts geändert.",
        "saved": "Gespeichert: {changes}.",
        "mode_effect": "Der Planer nutzt es ab sofort; die Ersparnis ab der nächsten Viertelstunde.",
        "tariff_effect": "Der Plan nutzt ihn ab sofort; die Ersparnis ab der nächsten abgerechneten Viertelstunde.",
        "manual": "Manuelles {action} mit {power} läuft ab jetzt; es endet {until}, danach arbeitet die Batterie wieder in {mode}.",
        "stopped": "Manueller Betrieb jetzt beendet; die Batterie arbeitet wieder in {mode}.",
        "reserve": "Reserve",
    },
}
_ACTION = {"en": {"charge": "charge", "discharge": "discharge"}, "de": {"charge": "Laden", "discharge": "Entladen"}}


def _tariff_value(key: str, value: object, L: Locale) -> str:
    if key.endswith("_eur_mwh") and isinstance(value, (int, float)):
        return L.ct_kwh(float(value))
    if key == "export":
        return L.t(f"export_{value}")
    if isinstance(value, (int, float)):
        return L.number(float(value), 1)
    return str(value)


def settings_saved(before: Config, after: Config, L: Locale) -> str:
    """Each changed setting as ``name old → new``, then when it counts."""
    text = _TEXT[L.lang]
    changes = []
    if before.planner.mode != after.planner.mode:
        changes.append(f'{L.t("mode")} {L.t("mode_" + before.planner.mode)} → {L.t("mode_" + after.planner.mode)}')
    if before.battery.reserve_pct != after.battery.reserve_pct:
        changes.append(f'{text["reserve"]} {L.number(before.battery.reserve_pct)} % → {L.number(after.battery.reserve_pct)} %')
    mode_changed = bool(changes)
    for key in EDITABLE["tariff"]:
        old, new = getattr(before.tariff, key), getattr(after.tariff, key)
        if old != new:
            changes.append(f"{L.t(key)} {_tariff_value(key, old, L)} → {_tariff_value(key, new, L)}")
    if not changes:
        return text["nothing"]
    effect = text["mode_effect"] if mode_changed else text["tariff_effect"]
    return f'{text["saved"].format(changes=", ".join(changes))} {effect}'


def manual_started(override: Override, mode: str, L: Locale) -> str:
    """``mode``: the standing mode the battery returns to."""
    return _TEXT[L.lang]["manual"].format(
        action=_ACTION[L.lang][override.action], power=L.power(override.power_w), until=L.moment(override.until),
        mode=L.t("mode_" + mode))


def manual_stopped(mode: str, L: Locale) -> str:
    return _TEXT[L.lang]["stopped"].format(mode=L.t("mode_" + mode))
