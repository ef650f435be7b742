from __future__ import annotations

import itertools
import logging
from datetime import date

import pandas as pd
import pytest
from structlog.testing import capture_logs

from device.prices.days import day_bounds, select_day
from device.prices.entsoe_source import EntsoeSource, FetchError
from device.prices.ratelimit import RateLimiter
from tests.device.prices.entsoe_api import Api, price

TOKEN = "0123abcd-secret-token"


def source(**kw: object) -> EntsoeSource:
    args: dict = {"timeout_s": 0.5, "attempts": 3, "backoff_s": 0.01, "backoff_max_s": 0.05}
    args.update(kw)
    return EntsoeSource(TOKEN, **args)


async def fetch_day(src: EntsoeSource, day: date, zone: str = "DE_LU"):
    start, end = day_bounds(day)
    return select_day(await src.day_ahead(zone, start, end), day)


@pytest.mark.parametrize(
    ("day", "resolution", "slots"),
    [
        (date(2025, 10, 14), 900, 96),
        (date(2025, 10, 26), 900, 100),  # autumn clock change
        (date(2026, 3, 29), 900, 92),  # spring clock change
        (date(2024, 6, 12), 3600, 24),
        (date(2024, 3, 31), 3600, 23),
        (date(2024, 10, 27), 3600, 25),
    ],
)
async def test_complete_days_in_both_resolutions_and_across_clock_changes(
    entsoe_api: Api, day: date, resolution: int, slots: int
) -> None:
    got = await fetch_day(source(), day)
    assert got.complete and got.resolution_s == resolution and len(got.slots) == slots
    # A03 compression: positions left out must come back as the repeated value
    for ts, value in got.slots:
        assert value == price("DE_LU", pd.Timestamp(ts, unit="s", tz="UTC").to_pydatetime())
    assert [b - a for (a, _), (b, _) in itertools.pairwise(got.slots)] == [resolution] * (slots - 1)


async def test_partial_day_is_not_complete(entsoe_api: Api) -> None:
    entsoe_api.partial[date(2025, 10, 15)] = 60
    got = await fetch_day(source(), date(2025, 10, 15))
    assert got.state == "partial" and len(got.slots) == 60 and got.expected == 96


async def test_unpublished_day_is_missing_not_an_error(entsoe_api: Api) -> None:
    entsoe_api.published_until = date(2025, 10, 14)
    got = await fetch_day(source(), date(2025, 10, 16))
    assert got.state == "missing"


@pytest.mark.parametrize("failures", [["429"], ["503"], ["429", "503"], ["hang"]])
async def test_transient_failures_are_retried(entsoe_api: Api, failures: list[str]) -> None:
    entsoe_api.failures.extend(failures)
    entsoe_api.hang_s = 5
    with capture_logs() as logs:
        got = await fetch_day(source(), date(2025, 10, 14))
    assert got.complete
    retries = [e for e in logs if e["event"] == "entsoe_retry"]
    assert len(retries) == len(failures)
    assert all(TOKEN not in str(e) for e in logs)


async def test_gives_up_after_the_attempts_without_leaking_the_token(
    entsoe_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    entsoe_api.failures.extend(["503"] * 3)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FetchError) as err:
        await fetch_day(source(), date(2025, 10, 14))
    assert "HTTP 503 after 3 attempts" in str(err.value) and not err.value.permanent
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("aiohttp")]  # not the fake server's
    assert any("securityToken" in m for m in ours)  # entsoe-py did log its request parameters ...
    assert all(TOKEN not in m for m in ours) and TOKEN not in str(err.value)  # ... without the token
    assert entsoe_api.requests[0]["securityToken"] == TOKEN  # it was sent, just never logged


async def test_refused_token_is_permanent(entsoe_api: Api) -> None:
    entsoe_api.failures.append("401")
    with pytest.raises(FetchError, match="refused the token") as err:
        await fetch_day(source(), date(2025, 10, 14))
    assert err.value.permanent and len(entsoe_api.requests) == 1


async def test_zone_is_part_of_the_query(entsoe_api: Api) -> None:
    de = await fetch_day(source(), date(2025, 10, 14), "DE_LU")
    nl = await fetch_day(source(), date(2025, 10, 14), "NL")
    assert [v for _, v in nl.slots] != [v for _, v in de.slots]
    assert entsoe_api.requests[-1]["in_Domain"] == "10YNL----------L"


async def test_exaa_and_market_forecasts(entsoe_api: Api) -> None:
    start, end = day_bounds(date(2025, 10, 14))
    src = source()
    exaa = await src.exaa("DE_LU", start, end)
    assert len(exaa) == 96 and exaa[0] == (int(start.timestamp()), price("DE_LU", start, 2))
    assert await src.exaa("NL", start, end) == []  # no EXAA outside DE_LU/AT
    forecasts = await src.market_forecasts("DE_LU", start, end)
    assert set(forecasts) == {"load", "solar", "wind_onshore", "wind_offshore"}
    assert all(len(s) == 96 for s in forecasts.values())


async def test_every_http_request_passes_the_rate_limiter(entsoe_api: Api) -> None:
    limiter = RateLimiter(400)
    src = source(limiter=limiter)
    await fetch_day(src, date(2025, 10, 14))
    assert len(limiter._calls) == len(entsoe_api.requests) >= 1


def test_empty_token_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"prices.entsoe_token"):
        EntsoeSource("")
