"""Quarter-hours in UTC and the German local day around them.

Every quarter-hour boundary in UTC is one in Europe/Berlin too (the offsets are whole hours), so
slots are UTC epoch seconds that are multiples of 900. Times people type may carry an offset
(``2026-03-29T10:15+02:00``, ``…Z``) or be local wall-clock times in the market's zone; a local
time that does not exist (the spring gap) or exists twice (the autumn repeat) is refused with both
readings named, since guessing would move a membership by an hour.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

SLOT_S = 900
MARKET_ZONE = ZoneInfo("Europe/Berlin")


class TimeError(ValueError):
    """A time that cannot be a slot boundary; the message names the field and the value."""


def parse_boundary(text: str, field: str, zone: ZoneInfo = MARKET_ZONE) -> int:
    """Epoch seconds of ``text``, a quarter-hour boundary (ISO-8601, with an offset or local in ``zone``)."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise TimeError(f"{field}: got {text!r}, expected an ISO-8601 time such as 2026-03-29T10:15 "
                        "(local) or 2026-03-29T08:15Z") from None
    if moment.tzinfo is None:
        moment = _local(moment, field, text, zone)
    ts = moment.timestamp()
    if ts % SLOT_S:
        raise TimeError(f"{field}: got {text!r}, a membership or period starts and ends on a quarter-hour "
                        "(:00, :15, :30, :45 with no seconds)")
    return int(ts)


def _local(naive: datetime, field: str, text: str, zone: ZoneInfo) -> datetime:
    early, late = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    if early.utcoffset() == late.utcoffset():
        return early
    first, second = sorted((early.astimezone(UTC), late.astimezone(UTC)))
    # Round trip through UTC: a time in the spring gap comes back as another wall-clock time.
    if early.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        raise TimeError(f"{field}: {text!r} does not exist in {zone.key} (the clocks skip that hour); "
                        f"give an offset, e.g. {first.astimezone(zone).isoformat()}")
    raise TimeError(f"{field}: {text!r} happens twice in {zone.key} (the clocks go back); give an offset: "
                    f"{first.astimezone(zone).isoformat()} or {second.astimezone(zone).isoformat()}")


def day_bounds(day: date, zone: ZoneInfo = MARKET_ZONE) -> tuple[int, int]:
    """The local day's first slot start and the next day's (92, 96 or 100 slots apart)."""
    start = datetime.combine(day, datetime.min.time(), zone).timestamp()
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone).timestamp()
    return int(start), int(end)


def slots(start: int, end: int) -> range:
    """Slot starts from ``start`` up to, not including, ``end``."""
    return range(start, end, SLOT_S)


def local_day(ts: int, zone: ZoneInfo = MARKET_ZONE) -> date:
    return datetime.fromtimestamp(ts, zone).date()


@functools.lru_cache(maxsize=1 << 16)  # a run asks it for the same few slots once per member
def same_weekday_before(ts: int, weeks: int, zone: ZoneInfo = MARKET_ZONE) -> int | None:
    """The slot at the same local wall-clock time ``weeks`` weeks earlier; None when that time did
    not exist then (spring gap). The second 02:xx of an autumn day maps to the (only) 02:xx of
    an ordinary day, as the first does."""
    here = datetime.fromtimestamp(ts, zone)
    naive = here.replace(tzinfo=None) - timedelta(weeks=weeks)
    then = naive.replace(tzinfo=zone, fold=here.fold)
    if then.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        return None
    return int(then.timestamp())


def iso(ts: int, zone: ZoneInfo = MARKET_ZONE) -> str:
    """A slot start as local time with its offset, as reports show it."""
    return datetime.fromtimestamp(ts, zone).isoformat()
