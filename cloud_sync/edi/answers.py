"""The gateway's answers as EDIFACT (built with pydifact): CONTRL for the syntax, APERAK for the
application checks. The answer goes from the interchange's receiver back to its sender.

CONTRL (MIG 2.0b)::

    UNH+1+CONTRL:D:3:UN:2.0b'
    UCI+<their UNB ref>+<their sender>:<q>+<their receiver>:<q>+<7 acknowledged | 4 rejected>[+<DE0085>+<segment>]'
    UCM+<their UNH ref>+MSCONS:D:04B:UN:<version>+4+<DE0085>+<segment>'      one per rejected message
    UNT+..+1'

APERAK (MIG 2.1i), one message per rejected MSCONS message::

    UNH+<n>+APERAK:D:07B:UN:2.1i'
    BGM+313+<our document number>'          313: Verarbeitbarkeitsfehlermeldung
    DTM+137:<now>?+00:303'
    RFF+ACE:<their BGM document number>'    RFF+ACW:<their UNH reference>'
    NAD+MR+<their sender>::<q>'  NAD+MS+<their receiver>::<q>'
    ERC+<DE9321>'  FTX+Z02+++<where>'  FTX+AAO+++<what>'     per finding (Z02 where the code needs it)
    UNT+..+<n>'
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from pydifact.control import Characters
from pydifact.segmentcollection import Interchange
from pydifact.segments import Segment

from cloud_sync.edi.checks import Checked
from cloud_sync.edi.codes import APERAK_VERSION, CONTRL_VERSION, NEEDS_LOCATION, Action
from cloud_sync.edi.syntax import Address, Report
from common.market_ids import UNB_QUALIFIER

_NAD_OF_UNB = {unb: nad for nad, unb in UNB_QUALIFIER.items()}
_FTX_MAX = 512  # DE 4440 an..512


def _interchange(report: Report, reference: str, now: int) -> Interchange:
    ours, theirs = report.receiver, report.sender
    edifact = Interchange(
        sender=[ours.id, ours.qualifier], recipient=[theirs.id, theirs.qualifier],
        control_reference=reference, syntax_identifier=("UNOC", 3),
        timestamp=datetime.fromtimestamp(now, UTC), characters=Characters(decimal_point="."),
    )
    edifact.has_una_segment = True
    return edifact


def _message(edifact: Interchange, reference: str, kind: Sequence[str], body: list[Segment]) -> None:
    edifact.add_segment(Segment("UNH", reference, list(kind)))
    edifact.add_segments(body)
    edifact.add_segment(Segment("UNT", str(len(body) + 2), reference))


def _party(address: Address) -> list[str]:
    return [address.id, address.qualifier]


def contrl(report: Report, reference: str, now: int) -> str:
    """The CONTRL for ``report``: the interchange acknowledged (7) or rejected (4) with its error,
    and a UCM for each message rejected."""
    body: list[Segment] = []
    sender, receiver = _party(report.sender), _party(report.receiver)
    if report.fault is not None:
        body.append(Segment("UCI", report.reference, sender, receiver, Action.REJECTED.value,
                            report.fault.code.value, report.fault.segment))
    else:
        body.append(Segment("UCI", report.reference, sender, receiver, Action.ACKNOWLEDGED.value))
        for message in report.messages:
            if message.fault is not None:
                body.append(Segment("UCM", message.reference, list(message.kind), Action.REJECTED.value,
                                    message.fault.code.value, message.fault.segment))
    edifact = _interchange(report, reference, now)
    _message(edifact, "1", CONTRL_VERSION, body)
    return str(edifact.serialize())


def aperak(report: Report, rejected: Sequence[Checked], reference: str, now: int) -> str | None:
    """The APERAK for the messages the application checks rejected (None: none was)."""
    if not rejected:
        return None
    edifact = _interchange(report, reference, now)
    for number, checked in enumerate(rejected, 1):
        _message(edifact, str(number), APERAK_VERSION, list(_aperak_body(report, checked, f"{reference}-{number}", now)))
    return str(edifact.serialize())


def _aperak_body(report: Report, checked: Checked, document: str, now: int) -> Iterator[Segment]:
    yield Segment("BGM", "313", document)
    yield Segment("DTM", ["137", datetime.fromtimestamp(now, UTC).strftime("%Y%m%d%H%M") + "+00", "303"])
    profile = checked.profile
    if profile is not None and profile.document_number:
        yield Segment("RFF", ["ACE", profile.document_number])
    yield Segment("RFF", ["ACW", checked.message.reference])
    their = (profile.sender.id, profile.sender.qualifier) if profile else (
        report.sender.id, _NAD_OF_UNB.get(report.sender.qualifier, ""))
    ours = (profile.receiver.id, profile.receiver.qualifier) if profile else (
        report.receiver.id, _NAD_OF_UNB.get(report.receiver.qualifier, ""))
    yield Segment("NAD", "MR", [their[0], "", their[1]])
    yield Segment("NAD", "MS", [ours[0], "", ours[1]])
    for finding in checked.findings:
        yield Segment("ERC", finding.code.value)
        if finding.code.value in NEEDS_LOCATION:
            yield Segment("FTX", "Z02", "", "", finding.where[:_FTX_MAX])
        yield Segment("FTX", "AAO", "", "", finding.text[:_FTX_MAX])
