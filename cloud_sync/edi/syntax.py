"""The syntax check of a received interchange: what a CONTRL answers.

Reads the bytes as UNOC (ISO 8859-1), the UNA service string advice (any separators, point or
comma as decimal mark), then the envelope: UNB first (syntax UNOC:3, sender, receiver,
reference), UNZ last with the number of messages and UNB's reference, and each message between
UNH and UNT with UNT's segment count and UNH's reference. A fault of the interchange rejects
it whole; a fault of one message rejects that message only (CONTRL: UCI acknowledged, UCM
rejected). Pure: the duplicate check, which needs the database, is the pipeline's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pydifact.segments import Segment

from cloud_sync.edi.codes import Syntax
from common import mscons

MESSAGE_TYPE = ("MSCONS", "D", "04B", "UN")  # UNH S009 0065, 0052, 0054, 0051
DECIMAL_MARKS = (".", ",")


@dataclass(frozen=True)
class Fault:
    """One syntax error: DE 0085 code, the service segment it concerns (DE 0135), what is wrong."""

    code: Syntax
    segment: str
    text: str


@dataclass(frozen=True)
class Address:
    """A UNB sender or receiver: its ID and the UNB code list qualifier (14, 500, 502)."""

    id: str
    qualifier: str


@dataclass(frozen=True)
class Message:
    """One message's envelope and body; ``fault`` set when CONTRL rejects it."""

    reference: str
    kind: tuple[str, ...]  # UNH S009 as written
    unh: Segment
    body: tuple[Segment, ...]
    fault: Fault | None = None


@dataclass(frozen=True)
class Report:
    """What the syntax check found; ``fault`` set when the interchange is rejected whole."""

    reference: str
    sender: Address
    receiver: Address
    messages: tuple[Message, ...]
    decimal_mark: str
    fault: Fault | None = None

    @property
    def accepted_messages(self) -> tuple[Message, ...]:
        return () if self.fault else tuple(m for m in self.messages if m.fault is None)

    def rejected(self, fault: Fault) -> Report:
        return replace(self, fault=fault)


_UNKNOWN = Address("", "")


def _text(element: Any, component: int = 0) -> str:
    if isinstance(element, list):
        return str(element[component]) if len(element) > component else ""
    return str(element) if component == 0 else ""


def _field(segment: Segment, index: int, component: int = 0) -> str:
    return _text(segment.elements[index], component) if len(segment.elements) > index else ""


def _failed(fault: Fault, decimal_mark: str = ",", reference: str = "", sender: Address = _UNKNOWN,
            receiver: Address = _UNKNOWN) -> Report:
    return Report(reference, sender, receiver, (), decimal_mark, fault)


def _una_fault(text: str) -> Fault | None:
    advice = text[3:9]
    if len(advice) < 6:
        return Fault(Syntax.INVALID_SERVICE_CHARACTER, "UNA", f"UNA: {advice!r} has fewer than the 6 service characters")
    component, data, decimal, release, terminator = advice[0], advice[1], advice[2], advice[3], advice[5]
    separators = (component, data, release, terminator)
    if len(set(separators)) != 4:
        return Fault(Syntax.INVALID_SERVICE_CHARACTER, "UNA",
                     f"UNA: the separators {separators!r} are not four different characters")
    if decimal not in DECIMAL_MARKS or decimal in separators:
        return Fault(Syntax.INVALID_SERVICE_CHARACTER, "UNA",
                     f"UNA: decimal mark {decimal!r}; allowed: '.' or ',' (and not a separator)")
    return None


def check(data: bytes) -> Report:
    """The syntax check of ``data`` (the interchange as received)."""
    text = data.decode("latin-1")  # UNOC is ISO 8859-1: every byte is a character
    for position, char in enumerate(text):
        if (ord(char) < 0x20 and char not in "\r\n") or 0x7F <= ord(char) < 0xA0:
            return _failed(Fault(Syntax.INVALID_CHARACTERS, "UNB",
                                 f"byte {position}: control character {ord(char):#04x} is not in UNOC"))
    text = text.replace("\r", "").replace("\n", "")
    if not text.startswith(("UNA", "UNB")):
        return _failed(Fault(Syntax.MISSING, "UNB", f"no UNB: the interchange begins with {text[:12]!r}, "
                                                    "it must begin with UNA or UNB"))
    if text.startswith("UNA") and (fault := _una_fault(text)):
        return _failed(fault)
    try:
        segments, decimal_mark = mscons.segments(text)
    except mscons.MsconsError as exc:
        return _failed(Fault(Syntax.UNSPECIFIED, "UNB", str(exc)))
    if not segments or segments[0].tag != "UNB":
        return _failed(Fault(Syntax.MISSING, "UNB", "no UNB: the interchange must begin with it (after an optional UNA)"),
                       decimal_mark)
    return _envelope(segments, decimal_mark)


def _envelope(segments: list[Segment], decimal_mark: str) -> Report:
    unb = segments[0]
    reference = _field(unb, 4)
    sender = Address(_field(unb, 1), _field(unb, 1, 1))
    receiver = Address(_field(unb, 2), _field(unb, 2, 1))

    def failed(code: Syntax, segment: str, text: str) -> Report:
        return _failed(Fault(code, segment, text), decimal_mark, reference, sender, receiver)

    syntax = (_field(unb, 0), _field(unb, 0, 1))
    if syntax != ("UNOC", "3"):
        return failed(Syntax.SYNTAX_VERSION, "UNB", f"UNB syntax identifier {':'.join(syntax)!r}; supported: UNOC:3")
    for name, value in (("sender", sender.id), ("receiver", receiver.id), ("reference", reference)):
        if not value:
            return failed(Syntax.MISSING, "UNB", f"UNB: no interchange {name}")
    if segments[-1].tag != "UNZ":
        return failed(Syntax.MISSING, "UNZ", "no UNZ at the end: the interchange is cut short")
    messages, outside = _messages(segments[1:-1])
    if outside is not None:
        return failed(Syntax.OUTSIDE_MESSAGE, "UNZ", f"segment {outside.tag} outside a message (UNH ... UNT)")
    unz = segments[-1]
    if _field(unz, 1) != reference:
        return failed(Syntax.REFERENCES_DO_NOT_MATCH, "UNZ",
                      f"UNZ reference {_field(unz, 1)!r} does not close UNB reference {reference!r}")
    if _field(unz, 0) != str(len(messages)):
        return failed(Syntax.COUNT_MISMATCH, "UNZ",
                      f"UNZ counts {_field(unz, 0)!r} messages, the interchange has {len(messages)}")
    if not messages:
        return failed(Syntax.LOWER_LEVEL_EMPTY, "UNZ", "the interchange holds no message")
    return Report(reference, sender, receiver, tuple(messages), decimal_mark)


def _messages(segments: list[Segment]) -> tuple[list[Message], Segment | None]:
    """The messages, and the first segment found outside any (None: there is none)."""
    messages: list[Message] = []
    open_unh: Segment | None = None
    body: list[Segment] = []
    for segment in segments:
        if segment.tag == "UNH":
            if open_unh is not None:
                messages.append(_message(open_unh, body, None))
            open_unh, body = segment, []
        elif open_unh is None:
            return messages, segment
        elif segment.tag == "UNT":
            messages.append(_message(open_unh, body, segment))
            open_unh = None
        else:
            body.append(segment)
    if open_unh is not None:
        messages.append(_message(open_unh, body, None))
    return messages, None


def _message(unh: Segment, body: list[Segment], unt: Segment | None) -> Message:
    reference = _field(unh, 0)
    kind = tuple(unh.elements[1]) if len(unh.elements) > 1 and isinstance(unh.elements[1], list) else (
        (_field(unh, 1),) if len(unh.elements) > 1 else ())
    message = Message(reference, tuple(str(k) for k in kind), unh, tuple(body))

    def fault(code: Syntax, segment: str, text: str) -> Message:
        return replace(message, fault=Fault(code, segment, f"message {reference}: {text}"))

    if unt is None:
        return fault(Syntax.MISSING, "UNT", "no UNT before the next UNH or UNZ")
    if not reference:
        return fault(Syntax.MISSING, "UNH", "UNH without a message reference")
    if message.kind[:4] != MESSAGE_TYPE or len(message.kind) < 5:
        return fault(Syntax.VALUE_NOT_SUPPORTED, "UNH",
                     f"message type {':'.join(message.kind)!r}; supported: {':'.join(MESSAGE_TYPE)}:<MIG version>")
    if _field(unt, 1) != reference:
        return fault(Syntax.REFERENCES_DO_NOT_MATCH, "UNT", f"UNT reference {_field(unt, 1)!r} does not close UNH {reference!r}")
    count = _field(unt, 0)
    if not count.isdigit():
        return fault(Syntax.INVALID_VALUE, "UNT", f"UNT segment count {count!r} is not a number")
    if int(count) != len(body) + 2:
        return fault(Syntax.COUNT_MISMATCH, "UNT", f"UNT counts {count} segments, the message has {len(body) + 2}")
    return message
