"""Keeps the day-ahead prices (and the forecast inputs) of one bidding zone in the store.

Schedule, in market time (Europe/Brussels): from ``exaa_after`` (10:20) the exogenous inputs
for tomorrow (ENTSO-E load, solar and wind forecasts; EXAA for DE_LU/AT); from ``fetch_after``
(12:50) tomorrow's prices, retried with exponential backoff (``retry_min_s`` doubling up to
``retry_max_s``, jittered) until the day is complete. A partial day is never stored: the store
only ever holds complete delivery days, so nothing downstream mistakes half a day for a day.
From ``stale_after`` (14:00) an incomplete tomorrow is flagged ``stale`` on the status and the
``prices`` payload; the planner then runs on the forecast.

At start-up :meth:`PriceService.backfill` fills gaps in the last ``history_days`` (the
forecast's linear model learns from them), a month per request. After anything new is stored,
``on_update`` runs (the app re-forecasts and re-plans there).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import structlog

from common.backoff import Backoff
from device.config import ConfigError, PricesSettings
from device.market import MARKET_TZ, resolution_for
from device.prices.days import DayPrices, day_bounds, expected_slots, select_day
from device.prices.source import EXAA_ZONES, FetchError, PriceSource, Slots
from device.store import AsyncStore, Store

log = structlog.get_logger(__name__)
CHUNK_DAYS = 28


@dataclass
class PriceStatus:
    """For ``health`` and the ``prices`` payload."""

    zone: str
    source: str
    today: str = "missing"  # complete | partial | missing
    tomorrow: str = "missing"
    stale: bool = False
    attempts: int = 0  # for tomorrow since the first attempt
    last_attempt: float | None = None
    last_success: float | None = None
    last_error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def parse_hhmm(value: str, key: str) -> tuple[int, int]:
    try:
        hh, mm = value.split(":")
        h, m = int(hh), int(mm)
        if not (0 <= h < 24 and 0 <= m < 60):
            raise ValueError
    except ValueError:
        raise ConfigError(f"prices.{key}: got {value!r}, allowed: HH:MM (00:00-23:59)") from None
    return h, m


class PriceService:
    def __init__(
        self,
        settings: PricesSettings,
        store: AsyncStore,
        source: PriceSource,
        *,
        clock: Callable[[], float] = time.time,
        on_update: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if settings.retry_max_s < settings.retry_min_s:
            raise ConfigError(
                f"prices.retry_max_s: {settings.retry_max_s}; allowed: at least prices.retry_min_s ({settings.retry_min_s})"
            )
        self.settings = settings
        self.retry = Backoff(settings.retry_min_s, settings.retry_max_s, jitter=0.25)
        self.zone = settings.zone
        self.store = store
        self.source = source
        self.clock = clock
        self.on_update = on_update
        self._fetch_after = parse_hhmm(settings.fetch_after, "fetch_after")
        self._stale_after = parse_hhmm(settings.stale_after, "stale_after")
        self._exaa_after = parse_hhmm(settings.exaa_after, "exaa_after")
        self.status = PriceStatus(zone=self.zone, source=source.name)
        self._inputs_done: set[date] = set()

    def health(self) -> dict[str, object]:
        """Figures for the ``health`` topic: freshness, errors, failed requests, rate-limit waits."""
        out = self.status.as_dict()
        out["requests_failed"] = getattr(self.source, "requests_failed", 0)
        out["rate_limit_wait_s"] = round(getattr(self.source, "rate_limit_wait_s", 0.0), 1)
        return out

    # --- one delivery day -----------------------------------------------------------------
    async def stored_state(self, day: date) -> str:
        start, end = day_bounds(day)
        rows = await self.store.call(Store.prices_for, self.zone, int(start.timestamp()), int(end.timestamp()))
        rows = [r for r in rows if r["resolution_s"] == resolution_for(day)]
        return "complete" if len(rows) == expected_slots(day) else ("partial" if rows else "missing")

    async def refresh_day(self, day: date) -> DayPrices:
        """Fetch the prices of ``day``; store them only if the day is complete."""
        start, end = day_bounds(day)
        now = self.clock()
        self.status.last_attempt = now
        got = select_day(await self.source.day_ahead(self.zone, start, end), day)
        if got.complete:
            await self.store.call(Store.upsert_prices, self.zone, got.slots, got.resolution_s, self.source.name, now)
            self.status.last_success = now
            log.info("prices_stored", zone=self.zone, day=day.isoformat(), slots=len(got.slots))
        elif got.slots:
            log.warning("prices_partial", zone=self.zone, day=day.isoformat(), slots=len(got.slots),
                        expected=got.expected)
        return got

    async def refresh_inputs(self, first: date, last: date) -> dict[str, int]:
        """Fetch the forecast inputs for ``first``..``last``; returns values stored per series."""
        if not self.settings.exogenous:
            return {}
        start, end = day_bounds(first)[0], day_bounds(last)[1]
        series = dict(await self.source.market_forecasts(self.zone, start, end))
        exaa = await self.source.exaa(self.zone, start, end)
        if exaa:
            series["exaa"] = exaa
        now = self.clock()
        stored: dict[str, int] = {}
        for name, values in series.items():
            # stored as hourly means, which is what the (hourly) forecast uses: a quarter of the
            # rows on the SD card and a quarter of the work when the history is loaded
            slots = hourly_means(values)
            if slots:
                stored[name] = await self.store.call(
                    Store.upsert_market_series, self.zone, name, slots, 3600, now
                )
        return stored

    # --- start-up backfill ----------------------------------------------------------------
    async def backfill(self, days: int | None = None) -> int:
        """Fill missing complete days among the last ``days`` (default ``history_days``); returns days stored."""
        today = self.today()
        first = today - timedelta(days=days or self.settings.history_days)
        start, end = int(day_bounds(first)[0].timestamp()), int(day_bounds(today)[1].timestamp())
        rows = await self.store.call(Store.prices_for, self.zone, start, end)
        counts: dict[date, int] = {}
        tz = ZoneInfo(MARKET_TZ)
        for r in rows:
            d = datetime.fromtimestamp(r["ts"], tz).date()
            counts[d] = counts.get(d, 0) + 1
        missing = [first + timedelta(days=k) for k in range((today - first).days + 1)]
        missing = [d for d in missing if counts.get(d, 0) != expected_slots(d)]
        stored = 0
        for chunk in _chunks(missing, CHUNK_DAYS):
            s, e = day_bounds(chunk[0])[0], day_bounds(chunk[-1])[1]
            try:
                series = await self.source.day_ahead(self.zone, s, e)
                now = self.clock()
                for day in chunk:
                    got = select_day(series, day)
                    if got.complete:
                        await self.store.call(
                            Store.upsert_prices, self.zone, got.slots, got.resolution_s, self.source.name, now
                        )
                        stored += 1
                await self.refresh_inputs(chunk[0], chunk[-1])
            except FetchError as exc:
                log.warning("prices_backfill_failed", zone=self.zone, first=chunk[0].isoformat(), error=str(exc))
                if exc.permanent:
                    break
        if stored:
            log.info("prices_backfilled", zone=self.zone, days=stored)
        return stored

    # --- the daily schedule ---------------------------------------------------------------
    def today(self) -> date:
        return datetime.fromtimestamp(self.clock(), ZoneInfo(MARKET_TZ)).date()

    def _at(self, day: date, hhmm: tuple[int, int]) -> float:
        return datetime(day.year, day.month, day.day, *hhmm, tzinfo=ZoneInfo(MARKET_TZ)).timestamp()

    async def run_once(self) -> float:
        """Do what is due now; returns the seconds until something is due again."""
        now = self.clock()
        today = self.today()
        tomorrow = today + timedelta(days=1)
        changed = False
        try:
            if await self.stored_state(today) != "complete":
                changed |= (await self.refresh_day(today)).complete
            if self.settings.exogenous and now >= self._at(today, self._exaa_after) and tomorrow not in self._inputs_done:
                names = await self.refresh_inputs(tomorrow, tomorrow)
                changed |= bool(names)
                if "load" in names and (self.zone not in EXAA_ZONES or "exaa" in names):
                    self._inputs_done.add(tomorrow)  # else: asked again at the next run
            if now >= self._at(today, self._fetch_after) and await self.stored_state(tomorrow) != "complete":
                self.status.attempts += 1
                changed |= (await self.refresh_day(tomorrow)).complete
            if self.status.last_error is not None:
                log.info("prices_recovered", zone=self.zone)
            self.status.last_error = None
        except FetchError as exc:
            if self.status.last_error != str(exc):  # log on change, not on every retry
                log.warning("prices_fetch_failed", zone=self.zone, error=str(exc), permanent=exc.permanent)
            self.status.last_error = str(exc)
        self.status.today = await self.stored_state(today)
        self.status.tomorrow = await self.stored_state(tomorrow)
        self.status.stale = self.status.tomorrow != "complete" and now >= self._at(today, self._stale_after)
        if self.status.tomorrow == "complete":
            self.status.attempts = 0
        if changed and self.on_update is not None:
            await self.on_update()
        return self._next_delay(now, today)

    def _next_delay(self, now: float, today: date) -> float:
        inputs_due = self.settings.exogenous and now >= self._at(today, self._exaa_after) and (
            today + timedelta(days=1) not in self._inputs_done
        )
        if self.status.today != "complete" or inputs_due or (
            now >= self._at(today, self._fetch_after) and self.status.tomorrow != "complete"
        ) or self.status.last_error:
            return self.retry.delay(self.status.attempts)
        due = [self._at(today, self._exaa_after), self._at(today, self._fetch_after)]
        nxt = today + timedelta(days=1)
        due += [self._at(nxt, self._exaa_after), self._at(nxt, self._fetch_after)]
        return max(1.0, min(t for t in due if t > now) - now)

    async def run(self) -> None:
        """Backfill, then follow the schedule until cancelled."""
        await self.backfill()
        while True:
            await asyncio.sleep(await self.run_once())


def hourly_means(slots: Slots) -> Slots:
    """The mean of each UTC hour's known values, by hour start, in time order."""
    hours: dict[int, list[float]] = {}
    for ts, value in slots:
        if not math.isnan(value):
            hours.setdefault(ts - ts % 3600, []).append(value)
    return [(hour, math.fsum(values) / len(values)) for hour, values in sorted(hours.items())]


def _chunks(days: list[date], size: int) -> list[list[date]]:
    """Runs of consecutive days, each at most ``size`` long."""
    out: list[list[date]] = []
    for day in days:
        if out and (day - out[-1][-1]).days == 1 and len(out[-1]) < size:
            out[-1].append(day)
        else:
            out.append([day])
    return out

