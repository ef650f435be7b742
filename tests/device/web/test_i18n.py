from zoneinfo import ZoneInfo

import pytest

from device.web.i18n import LANGUAGES, TEXT, Locale, pick_language


def test_every_text_exists_in_every_language() -> None:
    missing = [(key, lang) for key, texts in TEXT.items() for lang in LANGUAGES if not texts.get(lang)]
    assert missing == []


@pytest.mark.parametrize("lang, watts, power, eur, money, eur_mwh, price", [
    ("de", 3210.4, "3.210 W", 1234.5, "1.234,50 €", 123.4, "12,3 ct/kWh"),
    ("en", 3210.4, "3,210 W", 1234.5, "€1,234.50", 123.4, "12.3 ct/kWh"),
    ("de", -12_345.0, "-12,3 kW", -0.5, "-0,50 €", -5.0, "-0,5 ct/kWh"),
    ("en", None, "–", -0.5, "-€0.50", None, "–"),
])
def test_numbers_money_and_prices_follow_the_language(
    lang: str, watts: float | None, power: str, eur: float, money: str, eur_mwh: float | None, price: str
) -> None:
    locale = Locale(lang, ZoneInfo("Europe/Berlin"))
    assert locale.power(watts) == power
    assert locale.money(eur) == money
    assert locale.ct_kwh(eur_mwh) == price


def test_times_are_shown_in_the_home_time_zone() -> None:
    locale = Locale("de", ZoneInfo("Europe/Berlin"))
    assert locale.clock(1_719_835_200) == "14:00"  # 2024-07-01T12:00:00Z, summer time
    assert locale.clock(1_704_110_400) == "13:00"  # 2024-01-01T12:00:00Z, winter time


@pytest.mark.parametrize("configured, cookie, accept, expected", [
    ("auto", None, "de-DE,de;q=0.9,en;q=0.8", "de"),
    ("auto", None, "fr-FR,en;q=0.5", "en"),
    ("auto", None, "", "en"),
    ("de", None, "en-GB", "de"),
    ("de", "en", "de", "en"),
    ("auto", "xx", "de", "de"),
])
def test_language_choice(configured: str, cookie: str | None, accept: str, expected: str) -> None:
    assert pick_language(configured, cookie, accept) == expected
