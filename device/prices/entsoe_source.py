"""ENTSO-E Transparency Platform client: day-ahead prices, EXAA, load and wind/solar forecasts.

entsoe-py does the queries and parses the XML but blocks (requests), retries only connection
errors (sleeping in the thread), and waits forever without a timeout. So here:

* every call runs in a worker thread (``asyncio.to_thread``) with a per-request timeout and a
  guard timeout around the whole call;
* timeouts, connection errors, 429 and 5xx are retried with exponential backoff and jitter
  (``Retry-After`` is honoured); a refused token or a bad request fails at once;
* every HTTP request passes the shared :class:`RateLimiter` (400 per minute per token);
* "No matching data" is an empty result, not an error: the day is not published yet;
* the token never reaches a log line or an exception message (entsoe-py logs request parameters
  at debug level, and requests puts the URL with the token into its errors).

The endpoint is entsoe-py's own: ``ENTSOE_ENDPOINT_URL``, read when entsoe-py is imported.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, TypeVar

import pandas as pd
import requests
import structlog
from entsoe import EntsoePandasClient
from entsoe.exceptions import NoMatchingDataError

from common.backoff import Backoff
from device.prices.ratelimit import RateLimiter
from device.prices.source import EXAA_ZONES, MISSING_TOKEN, FetchError, Slots

log = structlog.get_logger(__name__)
T = TypeVar("T")

__all__ = ["EXAA_ZONES", "EntsoeSource", "FetchError", "scrub"]
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
WIND_SOLAR = {"Solar": "solar", "Wind Onshore": "wind_onshore", "Wind Offshore": "wind_offshore"}
_TOKEN_PARAM = re.compile(r"(securityToken['\"]?\s*[=:]\s*['\"]?)[^&\s'\"]+")


def scrub(text: str, token: str = "") -> str:
    """``text`` without the security token (by parameter name and by value)."""
    text = _TOKEN_PARAM.sub(r"\1***", text)
    return text.replace(token, "***") if token else text


class _ScrubFilter(logging.Filter):
    """Removes tokens from entsoe-py's and urllib3's own (debug) log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        return True


# logger filters do not apply to child loggers: name the ones that log requests
for _name in ("entsoe.entsoe", "entsoe.decorators", "urllib3.connectionpool"):
    logging.getLogger(_name).addFilter(_ScrubFilter())


class _LimitedSession(requests.Session):
    """A requests session that waits for the rate limiter before every request."""

    def __init__(self, before_request: Callable[[], None]) -> None:
        super().__init__()
        self._before_request = before_request

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self._before_request()
        return super().request(*args, **kwargs)


class EntsoeSource:
    """Async access to the ENTSO-E data the device needs, as :data:`~device.prices.source.Slots`."""

    name = "entsoe"

    def __init__(
        self,
        token: str,
        *,
        timeout_s: float = 30.0,
        attempts: int = 4,
        backoff_s: float = 2.0,
        backoff_max_s: float = 60.0,
        limiter: RateLimiter | None = None,
    ) -> None:
        if not token:
            raise ValueError(MISSING_TOKEN)
        self._token = token
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff = Backoff(backoff_s, backoff_max_s, jitter=0.5)
        self.limiter = limiter or RateLimiter(400)
        self._client: EntsoePandasClient | None = None
        self.requests_failed = 0  # for health

    @property
    def rate_limit_wait_s(self) -> float:
        """Time spent waiting for the rate limit (for health)."""
        return self.limiter.waited_s

    def _get_client(self) -> EntsoePandasClient:
        if self._client is None:
            loop = asyncio.get_running_loop()
            session = _LimitedSession(lambda: self.limiter.acquire_blocking(loop))
            # retry_count=1: entsoe-py's own retry sleeps in the thread; we retry here instead.
            # (connect, read) timeout per request; entsoe-py types it as int but passes it on.
            self._client = EntsoePandasClient(
                api_key=self._token, session=session, retry_count=1,
                timeout=(min(10.0, self.timeout_s), self.timeout_s),  # type: ignore[arg-type]
            )
        return self._client

    async def day_ahead(self, zone: str, start: datetime, end: datetime) -> Slots:
        """SDAC day-ahead prices (EUR/MWh) in [start, end); empty when not published yet."""
        t0, t1 = pd.Timestamp(start), pd.Timestamp(end)
        result = await self._call("day_ahead", lambda c: c.query_day_ahead_prices(zone, start=t0, end=t1))
        return _slots(result, t0, t1)

    async def exaa(self, zone: str, start: datetime, end: datetime) -> Slots:
        """EXAA auction prices (sequence 2 on ENTSO-E) for DE_LU/AT; empty elsewhere or not yet there."""
        if zone not in EXAA_ZONES:
            return []
        t0, t1 = pd.Timestamp(start), pd.Timestamp(end)
        resolutions: tuple[Literal["15min"], Literal["60min"]] = ("15min", "60min")
        for resolution in resolutions:

            def query(c: EntsoePandasClient, r: Literal["15min", "60min"] = resolution) -> pd.Series:
                return c.query_day_ahead_prices_local(zone, 2, start=t0, end=t1, resolution=r)

            slots = _slots(await self._call("exaa", query), t0, t1)
            if slots:
                return slots
        return []

    async def market_forecasts(self, zone: str, start: datetime, end: datetime) -> dict[str, Slots]:
        """Day-ahead load, solar and wind forecasts (MW) as far as published."""
        t0, t1 = pd.Timestamp(start), pd.Timestamp(end)
        out: dict[str, Slots] = {}
        load = await self._call("load_forecast", lambda c: c.query_load_forecast(zone, start=t0, end=t1))
        if isinstance(load, pd.DataFrame) and "Forecasted Load" in load.columns:
            out["load"] = _slots(load["Forecasted Load"], t0, t1)
        wind_solar = await self._call(
            "wind_solar_forecast", lambda c: c.query_wind_and_solar_forecast(zone, start=t0, end=t1)
        )
        if isinstance(wind_solar, pd.DataFrame):
            for column, name in WIND_SOLAR.items():
                if column in wind_solar.columns:
                    out[name] = _slots(wind_solar[column], t0, t1)
        return {k: v for k, v in out.items() if v}

    async def _call(self, what: str, fn: Callable[[EntsoePandasClient], T]) -> T | None:
        client = self._get_client()
        error = ""
        for attempt in range(1, self.attempts + 1):
            delay: float | None = None
            try:
                # guard: entsoe-py may make a few requests per call, each bounded by the timeout
                return await asyncio.wait_for(asyncio.to_thread(fn, client), timeout=self.timeout_s * 4 + 5)
            except NoMatchingDataError:
                return None
            except requests.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else 0
                error = f"HTTP {status}"
                if status in (401, 403):
                    raise FetchError(f"ENTSO-E refused the token (HTTP {status}): check prices.entsoe_token",
                                     permanent=True) from None
                if status not in RETRY_STATUS:
                    raise FetchError(f"ENTSO-E {what}: {scrub(str(exc), self._token)}", permanent=True) from None
                delay = _retry_after(exc.response)
            except (requests.Timeout, TimeoutError):
                error = "timeout"
            except requests.ConnectionError as exc:
                error = f"connection error: {scrub(type(exc).__name__, self._token)}"
            except ValueError as exc:
                if "No objects to concatenate" in str(exc):
                    return None  # entsoe-py's way of saying "a document without time series"
                raise FetchError(f"ENTSO-E {what}: unreadable response ({scrub(str(exc), self._token)})") from None
            except (KeyError, AttributeError) as exc:  # unparsable document
                raise FetchError(f"ENTSO-E {what}: unreadable response ({scrub(str(exc), self._token)})") from None
            self.requests_failed += 1
            if attempt == self.attempts:
                break
            wait = max(self.backoff.delay(attempt), delay or 0.0)
            log.warning("entsoe_retry", what=what, attempt=attempt, error=error, retry_in_s=round(wait, 2))
            await asyncio.sleep(wait)
        raise FetchError(f"ENTSO-E {what}: {error} after {self.attempts} attempts")


def _retry_after(response: requests.Response | None) -> float | None:
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return min(float(value), 600.0) if value else None
    except ValueError:
        return None


def _slots(value: object, start: pd.Timestamp, end: pd.Timestamp) -> Slots:
    """entsoe-py results (tz-aware, closed end) as slots within [start, end), in time order."""
    if not isinstance(value, pd.Series) or value.empty:
        return []
    s = value.astype(float).dropna()
    s.index = pd.DatetimeIndex(s.index).tz_convert("UTC")
    s = s[(s.index >= start) & (s.index < end)].sort_index()
    return [(int(t.timestamp()), float(v)) for t, v in s.items()]
