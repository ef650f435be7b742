"""UTC times as text: the one format the device and the aggregator write, and its parser.

Written: ISO-8601 with milliseconds and ``Z``, ``2026-11-29T21:45:00.123Z`` (telemetry can be
polled several times a second, so whole seconds would not do). Read: any ISO-8601 time with a
UTC offset, so the whole-second form ``2026-11-29T21:45:00Z`` written before (migration records,
retained MQTT messages) and times people type with ``+01:00`` parse too.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, tzinfo


def format_utc(ts: float | None = None) -> str:
    """``ts`` (epoch seconds; default now) as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_utc(text: str, naive: tzinfo | None = None) -> float:
    """Epoch seconds of an ISO-8601 time (``Z`` or an offset such as ``+01:00``).

    A time without an offset is taken in ``naive`` when given, else refused: guessing the
    machine's zone would shift it by hours. Raises ``ValueError`` naming the text.
    """
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"{text!r} is not an ISO-8601 time (expected e.g. 2026-11-29T21:45:00Z)") from None
    if moment.tzinfo is None:
        if naive is None:
            raise ValueError(f"{text!r} has no UTC offset (expected e.g. 2026-11-29T21:45:00Z)")
        moment = moment.replace(tzinfo=naive)
    return moment.timestamp()
