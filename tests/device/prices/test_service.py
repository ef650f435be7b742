from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from device.config import ConfigError, PricesSettings
from device.prices.days import day_bounds
from device.prices.entsoe_source import EntsoeSource
from device.prices.payload import build_prices_payload, prices_payload
from device.prices.service import PriceService
from device.store import AsyncStore, Store
from tests.device.prices.entsoe_api import Api

BRUSSELS = ZoneInfo("Europe/Brussels")


class Clock:
    def __init__(self, when: datetime) -> None:
        self.t = when.timestamp()

    def __call__(self) -> float:
        return self.t

    def set(self, when: datetime) -> None:
        self.t = when.timestamp()


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=BRUSSELS)


@pytest.fixture
async def store(tmp_path: Path):
    s = AsyncStore(tmp_path / "nattery.db")
    await s.open()
    yield s
    await s.close()


def service(store: AsyncStore, clock: Clock, zone: str = "DE_LU", **kw: object) -> tuple[PriceService, list[int]]:
    updates: list[int] = []

    async def on_update() -> None:
        updates.append(1)

    settings = PricesSettings(zone=zone, entsoe_token="t0ken", retry_min_s=60, retry_max_s=600, **kw)  # type: ignore[arg-type]
    src = EntsoeSource("t0ken", timeout_s=0.5, attempts=2, backoff_s=0.01, backoff_max_s=0.02)
    return PriceService(settings, store, src, clock=clock, on_update=on_update), updates


async def stored(store: AsyncStore, zone: str, day: date) -> list[dict]:
    start, end = day_bounds(day)
    return await store.call(Store.prices_for, zone, int(start.timestamp()), int(end.timestamp()))


async def test_tomorrow_is_retried_until_complete_and_flagged_stale_meanwhile(entsoe_api: Api, store: AsyncStore) -> None:
    today, tomorrow = date(2025, 10, 14), date(2025, 10, 15)
    entsoe_api.partial[tomorrow] = 48
    clock = Clock(at(today, 13, 0))
    svc, updates = service(store, clock)
    delay = await svc.run_once()
    assert svc.status.today == "complete" and svc.status.tomorrow == "missing"  # partial: not stored
    assert not svc.status.stale and 30 <= delay <= 60  # retry soon (retry_min_s, jittered)
    assert await stored(store, "DE_LU", tomorrow) == []
    clock.set(at(today, 14, 5))
    delay2 = await svc.run_once()
    assert svc.status.stale and svc.status.attempts == 2 and delay2 > delay  # backoff grows
    entsoe_api.partial.clear()
    clock.set(at(today, 14, 20))
    await svc.run_once()
    assert svc.status.tomorrow == "complete" and not svc.status.stale
    rows = await stored(store, "DE_LU", tomorrow)
    assert len(rows) == 96 and {r["resolution_s"] for r in rows} == {900}
    assert updates  # the app re-forecasts after new data
    # nothing due until the next morning's EXAA
    assert await svc.run_once() == pytest.approx(at(tomorrow, 10, 20).timestamp() - clock(), abs=1)


async def test_before_fetch_time_nothing_for_tomorrow_is_requested(entsoe_api: Api, store: AsyncStore) -> None:
    clock = Clock(at(date(2025, 10, 14), 9, 0))
    svc, _ = service(store, clock)
    delay = await svc.run_once()
    assert delay == pytest.approx(80 * 60, abs=1)  # until 10:20
    # only today's prices were asked for (entsoe-py pads a day either side of the request)
    assert entsoe_api.requests and all(r["periodEnd"] <= "202510152200" for r in entsoe_api.requests)


async def test_inputs_are_fetched_after_exaa_time_and_a_late_exaa_is_asked_again(
    entsoe_api: Api, store: AsyncStore
) -> None:
    entsoe_api.exaa_until = date(2025, 10, 14)  # tomorrow's EXAA not out yet
    clock = Clock(at(date(2025, 10, 14), 10, 30))
    svc, _ = service(store, clock)
    await svc.run_once()
    start, end = day_bounds(date(2025, 10, 15))
    series = await store.call(Store.market_series, "DE_LU", int(start.timestamp()), int(end.timestamp()))
    assert set(series) == {"load", "solar", "wind_onshore", "wind_offshore"}
    entsoe_api.exaa_until = date(2100, 1, 1)
    clock.set(at(date(2025, 10, 14), 10, 35))
    await svc.run_once()
    series = await store.call(Store.market_series, "DE_LU", int(start.timestamp()), int(end.timestamp()))
    assert set(series) == {"load", "solar", "wind_onshore", "wind_offshore", "exaa"}
    assert all(len(v) == 24 for v in series.values())  # hourly means of the quarter-hours


@pytest.mark.parametrize(("day", "slots"), [(date(2025, 10, 26), 100), (date(2026, 3, 29), 92),
                                             (date(2024, 10, 27), 25), (date(2024, 3, 31), 23)])
async def test_clock_change_days_are_stored_complete(entsoe_api: Api, store: AsyncStore, day: date, slots: int) -> None:
    svc, _ = service(store, Clock(at(day, 12)))
    assert (await svc.refresh_day(day)).complete
    assert len(await stored(store, "DE_LU", day)) == slots
    assert await svc.stored_state(day) == "complete"


async def test_zone_change_fetches_and_keeps_zones_apart(entsoe_api: Api, store: AsyncStore) -> None:
    day = date(2025, 10, 14)
    de, _ = service(store, Clock(at(day, 13)), zone="DE_LU")
    await de.run_once()
    nl, _ = service(store, Clock(at(day, 13)), zone="NL")
    assert await nl.stored_state(day) == "missing"  # DE_LU rows do not count for NL
    await nl.run_once()
    de_rows, nl_rows = await stored(store, "DE_LU", day), await stored(store, "NL", day)
    assert len(de_rows) == len(nl_rows) == 96
    assert [r["price_eur_mwh"] for r in de_rows] != [r["price_eur_mwh"] for r in nl_rows]
    payload = await prices_payload(store, nl.status, at(day, 13).timestamp())
    assert payload["zone"] == "NL" and len(payload["prices"]) == 192


async def test_backfill_fills_gaps_in_month_chunks(entsoe_api: Api, store: AsyncStore) -> None:
    svc, _ = service(store, Clock(at(date(2025, 10, 14), 8)))
    assert await svc.backfill(40) == 41
    assert len(await stored(store, "DE_LU", date(2025, 9, 20))) == 24  # hourly before 2025-10-01
    before = len(entsoe_api.requests)
    assert await svc.backfill(40) == 0 and len(entsoe_api.requests) == before  # nothing missing


async def test_outage_is_a_status_not_a_crash(entsoe_api: Api, store: AsyncStore) -> None:
    entsoe_api.failures.extend(["503"] * 10)
    svc, _ = service(store, Clock(at(date(2025, 10, 14), 13)))
    delay = await svc.run_once()
    assert svc.status.last_error and "503" in svc.status.last_error and delay > 0
    health = svc.health()
    assert health["requests_failed"] == 2 and health["last_error"] == svc.status.last_error
    assert "t0ken" not in str(health)


def test_bad_time_of_day_names_the_key(store: AsyncStore) -> None:
    with pytest.raises(ConfigError, match=r"prices.fetch_after: got '25:00'"):
        PriceService(PricesSettings(fetch_after="25:00"), store, EntsoeSource("x"))


def test_payload_splits_known_prices_and_forecast() -> None:
    from device.prices.service import PriceStatus

    status = PriceStatus(zone="DE_LU", source="entsoe", today="complete", tomorrow="missing", stale=True)
    prices = [{"ts": 1760392800 + 900 * k, "price_eur_mwh": 80.0 + k, "resolution_s": 900} for k in range(4)]
    forecast = [(1760392800 + 900 * k, 70.0) for k in range(8)]
    p = build_prices_payload(status, prices, forecast, 1760392800.0, 1760390000)
    assert p["known_until"] == "2025-10-13T23:00:00.000Z" and p["stale"] is True
    assert p["forecast"]["slots"][0]["ts"] == "2025-10-13T23:00:00.000Z"
    assert len(p["forecast"]["slots"]) == 4 and p["prices"][0] == {
        "ts": "2025-10-13T22:00:00.000Z", "eur_mwh": 80.0, "resolution_s": 900}


def test_retry_cap_below_the_first_retry_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"prices.retry_max_s: 5.0; allowed: at least prices.retry_min_s \(10.0\)"):
        PriceService(PricesSettings(retry_min_s=10.0, retry_max_s=5.0), AsyncStore(tmp_path / "p.db"), EntsoeSource("x"))
