"""The application checks of one message that passed the syntax check: what an APERAK answers.

Pure: what the database knows (metering locations, partners, document numbers received before)
comes in a :class:`Context`. Each finding carries its BDEW code (:mod:`cloud_sync.edi.codes`),
the text naming what is wrong and where in the message it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from cloud_sync.edi.codes import Erc
from cloud_sync.edi.syntax import Message
from common import market_ids, mscons

SLOT_S = 900
GERMAN = ZoneInfo("Europe/Berlin")
#: Prüfidentifikator → which identity its LOC+172 carries (MSCONS AHB 3.1f, chapter 5).
CHECK_IDS = {mscons.CHECK_ID_LOAD_PROFILE: "MeLo", mscons.CHECK_ID_MALO_PROFILE: "MaLo"}
#: Energy per period drawn from (1.29.0) or fed into (2.29.0) the grid, medium electricity (1),
#: any channel 0 or 1: the OBIS codes of a load profile this gateway stores.
OBIS_CODES = frozenset(f"1-{channel}:{direction}.29.0" for channel in (0, 1) for direction in (1, 2))
#: Quarter-hour reactive energy (3.29.0, 4.29.0 and the quadrants 5.29.0 to 8.29.0): a 13025 may
#: carry it beside the active series (as a public vendor example does). The message is valid, so
#: it is accepted; such a series is neither checked nor stored, the active ones are.
NOT_STORED = frozenset(f"1-{channel}:{quantity}.29.0" for channel in (0, 1) for quantity in range(3, 9))
_MILLI = Decimal("0.001")
#: How far a document date may lie after the file's arrival: the sender's clock may run ahead.
CLOCK_SKEW_S = 600


@dataclass(frozen=True)
class Location:
    """A registered metering location: its MeLo-ID, the MaLo-ID it belongs to, its device."""

    melo_id: str
    malo_id: str | None = None
    device_id: str | None = None


@dataclass(frozen=True)
class Context:
    """What the checks compare a message with.

    ``locations`` by MeLo-ID and by MaLo-ID; ``partners``: registered market partner IDs;
    ``documents``: (sender, BGM document number) accepted before → the file that carried it;
    ``device``: the uploading device (it may only send its own locations' files), None for an
    operator's upload of a partner's file; ``received``: when the file arrived (epoch seconds;
    a document dated later, beyond ``CLOCK_SKEW_S``, is refused), None: not checked."""

    locations: Mapping[str, Location]
    partners: frozenset[str]
    documents: Mapping[tuple[str, str], int] = field(default_factory=dict)
    device: str | None = None
    received: float | None = None


@dataclass(frozen=True)
class Finding:
    code: Erc
    text: str
    where: str  # the segment (and value) the finding is about, for FTX+Z02


@dataclass(frozen=True)
class Checked:
    """A message's content (None when it cannot be read) and what is wrong with it."""

    message: Message
    profile: mscons.LoadProfile | None
    location: Location | None
    findings: tuple[Finding, ...]

    @property
    def accepted(self) -> bool:
        return self.profile is not None and not self.findings

    @property
    def stored_series(self) -> tuple[mscons.Series, ...]:
        """The series whose values the gateway stores: the load profile's, reactive ones left out."""
        return () if self.profile is None else tuple(s for s in self.profile.series if s.obis in OBIS_CODES)


def check(message: Message, decimal_mark: str, context: Context, earlier_in_file: set[tuple[str, str]]) -> Checked:
    """Every finding of ``message``; ``earlier_in_file`` collects (sender, document number) of
    the interchange's messages so far (a duplicate within one file is one too).

    The MIG version comes first, then the Prüfidentifikator: a message of a version not in force
    on its document date, or one that is not a load profile (a meter reading 13017, an energy
    quantity 13019, ...), is refused for that alone, its content not checked against rules it
    was not written to (what can be read of it still names the document and the partners in the
    APERAK)."""
    day = mscons.document_day(message.body, GERMAN)
    wrong = (None if day is None else _version(message.kind[4] if len(message.kind) > 4 else "", day)) \
        or _not_a_profile(mscons.check_id(message.body))
    try:
        profile = mscons.read_message(message.unh, message.body, decimal_mark)
    except mscons.MsconsError as exc:
        code = Erc.REPETITION if isinstance(exc, mscons.RepetitionError) else Erc.FORMAT
        return Checked(message, None, None, (wrong or Finding(code, str(exc), f"message {message.reference}"),))
    if wrong is not None:
        return Checked(message, profile, context.locations.get(profile.melo_id), (wrong,))
    findings: list[Finding] = []
    location = _location(profile, context, findings)
    _parties(profile, context, location, findings)
    _header(profile, context, findings)
    _document(profile, context, earlier_in_file, findings)
    for series in profile.series:
        _series(profile, series, findings)
    if not profile.series:
        findings.append(Finding(Erc.REQUIRED_MISSING, "no LIN/PIA series in the message", "SG9 LIN"))
    elif all(series.obis in NOT_STORED for series in profile.series):
        findings.append(Finding(Erc.OBIS_UNKNOWN, f"reactive energy only; a load profile has "
                                                  f"{', '.join(sorted(OBIS_CODES))}", "SG9 LIN"))
    return Checked(message, profile, location, tuple(findings))


def _location(profile: mscons.LoadProfile, context: Context, findings: list[Finding]) -> Location | None:
    loc = profile.melo_id
    kind = CHECK_IDS.get(profile.check_id)
    where = f"LOC+172+{loc}"
    try:
        if len(loc) == 11:
            market_ids.check_malo(loc)
            is_kind = "MaLo"
        else:
            market_ids.check_melo(loc)
            is_kind = "MeLo"
    except market_ids.IdError as exc:
        findings.append(Finding(Erc.FORMAT, f"location ID {exc}", where))
        return None
    if kind is not None and kind != is_kind:
        findings.append(Finding(Erc.CODE_NOT_ALLOWED, f"Prüfidentifikator {profile.check_id} reports a {kind}, "
                                                      f"LOC+172 holds a {is_kind}-ID {loc!r}", where))
    location = context.locations.get(loc)
    if location is None:
        findings.append(Finding(Erc.ID_UNKNOWN, f"{is_kind}-ID {loc!r} is not a registered metering location", where))
    return location


def _parties(profile: mscons.LoadProfile, context: Context, location: Location | None, findings: list[Finding]) -> None:
    for party, code, role, where in ((profile.sender, Erc.SENDER_NOT_ASSIGNED, "sender", "NAD+MS"),
                                     (profile.receiver, Erc.RECEIVER_NOT_ASSIGNED, "receiver", "NAD+MR")):
        try:
            market_ids.check_partner(party.id, party.qualifier)
        except market_ids.IdError as exc:
            findings.append(Finding(Erc.FORMAT, f"{role} {exc}", f"{where}+{party.id}"))
            continue
        if party.id not in context.partners:
            findings.append(Finding(code, f"{role} {party.id} is not a registered market partner", f"{where}+{party.id}"))
    if context.device is not None and location is not None and location.device_id != context.device:
        findings.append(Finding(Erc.SENDER_NOT_ASSIGNED, f"device {context.device!r} may only send files of its own "
                                                         f"metering locations; {location.melo_id} is not one",
                                f"LOC+172+{profile.melo_id}"))


def _header(profile: mscons.LoadProfile, context: Context, findings: list[Finding]) -> None:
    if not profile.check_id:
        findings.append(Finding(Erc.REQUIRED_MISSING, "no Prüfidentifikator (RFF+Z13)", "SG1 RFF+Z13"))
    if not profile.document_date:
        findings.append(Finding(Erc.REQUIRED_MISSING, "no document date (DTM+137)", "DTM+137"))
        return
    _period(profile, context, findings)


def _not_a_profile(check_id: str) -> Finding | None:
    """Z39 for a Prüfidentifikator other than a load profile's (a missing one is found later: Z29)."""
    if not check_id or check_id in CHECK_IDS:
        return None
    return Finding(Erc.CODE_NOT_ALLOWED, f"Prüfidentifikator {check_id}; this gateway takes load profiles: "
                                         f"{', '.join(sorted(CHECK_IDS))}", f"RFF+Z13:{check_id}")


def _version(version: str, day: date) -> Finding | None:
    """Z39 unless ``version`` (UNH DE 0057) is the MIG version in force on the document ``day``."""
    where = f"UNH S009 DE0057 {version}"
    try:
        expected = mscons.mig_version(day)
    except mscons.MsconsError as exc:
        return Finding(Erc.CODE_NOT_ALLOWED, f"MIG version {version!r}: {exc}", where)
    if version != expected:
        return Finding(Erc.CODE_NOT_ALLOWED, f"MIG version {version!r} is not in force on the document date "
                                             f"{day.isoformat()}; {expected!r} is", where)
    return None


def _period(profile: mscons.LoadProfile, context: Context, findings: list[Finding]) -> None:
    if context.received is not None and profile.document_date > context.received + CLOCK_SKEW_S:
        findings.append(Finding(Erc.TIME_IMPLAUSIBLE, f"document date {_iso(profile.document_date)} is after the file "
                                                      f"arrived ({_iso(int(context.received))})", "DTM+137"))
    if profile.end <= profile.start:
        findings.append(Finding(Erc.INTERVAL_NOT_POSITIVE, f"period {_iso(profile.start)} .. {_iso(profile.end)} is "
                                                           "empty or negative", "SG6 DTM+163/DTM+164"))
    elif profile.end > profile.document_date:
        findings.append(Finding(Erc.TIME_IMPLAUSIBLE, f"period ends {_iso(profile.end)}, after the document date "
                                                      f"{_iso(profile.document_date)}", "SG6 DTM+164"))


def _document(profile: mscons.LoadProfile, context: Context, earlier_in_file: set[tuple[str, str]],
              findings: list[Finding]) -> None:
    key = (profile.sender.id, profile.document_number)
    if not profile.document_number:
        findings.append(Finding(Erc.REQUIRED_MISSING, "no document number (BGM DE1004)", "BGM"))
    elif key in context.documents:
        findings.append(Finding(Erc.REJECTED_BY_RECEIVER, f"document number {profile.document_number!r} of sender "
                                                          f"{profile.sender.id} was received before (file "
                                                          f"{context.documents[key]})", f"BGM {profile.document_number}"))
    elif key in earlier_in_file:
        findings.append(Finding(Erc.REJECTED_BY_RECEIVER, f"document number {profile.document_number!r} twice in "
                                                          "this interchange", f"BGM {profile.document_number}"))
    earlier_in_file.add(key)


def _series(profile: mscons.LoadProfile, series: mscons.Series, findings: list[Finding]) -> None:
    where = f"PIA+5+{series.obis}"
    if series.obis in NOT_STORED:
        return
    if series.obis not in OBIS_CODES:
        findings.append(Finding(Erc.OBIS_UNKNOWN, f"OBIS code {series.obis!r}; a load profile has "
                                                  f"{', '.join(sorted(OBIS_CODES))}", where))
        return
    expected = profile.start
    for value in series.values:
        at = f"{where} QTY at {_iso(value.start)}"
        if value.start % SLOT_S or value.end - value.start != SLOT_S:
            findings.append(Finding(Erc.TIME_IMPLAUSIBLE, f"{series.obis}: value {_iso(value.start)} .. {_iso(value.end)} "
                                                          "is not one quarter-hour on the quarter-hour grid", at))
            return
        if value.start < expected:
            findings.append(Finding(Erc.TIME_IMPLAUSIBLE, f"{series.obis}: the quarter-hour {_iso(value.start)} overlaps "
                                                          f"the values before it (next expected {_iso(expected)})", at))
            return
        if value.start > expected:
            findings.append(Finding(Erc.TIME_SERIES_INCOMPLETE, f"{series.obis}: quarter-hours {_iso(expected)} .. "
                                                                f"{_iso(value.start)} are missing", at))
            return
        if value.kwh != value.kwh.quantize(_MILLI) or value.kwh < 0:
            findings.append(Finding(Erc.FORMAT, f"{series.obis}: {value.kwh} kWh at {_iso(value.start)}; allowed: "
                                                "0 or more with at most three decimals", at))
            return
        expected = value.end
    if expected != profile.end:
        findings.append(Finding(Erc.TIME_SERIES_INCOMPLETE, f"{series.obis}: values end {_iso(expected)}, the period "
                                                            f"{_iso(profile.end)}", where))


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%MZ")
