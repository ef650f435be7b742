"""German and English text, and number, money and time formatting for the home's locale.

Kept as plain dictionaries: two languages, a few dozen strings, no gettext build step. A key
missing in one language is a test failure (``tests/device/web/test_i18n.py``), never a blank.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

LANGUAGES = ("de", "en")

TEXT: dict[str, dict[str, str]] = {
    "title": {"de": "Hausbatterie", "en": "Home battery"},
    "nav_overview": {"de": "Übersicht", "en": "Overview"},
    "nav_prices": {"de": "Preise & Plan", "en": "Prices & plan"},
    "nav_savings": {"de": "Ersparnis", "en": "Savings"},
    "nav_settings": {"de": "Einstellungen", "en": "Settings"},
    "nav_installer": {"de": "Installateur", "en": "Installer"},
    "login": {"de": "Anmelden", "en": "Log in"},
    "logout": {"de": "Abmelden", "en": "Log out"},
    "account": {"de": "Konto", "en": "Account"},
    "password": {"de": "Passwort", "en": "Password"},
    "role_homeowner": {"de": "Hausbesitzer", "en": "Homeowner"},
    "role_installer": {"de": "Installateur", "en": "Installer"},
    "login_failed": {"de": "Konto oder Passwort falsch.", "en": "Wrong account or password."},
    "login_limited": {
        "de": "Zu viele Fehlversuche. Bitte in {s} s erneut versuchen.",
        "en": "Too many failed attempts. Try again in {s} s.",
    },
    "change_password": {"de": "Passwort ändern", "en": "Change password"},
    "must_change": {
        "de": "Bitte ersetzen Sie das voreingestellte Passwort, bevor Sie fortfahren.",
        "en": "Please replace the default password before you continue.",
    },
    "old_password": {"de": "Bisheriges Passwort", "en": "Current password"},
    "new_password": {"de": "Neues Passwort (mind. 8 Zeichen)", "en": "New password (at least 8 characters)"},
    "repeat_password": {"de": "Neues Passwort wiederholen", "en": "Repeat new password"},
    "save": {"de": "Speichern", "en": "Save"},
    "saved": {"de": "Gespeichert.", "en": "Saved."},
    "pv": {"de": "Solar", "en": "Solar"},
    "house": {"de": "Haus", "en": "House"},
    "battery": {"de": "Batterie", "en": "Battery"},
    "grid": {"de": "Netz", "en": "Grid"},
    "charging": {"de": "lädt", "en": "charging"},
    "discharging": {"de": "entlädt", "en": "discharging"},
    "importing": {"de": "Bezug", "en": "importing"},
    "exporting": {"de": "Einspeisung", "en": "exporting"},
    "idle": {"de": "Ruhe", "en": "idle"},
    "soc": {"de": "Ladestand", "en": "Charge level"},
    "mode": {"de": "Betriebsart", "en": "Mode"},
    "mode_auto": {"de": "Automatisch (nach Plan)", "en": "Automatic (follow plan)"},
    "mode_self_consumption": {"de": "Eigenverbrauch", "en": "Self-consumption"},
    "mode_hold": {"de": "Ladestand halten", "en": "Hold charge"},
    "mode_charge": {"de": "Manuell laden", "en": "Manual charge"},
    "mode_discharge": {"de": "Manuell entladen", "en": "Manual discharge"},
    "online": {"de": "verbunden", "en": "online"},
    "offline": {"de": "keine Verbindung", "en": "offline"},
    "unknown": {"de": "unbekannt", "en": "unknown"},
    "data_age": {"de": "Datenalter", "en": "Data age"},
    "no_data": {"de": "Noch keine Messwerte.", "en": "No readings yet."},
    "today": {"de": "Heute", "en": "Today"},
    "tomorrow": {"de": "Morgen", "en": "Tomorrow"},
    "month": {"de": "Dieser Monat", "en": "This month"},
    "year": {"de": "Dieses Jahr", "en": "This year"},
    "price_known": {"de": "Börsenpreis", "en": "Market price"},
    "price_forecast": {"de": "Prognose", "en": "Forecast"},
    "prices_late": {
        "de": "Die Preise für morgen sind noch nicht veröffentlicht (verspätet). Der Plan nutzt bis dahin die Prognose.",
        "en": "Tomorrow's prices have not been published yet (late). Until then the plan uses the forecast.",
    },
    "prices_pending": {
        "de": "Die Preise für morgen erscheinen gegen 13 Uhr.",
        "en": "Tomorrow's prices are published around 1 pm.",
    },
    "no_prices": {"de": "Keine Preise vorhanden.", "en": "No prices available."},
    "plan": {"de": "Plan", "en": "Plan"},
    "no_plan": {"de": "Noch kein Plan.", "en": "No plan yet."},
    "planned_power": {"de": "Geplante Batterieleistung", "en": "Planned battery power"},
    "planned_soc": {"de": "Geplanter Ladestand", "en": "Planned charge level"},
    "time": {"de": "Zeit", "en": "Time"},
    "price": {"de": "Preis", "en": "Price"},
    "cost": {"de": "Kosten", "en": "Cost"},
    "saved_vs_none": {"de": "Ersparnis gegenüber ohne Batterie", "en": "Saved vs. no battery"},
    "saved_vs_self": {"de": "Ersparnis gegenüber reinem Eigenverbrauch", "en": "Saved vs. self-consumption only"},
    "cost_actual": {"de": "Tatsächliche Stromkosten", "en": "Actual electricity cost"},
    "no_savings": {"de": "Noch keine Abrechnung.", "en": "Nothing settled yet."},
    "reserve": {"de": "Reserve (%)", "en": "Reserve (%)"},
    "manual": {"de": "Manuell bis zu einem Zeitpunkt", "en": "Manual until a set time"},
    "action": {"de": "Aktion", "en": "Action"},
    "power_w": {"de": "Leistung (W)", "en": "Power (W)"},
    "until": {"de": "Bis (Datum und Uhrzeit)", "en": "Until (date and time)"},
    "start": {"de": "Starten", "en": "Start"},
    "stop_manual": {"de": "Manuellen Betrieb beenden", "en": "End manual operation"},
    "manual_active": {"de": "Manuell aktiv bis", "en": "Manual active until"},
    "tariff": {"de": "Tarif", "en": "Tariff"},
    "tariff_note": {
        "de": "Beträge netto in ct/kWh; die MwSt. kommt dazu.",
        "en": "Amounts net in ct/kWh; VAT is added on top.",
    },
    "markup_eur_mwh": {"de": "Aufschlag des Anbieters", "en": "Supplier markup"},
    "grid_fee_eur_mwh": {"de": "Netzentgelt", "en": "Grid fee"},
    "levies_eur_mwh": {"de": "Umlagen und Abgaben", "en": "Levies"},
    "electricity_tax_eur_mwh": {"de": "Stromsteuer", "en": "Electricity tax"},
    "vat_pct": {"de": "MwSt. (%)", "en": "VAT (%)"},
    "export": {"de": "Einspeisung vergütet", "en": "Export paid"},
    "export_fixed": {"de": "fest", "en": "fixed rate"},
    "export_spot": {"de": "nach Börsenpreis", "en": "at spot price"},
    "feed_in_eur_mwh": {"de": "Einspeisevergütung (fest)", "en": "Feed-in rate (fixed)"},
    "export_fee_eur_mwh": {"de": "Abzug bei Börsen-Einspeisung", "en": "Fee on spot export"},
    "mode_peak_shaving": {"de": "Lastspitzen kappen", "en": "Peak shaving"},
    "mode_manual": {"de": "Manuell", "en": "Manual"},
    "mode_off": {"de": "Aus (Wechselrichter regelt)", "en": "Off (inverter decides)"},
    "table": {"de": "Tabelle", "en": "Table"},
    "state": {"de": "Zustand Wechselrichter", "en": "Inverter state"},
    "read_only": {"de": "Nur Ansicht. Zum Steuern bitte anmelden.", "en": "View only. Log in to control."},
    "registers": {"de": "Register", "en": "Registers"},
    "name": {"de": "Name", "en": "Name"},
    "address": {"de": "Adresse", "en": "Address"},
    "unit_id": {"de": "Geräte-ID (Unit)", "en": "Unit id"},
    "value": {"de": "Wert", "en": "Value"},
    "raw": {"de": "Rohwert", "en": "Raw"},
    "unit": {"de": "Einheit", "en": "Unit"},
    "access": {"de": "Zugriff", "en": "Access"},
    "read": {"de": "Lesen", "en": "Read"},
    "write": {"de": "Schreiben", "en": "Write"},
    "confirm_write": {
        "de": "Wirklich {value} in Register {name} schreiben?",
        "en": "Really write {value} to register {name}?",
    },
    "confirm": {"de": "Bestätigen", "en": "Confirm"},
    "cancel": {"de": "Abbrechen", "en": "Cancel"},
    "result": {"de": "Ergebnis", "en": "Result"},
    "health": {"de": "Zustand", "en": "Health"},
    "events": {"de": "Letzte Ereignisse", "en": "Recent events"},
    "no_events": {"de": "Keine Ereignisse.", "en": "No events."},
    "yes": {"de": "ja", "en": "yes"},
    "no": {"de": "nein", "en": "no"},
    "none": {"de": "keine", "en": "none"},
    "age_ago": {"de": "vor {age}", "en": "{age} ago"},
    "age_in": {"de": "in {age}", "en": "in {age}"},
    "raw_json": {"de": "Alle Werte (JSON)", "en": "All figures (JSON)"},
    "edi_files": {"de": "MSCONS-Dateien (Marktkommunikation)", "en": "MSCONS files (market communication)"},
    "file": {"de": "Datei", "en": "File"},
    "created": {"de": "Erstellt", "en": "Created"},
    "upload": {"de": "Upload", "en": "Upload"},
    "acknowledgement": {"de": "Quittung", "en": "Acknowledgement"},
    "uploaded": {"de": "hochgeladen", "en": "uploaded"},
    "waiting_upload": {"de": "wartet auf Upload", "en": "waiting for upload"},
    "no_ack_yet": {"de": "keine erhalten", "en": "none received"},
    "ack_accepted": {"de": "angenommen", "en": "accepted"},
    "ack_rejected": {"de": "abgelehnt", "en": "rejected"},
    "meter_values_arrived": {"de": "Die Werte Ihres Zählers für den {day} sind angekommen: sie weichen um {pct} % von unseren ab.",
                             "en": "Your meter's values for {day} arrived: they differ from ours by {pct} %."},
    "meter_values_flagged": {"de": "Mehr als die übliche Messtoleranz – fragen Sie Ihren Installateur.",
                             "en": "More than the usual metering tolerance – ask your installer."},
    "no_edi_files": {"de": "Noch keine Datei (Marktidentitäten im Abschnitt market: eintragen).",
                     "en": "No file yet (set the market identities, section market:)."},
    "level": {"de": "Stufe", "en": "Level"},
    "message": {"de": "Meldung", "en": "Message"},
    "forbidden": {"de": "Nur für Installateure.", "en": "Installers only."},
    "language": {"de": "Sprache", "en": "Language"},
    "error": {"de": "Fehler", "en": "Error"},
    "price_now": {"de": "Strompreis jetzt", "en": "Price now"},
    "price_range": {"de": "heute {low} bis {high}", "en": "today {low} to {high}"},
    "doing_now": {"de": "Was die Batterie gerade tut", "en": "What the battery is doing"},
    "energy_today": {"de": "Energie heute", "en": "Energy today"},
    "grid_import": {"de": "Netzbezug", "en": "Grid import"},
    "grid_export": {"de": "Einspeisung", "en": "Grid export"},
    "battery_in": {"de": "Batterie geladen", "en": "Battery charged"},
    "battery_out": {"de": "Batterie entladen", "en": "Battery discharged"},
    "saved_today": {"de": "Heute gespart", "en": "Saved today"},
    "community": {"de": "Energiegemeinschaft", "en": "Energy community"},
    "community_today": {"de": "Heute", "en": "Today"},
    "community_month": {"de": "Dieser Monat", "en": "This month"},
    "community_sold": {"de": "{kwh} kWh an {n} Nachbarn verkauft, {eur} erhalten",
                       "en": "sold {kwh} kWh to {n} neighbours, received {eur}"},
    "community_bought": {"de": "{kwh} kWh von {n} Nachbarn gekauft, {eur} bezahlt ({price} je kWh)",
                         "en": "bought {kwh} kWh from {n} neighbours, paid {eur} ({price} per kWh)"},
    "community_saving": {"de": "{eur} besser als mit dem Netz (Einspeisung und Bezug)",
                         "en": "{eur} better than with the grid (feed-in and import)"},
    "community_none": {"de": "noch keine Geschäfte", "en": "no trades yet"},
    "nav_history": {"de": "Verlauf", "en": "History"},
    "period": {"de": "Zeitraum", "en": "Period"},
    "period_day": {"de": "Tag", "en": "Day"},
    "period_week": {"de": "Woche", "en": "Week"},
    "period_month": {"de": "Monat", "en": "Month"},
    "period_year": {"de": "Jahr", "en": "Year"},
    "earlier": {"de": "früher", "en": "earlier"},
    "later": {"de": "später", "en": "later"},
    "no_history": {"de": "Für diesen Zeitraum sind keine Messwerte gespeichert.", "en": "No measurements stored for this period."},
    "energy_chart": {"de": "Energie", "en": "Energy"},
    "money_chart": {"de": "Kosten und Ersparnis", "en": "Cost and saving"},
    "h_pv_wh": {"de": "Solar", "en": "Solar"},
    "h_load_wh": {"de": "Haus", "en": "House"},
    "h_import_wh": {"de": "Netzbezug", "en": "Grid import"},
    "h_export_wh": {"de": "Einspeisung", "en": "Grid export"},
    "h_charge_wh": {"de": "Batterie geladen", "en": "Battery charged"},
    "h_discharge_wh": {"de": "Batterie entladen", "en": "Battery discharged"},
    "h_cost_eur": {"de": "Stromkosten", "en": "Cost"},
    "h_saved_vs_no_battery_eur": {"de": "Ersparnis", "en": "Saved"},
    "total": {"de": "Summe", "en": "Total"},
    "download_csv": {"de": "Als CSV herunterladen", "en": "Download as CSV"},
    "monthly_report": {"de": "Monatsbericht", "en": "Monthly report"},
    "print_hint": {"de": "Zum Aufbewahren mit der Stromrechnung: im Browser drucken (Strg+P).",
                   "en": "To keep with your electricity bill: print it from the browser (Ctrl+P)."},
    "month_prices": {"de": "Preise des Monats (brutto)", "en": "The month's prices (gross)"},
    "lowest": {"de": "niedrigster", "en": "lowest"},
    "average": {"de": "Mittel", "en": "average"},
    "weighted": {"de": "Mittel nach Menge", "en": "average by energy"},
    "highest": {"de": "höchster", "en": "highest"},
    "per_day": {"de": "Pro Tag", "en": "Per day"},
    "price_caption": {
        "de": "ct/kWh brutto: was Sie für Bezug zahlen und für Einspeisung erhalten; dünn: Börsenpreis",
        "en": "ct/kWh gross: what you pay for import and get for export; thin: spot price",
    },
    "price_you_pay": {"de": "Bezugspreis", "en": "You pay"},
    "price_spot": {"de": "Börse", "en": "Spot"},
    "manual_until": {"de": "{action} bis {until}", "en": "{action} until {until}"},
    "standing_mode": {"de": "Danach und sonst", "en": "Afterwards and otherwise"},
    "power_limit": {
        "de": "Höchstens {charge} beim Laden und {discharge} beim Entladen (Wechselrichter und Batterie).",
        "en": "At most {charge} when charging and {discharge} when discharging (inverter and battery).",
    },
}


@dataclass(frozen=True)
class Locale:
    """Text and formats for one request: language plus the home's time zone."""

    lang: str
    tz: ZoneInfo

    def t(self, key: str, **values: object) -> str:
        text = TEXT[key][self.lang]
        return text.format(**values) if values else text

    def number(self, value: float | None, digits: int = 0) -> str:
        if value is None:
            return "–"
        text = f"{value:,.{digits}f}"
        if text.lstrip("-").strip("0.,") == "":  # -0.04 is "0.0", never "-0.0"
            text = text.lstrip("-")
        if self.lang == "de":  # the same as the browser's Intl.NumberFormat, so live updates match
            text = text.replace(",", "_").replace(".", ",").replace("_", ".")
        return text

    def power(self, watts: float | None) -> str:
        """Watts below 10 kW, kW with one decimal above: what a homeowner reads at a glance."""
        if watts is None:
            return "–"
        if abs(watts) >= 10_000:
            return f"{self.number(watts / 1000, 1)} kW"
        return f"{self.number(watts)} W"

    def money(self, eur: float | None) -> str:
        if eur is None:
            return "–"
        amount = self.number(eur, 2)
        return f"{amount} €" if self.lang == "de" else f"€{amount}".replace("€-", "-€")

    def kwh(self, wh: float | None) -> str:
        return "–" if wh is None else f"{self.number(wh / 1000, 1)} kWh"

    def ct_kwh(self, eur_mwh: float | None) -> str:
        return "–" if eur_mwh is None else f"{self.number(eur_mwh / 10, 1)} ct/kWh"

    def local(self, epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, self.tz)

    def clock(self, epoch: float) -> str:
        return self.local(epoch).strftime("%H:%M")

    def moment(self, epoch: float) -> str:
        """Date and 24-hour time without seconds: "30.11. 21:34" / "30 Nov 21:34"."""
        return self.local(epoch).strftime("%d.%m. %H:%M" if self.lang == "de" else "%d %b %H:%M")

    def day(self, iso_day: str) -> str:
        """A calendar day given as YYYY-MM-DD: "29.03.2026" / "2026-03-29"."""
        return date.fromisoformat(iso_day).strftime("%d.%m.%Y" if self.lang == "de" else "%Y-%m-%d")

    def datetime(self, epoch: float) -> str:
        fmt = "%d.%m.%Y %H:%M:%S" if self.lang == "de" else "%Y-%m-%d %H:%M:%S"
        return self.local(epoch).strftime(fmt)


def pick_language(configured: str, cookie: str | None, accept: str) -> str:
    """Cookie (the user's choice) beats configuration beats the browser's Accept-Language."""
    if cookie in LANGUAGES:
        return cookie
    if configured in LANGUAGES:
        return configured
    for part in accept.split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "en"
