"""MSCONS load profiles (EDI@Energy): build an interchange, and parse one back.

Shared by the device (its daily export, ``device/edi.py``) and the aggregator (the gateway that
will receive them), so both read and write the same layout. EDIFACT syntax (separators, escapes,
UNA) is pydifact's; this module knows the MSCONS segments. One message per metering location
and period::

    UNA:+.? '
    UNB+UNOC:3+<sender>:500+<receiver>:500+<YYMMDD>:<HHMM>+<ref>++TL'
    UNH+<ref>+MSCONS:D:04B:UN:2.4c'       message type, directory, MIG version
    BGM+7+<document number>+9'             7: Prozessdatenbericht, 9: original
    DTM+137:<document date>?+00:303'
    RFF+Z13:13018'                         Prüfidentifikator 13018: Lastgang Messlokation
    NAD+MS+<sender>::293'  NAD+MR+<receiver>::293'
    UNS+D'  NAD+DP'  LOC+172+<MeLo-ID>'
    DTM+163:<period start>?+00:303'  DTM+164:<period end>?+00:303'
    LIN+1'  PIA+5+1-1?:1.29.0:SRW'         one LIN per OBIS code (import 1.29.0, export 2.29.0)
    QTY+220:1.250:KWH'  DTM+163:...'  DTM+164:...'     one per quarter-hour (220: true value)
    QTY+67:0.310:KWH'  DTM+163:...'  DTM+164:...'  STS+Z32++Z92'   substitute value + method
    UNT+<segments>+<ref>'  UNZ+<messages>+<ref>'

Times are UTC (format 303 with offset ``+00``). Values are kWh with at most three decimals,
written with the decimal mark of the UNA (a point here); either mark is read.

MIG versions (by the document date, German time; :data:`MIG_VERSIONS`): **2.4b** from
2023-10-01, **2.4c** from 2024-04-03, **2.5** from 2026-10-01. The UNH association assigned code
(DE 0057) names it; the segment layout written here (SG5 NAD+DP / SG6 LOC+172 / SG9 LIN / SG10
QTY-DTM-STS) is the one of MIG 2.4c, and the three versions are written and read alike (2.4c
changed nothing a load profile uses, see below). The start dates are those of the EDI@Energy
format versions FV2310 and FV2404 as Hochfrequenz's ``efoli`` package models them ("FV2310 is
valid from 2023-10-01", "FV2404 is valid from 2024-04-03"); the edi-energy.de listing names the
2.4b MIG ``MSCONSMIG2.4b_20240331_20231001`` (in force from 2023-10-01; its end was announced as
2024-03-31 before the April 2024 change moved to the 3rd). Earlier versions are not on record:
a document dated before 2023-10-01 is refused.

Quantities read (SG10 QTY DE 6063): ``220`` wahrer Wert, ``67`` Ersatzwert, ``201``
Vorschlagswert and ``Z18`` vorläufiger Wert (market partners' load profiles carry runs of
provisional values until the final ones follow); the export writes 220 and 67 only.

Where the codes come from (checked against public copies of the BDEW documents, not the PDFs):

- MSCONS MIG 2.4c (BDEW, "Außerordentliche Veröffentlichung" of 26.07.2024), segment layout:
  UNB DE 0026 ``TL`` = "Lastgang, beliebiger Zeitraum"; BGM DE 1001 ``7`` = Prozessdatenbericht
  and DE 1225 ``9`` = Original; SG1 ``RFF+Z13`` = Prüfidentifikator; SG10 QTY DE 6063 ``220``
  Wahrer Wert, ``67`` Ersatzwert (others: 201 Vorschlagswert, 20 nicht verwendbar, Z18
  vorläufig, Z30 fehlend ...), DE 6411 ``KWH``; DTM 163/164 with format 303; STS ``Z32`` =
  Ersatzwertbildungsverfahren with DE 9013 ``Z92`` Interpolation, ``ZJ2`` Statistische Methode
  (Strom: "Vergleichswertverfahren mit Teilschritten Wertebestimmung, Ersatzprofilbestimmung
  und Skalierung"), Z88/Z89 Vergleichsmessung ... The codes ``Z85``/``Z86`` this module used
  before belong to STS ``Z33`` (Plausibilisierungshinweis: "Realer Zählerüberlauf geprüft",
  "Plausibel wg. Kontrollablesung"), not to substitute methods: corrected.
- MSCONS AHB 3.1f (30.09.2025), chapter 5: Prüfidentifikator ``13018`` = "Lastgang
  Messlokation, Netzkoppelpunkt, Netzlokation" (SG6 LOC = the MeLo-ID, one value per
  quarter-hour of the legal time, the interval without gaps); ``13025`` is "Lastgang
  Marktlokation, Tranche" (LOC = a MaLo-ID, BGM ``Z48``). A device reports its metering
  location, so it writes 13018 (this module wrote 13025 before: corrected); public 13018
  examples use ``BGM+7``.
- Our substitute methods: ``interpolated`` → ``Z92`` (Interpolation); ``extrapolated`` (a slot
  measured in part, scaled up) → ``ZJ2``, the one Strom method of the list that scales; this
  mapping is our judgement.
- The change list of 2.5 against 2.4c was not available to us (the 2.4c MIG's own
  "Änderungshistorie" only lists 2.4b → 2.4c: BGM Z85, RFF Z13 13028, QTY Z47 for the POG
  process, none of which a load profile uses). Check it against the 2.5 MIG before sending
  version 2.5 files to a market partner.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from pydifact.control import Characters
from pydifact.exceptions import (
    EDISyntaxError,
    MissingImplementationWarning,
    ValidationError,
)
from pydifact.parser import Parser
from pydifact.segmentcollection import Interchange as EdifactInterchange
from pydifact.segments import Segment

from common.market_ids import UNB_QUALIFIER

#: The German day each MSCONS MIG version came into force, oldest first.
MIG_VERSIONS = ((date(2023, 10, 1), "2.4b"), (date(2024, 4, 3), "2.4c"), (date(2026, 10, 1), "2.5"))
CHECK_ID_LOAD_PROFILE = "13018"  # Prüfidentifikator: Lastgang Messlokation (MSCONS AHB 3.1f)
CHECK_ID_MALO_PROFILE = "13025"  # Prüfidentifikator: Lastgang Marktlokation, Tranche
OBIS_IMPORT = "1-1:1.29.0"  # energy drawn from the grid per period
OBIS_EXPORT = "1-1:2.29.0"  # energy fed into the grid per period
UNIT = "KWH"
#: QTY qualifier (DE 6063) of each value status the export writes.
QTY_QUALIFIER = {"true": "220", "substitute": "67"}
#: The status of each QTY qualifier read: the written ones, and partners' proposed (201
#: Vorschlagswert) and preliminary (Z18 vorläufiger Wert) values.
STATUS_OF_QUALIFIER = {**{q: s for s, q in QTY_QUALIFIER.items()}, "201": "proposed", "Z18": "preliminary"}
#: Substitute-value methods (STS+Z32 Ersatzwertbildungsverfahren, DE 9013; see above).
SUBSTITUTE_METHODS = {"extrapolated": "ZJ2", "interpolated": "Z92"}
METHOD_OF_CODE = {c: m for m, c in SUBSTITUTE_METHODS.items()}
_NAD_OF_UNB = {u: n for n, u in UNB_QUALIFIER.items()}


class MsconsError(ValueError):
    """An interchange that is not a readable MSCONS load profile; the message says where."""


class RepetitionError(MsconsError):
    """A segment group repeated where this reader takes one (a second metering location, SG5/SG6,
    in one message): refused rather than mixing two locations' values."""


def mig_version(document_day: date) -> str:
    """The MSCONS MIG version in force on ``document_day`` (German calendar day); a day before the
    first version on record raises :class:`MsconsError`."""
    in_force = [version for since, version in MIG_VERSIONS if since <= document_day]
    if not in_force:
        first_day, first = MIG_VERSIONS[0]
        raise MsconsError(f"no MSCONS MIG version on record for {document_day.isoformat()}; the first "
                          f"known is {first}, from {first_day.isoformat()}")
    return in_force[-1]


@dataclass(frozen=True)
class Party:
    """A market partner: 13-digit ID and its NAD code list (9 GS1, 293 BDEW, 332 DVGW)."""

    id: str
    qualifier: str


@dataclass(frozen=True)
class Value:
    """One period's energy: ``status`` "true" or "substitute" (then ``method`` says how), or a
    partner's "proposed" or "preliminary" value."""

    start: int  # epoch seconds (UTC)
    end: int
    kwh: Decimal
    status: str = "true"
    method: str | None = None


@dataclass(frozen=True)
class Series:
    obis: str
    values: tuple[Value, ...]


@dataclass(frozen=True)
class LoadProfile:
    """One MSCONS message: a metering location's series over one period."""

    reference: str  # UNH message reference
    document_number: str  # BGM
    document_date: int  # epoch seconds
    version: str
    check_id: str  # Prüfidentifikator
    sender: Party
    receiver: Party
    melo_id: str
    start: int
    end: int
    series: tuple[Series, ...]


@dataclass(frozen=True)
class Interchange:
    reference: str  # UNB/UNZ control reference
    sender: Party
    receiver: Party
    prepared: int  # epoch seconds, whole minutes (UNB)
    messages: tuple[LoadProfile, ...]


# --- building --------------------------------------------------------------------------------

def _dtm(qualifier: str, ts: int) -> Segment:
    if ts % 60:
        raise ValueError(f"{ts}: MSCONS times are whole minutes")
    return Segment("DTM", [qualifier, datetime.fromtimestamp(ts, UTC).strftime("%Y%m%d%H%M") + "+00", "303"])


def _kwh(value: Decimal) -> str:
    if value < 0:
        raise ValueError(f"{value} kWh: MSCONS energy values are not negative")
    quantized = value.quantize(Decimal("0.001"))
    if quantized != value:
        raise ValueError(f"{value} kWh: at most three decimals")
    return format(quantized.normalize(), "f") if quantized else "0"


def _message_segments(message: LoadProfile) -> Iterator[Segment]:
    yield Segment("BGM", "7", message.document_number, "9")
    yield _dtm("137", message.document_date)
    yield Segment("RFF", ["Z13", message.check_id])
    yield Segment("NAD", "MS", [message.sender.id, "", message.sender.qualifier])
    yield Segment("NAD", "MR", [message.receiver.id, "", message.receiver.qualifier])
    yield Segment("UNS", "D")
    yield Segment("NAD", "DP")
    yield Segment("LOC", "172", message.melo_id)
    yield _dtm("163", message.start)
    yield _dtm("164", message.end)
    for number, series in enumerate(message.series, 1):
        yield Segment("LIN", str(number))
        yield Segment("PIA", "5", [series.obis, "SRW"])
        for value in series.values:
            yield Segment("QTY", [QTY_QUALIFIER[value.status], _kwh(value.kwh), UNIT])
            yield _dtm("163", value.start)
            yield _dtm("164", value.end)
            if value.status == "substitute":
                if value.method not in SUBSTITUTE_METHODS:
                    raise ValueError(f"substitute value at {value.start}: method {value.method!r}, "
                                     f"allowed: {', '.join(SUBSTITUTE_METHODS)}")
                yield Segment("STS", "Z32", "", SUBSTITUTE_METHODS[value.method])


def build(interchange: Interchange) -> str:
    """The interchange as EDIFACT text (UNOC, UNA with ``.`` as decimal mark, one line)."""
    edifact = EdifactInterchange(
        sender=[interchange.sender.id, UNB_QUALIFIER[interchange.sender.qualifier]],
        recipient=[interchange.receiver.id, UNB_QUALIFIER[interchange.receiver.qualifier]],
        control_reference=interchange.reference,
        syntax_identifier=("UNOC", 3),
        timestamp=datetime.fromtimestamp(interchange.prepared, UTC),
        extra_header_elements=["", "TL"],
        characters=Characters(decimal_point="."),
    )
    edifact.has_una_segment = True
    for message in interchange.messages:
        edifact.add_segment(Segment("UNH", message.reference, ["MSCONS", "D", "04B", "UN", message.version]))
        body = list(_message_segments(message))
        edifact.add_segments(body)
        edifact.add_segment(Segment("UNT", str(len(body) + 2), message.reference))
    return edifact.serialize()


# --- parsing ---------------------------------------------------------------------------------

def _element(segment: Segment, index: int, component: int | None = None) -> str:
    try:
        element: Any = segment.elements[index]
    except IndexError:
        raise MsconsError(f"{segment.tag}: element {index + 1} missing in {segment}") from None
    if isinstance(element, list):
        element = element[component or 0] if len(element) > (component or 0) else ""
    elif component:
        element = ""
    return str(element)


def _time(segment: Segment) -> int:
    text, fmt = _element(segment, 0, 1), _element(segment, 0, 2)
    if fmt != "303" or len(text) != 15 or text[12] not in "+-" or not text.replace(text[12], "", 1).isdigit():
        raise MsconsError(f"DTM+{_element(segment, 0)}: {text!r} is not format 303 (CCYYMMDDHHMM+ZZ)")
    try:
        moment = datetime.strptime(text[:12], "%Y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError:
        raise MsconsError(f"DTM+{_element(segment, 0)}: {text!r} is not a valid date and time") from None
    offset_h = int(text[13:]) * (1 if text[12] == "+" else -1)
    return int(moment.timestamp()) - offset_h * 3600


def _number(text: str, decimal_mark: str, where: str) -> Decimal:
    try:
        return Decimal(text.replace(decimal_mark, ".").replace(",", "."))
    except InvalidOperation:
        raise MsconsError(f"{where}: {text!r} is not a number") from None


def _party(segment: Segment) -> Party:
    return Party(_element(segment, 1, 0), _element(segment, 1, 2))


class _MessageReader:
    """Reads one message's segments in order into a :class:`LoadProfile`."""

    def __init__(self, reference: str, version: str, decimal_mark: str) -> None:
        self.reference, self.version, self.decimal_mark = reference, version, decimal_mark
        self.fields: dict[str, Any] = {"check_id": "", "document_number": "", "document_date": 0}
        self.series: list[tuple[str, list[Value]]] = []
        self.in_detail = False
        self.pending: dict[str, Any] | None = None

    def read(self, segment: Segment) -> None:
        tag, qualifier = segment.tag, _element(segment, 0) if segment.elements else ""
        if tag == "BGM":
            self.fields["document_number"] = _element(segment, 1)
        elif tag == "RFF" and qualifier == "Z13":
            self.fields["check_id"] = _element(segment, 0, 1)
        elif tag == "NAD" and qualifier in ("MS", "MR"):
            self.fields["sender" if qualifier == "MS" else "receiver"] = _party(segment)
        elif tag == "UNS":
            self.in_detail = True
        elif tag == "LOC" and qualifier == "172":
            if "melo_id" in self.fields:
                raise RepetitionError(f"message {self.reference}: a second LOC+172 ({_element(segment, 1)} after "
                                      f"{self.fields['melo_id']}); one metering location per message")
            self.fields["melo_id"] = _element(segment, 1)
        elif tag == "LIN":
            self._flush()
            self.series.append(("", []))
        elif tag == "PIA" and self.series:
            self.series[-1] = (_element(segment, 1, 0), self.series[-1][1])
        elif tag == "QTY":
            self._quantity(segment, qualifier)
        elif tag == "DTM":
            self._date(segment, qualifier)
        elif tag == "STS" and self.pending is not None and qualifier == "Z32":
            code = _element(segment, 2)
            self.pending["method"] = METHOD_OF_CODE.get(code, code)

    def _quantity(self, segment: Segment, qualifier: str) -> None:
        if not self.series:
            raise MsconsError(f"{segment}: QTY before any LIN")
        if qualifier not in STATUS_OF_QUALIFIER:
            raise MsconsError(f"{segment}: QTY qualifier {qualifier!r}; read: "
                              + ", ".join(f"{q} ({s})" for q, s in STATUS_OF_QUALIFIER.items()))
        self._flush()
        unit = _element(segment, 0, 2)
        if unit not in ("", UNIT):
            raise MsconsError(f"{segment}: unit {unit!r}; read: {UNIT}")
        kwh = _number(_element(segment, 0, 1), self.decimal_mark, str(segment))
        self.pending = {"kwh": kwh, "status": STATUS_OF_QUALIFIER[qualifier], "method": None}

    def _date(self, segment: Segment, qualifier: str) -> None:
        if qualifier == "137":
            self.fields["document_date"] = _time(segment)
        elif self.pending is not None and qualifier in ("163", "164"):
            self.pending["start" if qualifier == "163" else "end"] = _time(segment)
        elif self.in_detail and not self.series and qualifier in ("163", "164"):
            self.fields["start" if qualifier == "163" else "end"] = _time(segment)

    def _flush(self) -> None:
        if self.pending is None:
            return
        if "start" not in self.pending or "end" not in self.pending:
            raise MsconsError(f"message {self.reference}: a QTY without its DTM+163 and DTM+164")
        self.series[-1][1].append(Value(**self.pending))
        self.pending = None

    def result(self) -> LoadProfile:
        self._flush()
        missing = [k for k in ("sender", "receiver", "melo_id", "start", "end") if k not in self.fields]
        if missing:
            raise MsconsError(f"message {self.reference}: no {', '.join(missing)}")
        series = tuple(Series(obis, tuple(values)) for obis, values in self.series)
        return LoadProfile(reference=self.reference, version=self.version, series=series, **self.fields)


def segments(text: str) -> tuple[list[Segment], str]:
    """The segments (UNA taken off) and the decimal mark (ISO 9735 default: comma).

    Raises :class:`MsconsError` when pydifact cannot read the text as EDIFACT."""
    try:
        with warnings.catch_warnings():
            # pydifact ships no segment directories for UN/EDIFACT service segments; it warns
            # for each one and skips a validation this module does itself.
            warnings.simplefilter("ignore", MissingImplementationWarning)
            warnings.simplefilter("error", SyntaxWarning)  # pydifact's "segment X is empty": broken
            found = list(Parser().parse(text))
    except (EDISyntaxError, ValidationError, SyntaxWarning, ValueError, IndexError) as exc:
        raise MsconsError(f"not a readable EDIFACT interchange: {exc or type(exc).__name__}") from None
    decimal_mark = ","
    if found and found[0].tag == "UNA":
        decimal_mark = str(found.pop(0).elements[0])[2]
    return found, decimal_mark


def _prepared(unb: Segment) -> int:
    stamp = _element(unb, 3, 0) + _element(unb, 3, 1)
    try:
        return int(datetime.strptime(stamp, "%y%m%d%H%M").replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise MsconsError(f"UNB: preparation time {stamp!r} is not YYMMDD:HHMM") from None


def parse(text: str) -> Interchange:
    """Parse an MSCONS interchange (UNA optional; comma or point as decimal mark).

    Raises :class:`MsconsError` naming what is wrong: EDIFACT syntax, a message that is not
    MSCONS, segment or message counts that do not match UNT/UNZ (a file cut short), values
    without their periods.
    """
    found, decimal_mark = segments(text)
    if not found or found[0].tag != "UNB":
        raise MsconsError("the interchange does not begin with UNB (after an optional UNA)")
    if found[-1].tag != "UNZ":
        raise MsconsError("no UNZ at the end: the interchange is cut short")
    unb, unz = found[0], found[-1]
    messages: list[LoadProfile] = []
    reader: _MessageReader | None = None
    count = 0
    for segment in found[1:-1]:
        count += 1
        if segment.tag == "UNH":
            if reader is not None:
                raise MsconsError(f"message {reader.reference}: no UNT before the next UNH")
            kind = segment.elements[1] if len(segment.elements) > 1 else []
            if not isinstance(kind, list) or kind[:1] != ["MSCONS"] or len(kind) < 5:
                raise MsconsError(f"{segment}: not an MSCONS message")
            reader, count = _MessageReader(_element(segment, 0), kind[4], decimal_mark), 1
        elif reader is None:
            raise MsconsError(f"{segment}: outside a message (UNH ... UNT)")
        elif segment.tag == "UNT":
            if _element(segment, 0) != str(count):
                raise MsconsError(f"message {reader.reference}: UNT says {_element(segment, 0)} segments, "
                                  f"the message has {count}")
            messages.append(reader.result())
            reader = None
        else:
            reader.read(segment)
    if reader is not None:
        raise MsconsError(f"message {reader.reference}: no UNT")
    if _element(unz, 0) != str(len(messages)) or _element(unz, 1) != _element(unb, 4):
        raise MsconsError(f"UNZ+{_element(unz, 0)}+{_element(unz, 1)} does not close UNB reference "
                          f"{_element(unb, 4)} with {len(messages)} messages")
    sender, receiver = (Party(_element(unb, n, 0), _NAD_OF_UNB.get(_element(unb, n, 1), _element(unb, n, 1)))
                        for n in (1, 2))
    return Interchange(reference=_element(unb, 4), sender=sender, receiver=receiver,
                       prepared=_prepared(unb), messages=tuple(messages))


def document_day(body: Sequence[Segment], zone: tzinfo) -> date | None:
    """The calendar day in ``zone`` of a message's document date (DTM+137): format 303 with its
    offset, or the date as written in another format (older MIGs wrote 203, CCYYMMDDHHMM without
    an offset); None when the message has no readable one."""
    for segment in body:
        if segment.tag != "DTM" or _element(segment, 0) != "137":
            continue
        if _element(segment, 0, 2) == "303":
            try:
                return datetime.fromtimestamp(_time(segment), zone).date()
            except MsconsError:
                return None
        try:
            return datetime.strptime(_element(segment, 0, 1)[:8], "%Y%m%d").date()
        except ValueError:
            return None
    return None


def check_id(body: Sequence[Segment]) -> str:
    """A message's Prüfidentifikator (RFF+Z13) from its segments, "" when it has none."""
    for segment in body:
        if segment.tag == "RFF" and _element(segment, 0) == "Z13":
            return _element(segment, 0, 1)
    return ""


def read_message(unh: Segment, body: Sequence[Segment], decimal_mark: str) -> LoadProfile:
    """One message's content from its UNH and the segments between UNH and UNT (for a reader that
    checks the envelope itself, like the aggregator's gateway)."""
    kind = unh.elements[1] if len(unh.elements) > 1 else []
    version = kind[4] if isinstance(kind, list) and len(kind) > 4 else ""
    reader = _MessageReader(_element(unh, 0), str(version), decimal_mark)
    for segment in body:
        reader.read(segment)
    return reader.result()


def values_of(interchange: Interchange, obis: str) -> Sequence[Value]:
    """Every value of ``obis`` across the interchange's messages, in file order."""
    return [v for m in interchange.messages for s in m.series if s.obis == obis for v in s.values]
