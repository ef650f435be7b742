"""The daily MSCONS export: one interchange per metering location and local day.

A day is exported once it is over (its last quarter-hour derived, see ``SETTLE_S``) and again
whenever what it would contain changed, e.g. a late slot that completes it: the newest stored
file of the day is parsed back and compared value by value, so an unchanged day is never sent
twice. Each export is a new interchange with the next reference number (:mod:`device.store.edi`);
the outbox trigger queues it for the ``edi`` sync stream.

Every quarter-hour of the local day is in the file (96, or 92/100 on clock-change days), in
UTC. A slot measured over its whole 900 s is a true value. Any other slot is a substitute
value with its method, never a silent zero and never a gap:

- ``extrapolated``: the slot was measured in part; its energy scaled to the whole slot;
- ``interpolated``: no measurement; linear between the nearest measured slots of the day
  (the nearest one's value at the day's edges).

A day without any measured slot is not exported: there is nothing to report.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog

from common import mscons
from device.accounting import day_bounds
from device.config import MarketSettings
from device.energy import SLOT_S
from device.rounds import repeat
from device.store.edi import EdiFile

if TYPE_CHECKING:
    from device.home.effective import EffectiveSettings
    from device.store import AsyncStore, Store

log = structlog.get_logger(__name__)
SETTLE_S = 600  # the store derives a slot ~3 min after it ends; export the day 10 min after it
_MILLI = Decimal("0.001")
#: The energy-slot column behind each OBIS code.
COLUMNS = {mscons.OBIS_IMPORT: "import_wh", mscons.OBIS_EXPORT: "export_wh"}


class ExportError(ValueError):
    """A day that cannot be exported (not over yet, or market identities not configured)."""


def kwh(wh: float) -> Decimal:
    """Wh → kWh with three decimals (half up), never negative."""
    return (Decimal(repr(max(wh, 0.0))) / 1000).quantize(_MILLI, ROUND_HALF_UP)


def day_values(slots: list[dict[str, Any]], start: int, end: int, column: str) -> tuple[mscons.Value, ...]:
    """Every quarter-hour of [start, end) from the stored slots, gaps as substitute values."""
    by_ts = {int(s["ts"]): s for s in slots}
    measured: dict[int, tuple[float, str | None]] = {}
    for ts, slot in by_ts.items():
        if slot["complete"]:
            measured[ts] = (float(slot[column]), None)
        elif slot["covered_s"] > 0:
            measured[ts] = (float(slot[column]) * SLOT_S / float(slot["covered_s"]), "extrapolated")
    known = sorted(measured)
    values = []
    for ts in range(start, end, SLOT_S):
        if ts in measured:
            wh, method = measured[ts]
        else:
            wh, method = _interpolate(measured, known, ts), "interpolated"
        values.append(mscons.Value(ts, ts + SLOT_S, kwh(wh), "true" if method is None else "substitute", method))
    return tuple(values)


def _interpolate(measured: dict[int, tuple[float, str | None]], known: list[int], ts: int) -> float:
    before = [k for k in known if k < ts]
    after = [k for k in known if k > ts]
    if not before:
        return measured[after[0]][0]
    if not after:
        return measured[before[-1]][0]
    left, right = before[-1], after[0]
    share = (ts - left) / (right - left)
    return measured[left][0] + (measured[right][0] - measured[left][0]) * share


def file_prefix(market: MarketSettings, day: date) -> str:
    return f"MSCONS_{market.melo_id}_{day.isoformat()}_"


def day_profile(
    market: MarketSettings, slots: list[dict[str, Any]], start: int, end: int
) -> tuple[mscons.Series, ...]:
    return tuple(mscons.Series(obis, day_values(slots, start, end, column)) for obis, column in COLUMNS.items())


def interchange(
    market: MarketSettings, series: tuple[mscons.Series, ...], start: int, end: int, reference: int, now: float
) -> mscons.Interchange:
    """The day's interchange with ``reference`` as interchange, message and document number."""
    document_date = int(now // 60) * 60
    sender = mscons.Party(market.sender_id, market.sender_qualifier)
    receiver = mscons.Party(market.receiver_id, market.receiver_qualifier)
    german_day = datetime.fromtimestamp(document_date, ZoneInfo("Europe/Berlin")).date()
    message = mscons.LoadProfile(
        reference=str(reference), document_number=f"MSCONS{reference:08d}", document_date=document_date,
        version=mscons.mig_version(german_day), check_id=mscons.CHECK_ID_LOAD_PROFILE,
        sender=sender, receiver=receiver, melo_id=market.melo_id, start=start, end=end, series=series,
    )
    return mscons.Interchange(str(reference), sender, receiver, document_date, (message,))


def export_day(store: Store, market: MarketSettings, day: date, timezone: str, now: float | None = None) -> EdiFile | None:
    """Export ``day`` if it is over and changed since its newest file; returns the new file.

    Raises :class:`ExportError` when the identities are not configured or the day is not over.
    """
    now = time.time() if now is None else now
    if not market.configured:
        raise ExportError("market.malo_id: not set; the MSCONS export needs the market identities (market: ...)")
    start, end = day_bounds(day, timezone)
    if now < end + SETTLE_S:
        ready = datetime.fromtimestamp(end + SETTLE_S, UTC).strftime("%Y-%m-%dT%H:%MZ")
        raise ExportError(f"day {day.isoformat()}: not over yet; it can be exported from {ready}")
    slots = store.energy_slots(start, end)
    if not any(s["complete"] or s["covered_s"] > 0 for s in slots):
        return None
    series = day_profile(market, slots, start, end)
    prefix = file_prefix(market, day)
    previous = store.edi_files(prefix)
    if previous and _series_of(previous[-1]["content"]) == series:
        return None

    def make(reference: int) -> EdiFile:
        text = mscons.build(interchange(market, series, start, end, reference, now))
        return EdiFile(f"{prefix}{reference:08d}.edi", text, start, end)

    made = store.add_edi_file(make, now)
    log.info("mscons_exported", day=day.isoformat(), file=made.name, replaces=len(previous),
             substitutes=sum(v.status == "substitute" for s in series for v in s.values))
    return made


def _series_of(content: str) -> tuple[mscons.Series, ...]:
    return mscons.parse(content).messages[0].series


async def export_pending(store: AsyncStore, market: MarketSettings, timezone: str, now: float) -> list[EdiFile]:
    """Export every finished day of the last ``market.export_days_back`` days that is new or changed."""
    today = datetime.fromtimestamp(now, ZoneInfo(timezone)).date()
    made = []
    for back in range(market.export_days_back, 0, -1):
        day = today - timedelta(days=back)
        if now < day_bounds(day, timezone)[1] + SETTLE_S:
            continue
        result = await store.call(export_day, market, day, timezone, now)
        if result is not None:
            made.append(result)
    return made


async def export_loop(
    store: AsyncStore,
    settings: EffectiveSettings,
    *,
    every_s: float = 300.0,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Export finished days while market identities are configured; runs until cancelled."""
    async def step(now: float) -> None:
        cfg = settings.config
        if cfg.market.configured:
            await export_pending(store, cfg.market, cfg.device.timezone, now)

    await repeat(step, every_s, "mscons_export_failed", clock=clock, sleep=sleep)
