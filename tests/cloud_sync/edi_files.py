"""MSCONS files for the gateway's tests: a day as the device writes it, and the identities the
aggregator has registered for it."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from cloud_sync.edi.checks import Context, Location
from common import mscons

MELO = "DE0001234567890000000000000000001"
MALO = "51238696781"
DEVICE_PARTY = mscons.Party("9900000000003", "293")  # the device's configured sender
GRID = mscons.Party("9800000000007", "332")  # the receiver (grid operator / MSB)
PARTNERS = frozenset({DEVICE_PARTY.id, GRID.id})
FIXTURES = Path(__file__).parent / "fixtures"  # see fixtures/README.md for where each file comes from
# The identities in the hand-built market partner files: the metering point operator sends the
# official values of one metering location (MeLo) and its market location (MaLo) to DEVICE_PARTY.
MSB = mscons.Party("9912345000002", "293")
FIXTURE_MELO = "DE0005667890100000000000000004711"
FIXTURE_MALO = "50998877665"


def fixture_context() -> Context:
    """The registry an operator set up for the hand-built market partner files."""
    location = Location(FIXTURE_MELO, FIXTURE_MALO, None)
    return Context({FIXTURE_MELO: location, FIXTURE_MALO: location}, PARTNERS | {MSB.id}, {}, None)


def context(device: str | None = "dev1", melo: str = MELO) -> Context:
    location = Location(melo, MALO, "dev1")
    return Context({melo: location, MALO: location}, PARTNERS, {}, device)


def day_start(day: date) -> int:
    """The German day's first quarter-hour (UTC epoch); 23:00 or 22:00 UTC the day before."""
    return int(datetime.combine(day, datetime.min.time(), ZoneInfo("Europe/Berlin")).timestamp())


def profile(day: date, reference: int = 7, *, kwh: Decimal = Decimal("0.125"), melo: str = MELO,
            sender: mscons.Party = DEVICE_PARTY, receiver: mscons.Party = GRID,
            document_date: int | None = None, substitute_every: int = 0) -> mscons.LoadProfile:
    """The day's load profile as the device exports it (every quarter-hour, import and export)."""
    start, end = day_start(day), day_start(day + timedelta(days=1))
    stamp = document_date if document_date is not None else end + 600
    german = datetime.fromtimestamp(stamp, ZoneInfo("Europe/Berlin")).date()

    def values(factor: int) -> tuple[mscons.Value, ...]:
        made = []
        for n, ts in enumerate(range(start, end, 900)):
            substitute = substitute_every and n % substitute_every == 0
            made.append(mscons.Value(ts, ts + 900, kwh * factor + Decimal(n % 5) / 1000,
                                     "substitute" if substitute else "true", "interpolated" if substitute else None))
        return tuple(made)

    return mscons.LoadProfile(
        reference=str(reference), document_number=f"MSCONS{reference:08d}", document_date=stamp,
        version=mscons.mig_version(german), check_id=mscons.CHECK_ID_LOAD_PROFILE, sender=sender,
        receiver=receiver, melo_id=melo, start=start, end=end,
        series=(mscons.Series(mscons.OBIS_IMPORT, values(1)), mscons.Series(mscons.OBIS_EXPORT, values(2))),
    )


def build(*profiles: mscons.LoadProfile, reference: str | None = None) -> str:
    first = profiles[0]
    return mscons.build(mscons.Interchange(reference or first.reference, first.sender, first.receiver,
                                           first.document_date, profiles))


def day_file(day: date, reference: int = 7, **kwargs: object) -> str:
    return build(profile(day, reference, **kwargs))  # type: ignore[arg-type]


def with_values(made: mscons.LoadProfile, obis: str, values: tuple[mscons.Value, ...]) -> mscons.LoadProfile:
    return replace(made, series=tuple(mscons.Series(s.obis, values if s.obis == obis else s.values)
                                      for s in made.series))
