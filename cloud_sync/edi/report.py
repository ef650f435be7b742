"""Reconciliation read from the database: a metering location's device and partner values over
German calendar days, compared by :mod:`cloud_sync.edi.reconcile`. Values of one direction are
compared whatever their OBIS channel (``1-0:1.29.0`` from a partner against the device's
``1-1:1.29.0``); the result names the device's form."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.edi import store
from cloud_sync.edi.reconcile import GERMAN, Day, Tolerance, compare


def _bounds(first: date, last: date) -> tuple[int, int]:
    start = datetime.combine(first, datetime.min.time(), GERMAN)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), GERMAN)
    return int(start.timestamp()), int(end.timestamp())


async def reconciliation(conn: AsyncConnection, melo_id: str, first: date, last: date,
                         tolerance: Tolerance | None = None) -> list[Day]:
    """Every day of ``first`` … ``last`` (German days) where both sides have values, per direction."""
    start, end = _bounds(first, last)
    series: dict[str, dict[str, dict[int, int]]] = defaultdict(lambda: {"device": {}, "partner": {}})
    for source, obis, slot, wh in await store.values(conn, melo_id, start, end):
        series[f"1-1:{obis.split(':', 1)[-1]}"][source][slot] = wh
    days = [day for obis, sides in sorted(series.items())
            for day in compare(melo_id, obis, sides["device"], sides["partner"], tolerance or Tolerance())]
    return sorted(days, key=lambda d: (d.day, d.obis))
