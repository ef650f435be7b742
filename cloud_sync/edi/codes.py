"""The codes the gateway answers with, and where each comes from.

CONTRL (syntax): action codes DE 0083 and syntax error codes DE 0085 of ISO 9735 (UN/EDIFACT
service code list, syntax version 4; the same values the German CONTRL/APERAK AHB lists). Seen
in public copies: stedi.com's UN/EDIFACT reference for DE 0083 and DE 0085, and the code tables
of a public EDIFACT viewer that cites "CONTRL / APERAK Anwendungshandbuch, Version 2.4a, Stand
MIG APERAK 2.1i / CONTRL 2.0b, Publikationsdatum 01.10.2024, Autor BDEW".

APERAK (application): DE 9321 "Anwendungsfehler, Code", a BDEW code list (the UN directory
defines none for DE 9321), chapter "Fehlercodes in ERC-Segment einer APERAK-Nachricht" of the
same AHB 2.4a, as reproduced by that viewer and by the docs of the ``mako-engine`` crate
("verbatim from the APERAK MIG 2.1i code table"). Which of them the APERAK AHB admits for a
given Anwendungsfall, and the exact wording, we could not check against the PDF itself.
"""

from __future__ import annotations

from enum import StrEnum

CONTRL_VERSION = ("CONTRL", "D", "3", "UN", "2.0b")  # UNH S009 of the CONTRL MIG 2.0b
APERAK_VERSION = ("APERAK", "D", "07B", "UN", "2.1i")  # UNH S009 of the APERAK MIG 2.1i


class Action(StrEnum):
    """DE 0083 Action, coded."""

    REJECTED = "4"  # this level and all lower levels rejected
    ACKNOWLEDGED = "7"  # this level acknowledged, lower levels acknowledged unless rejected


class Syntax(StrEnum):
    """DE 0085 Syntax error, coded: the ones this gateway reports."""

    SYNTAX_VERSION = "2"  # syntax version or level not supported (not UNOC:3)
    INVALID_VALUE = "12"  # e.g. a segment count that is not a number
    MISSING = "13"  # a mandatory service segment or element is missing (UNB, UNT, UNZ ...)
    VALUE_NOT_SUPPORTED = "14"  # value not supported in this position (a message type not MSCONS)
    UNSPECIFIED = "18"  # the text cannot be read as EDIFACT at all
    INVALID_SERVICE_CHARACTER = "20"  # character invalid as service character (UNA)
    INVALID_CHARACTERS = "21"  # control characters in the interchange
    DUPLICATE = "26"  # duplicate detected (an interchange reference received before)
    REFERENCES_DO_NOT_MATCH = "28"  # UNZ/UNB or UNT/UNH references differ
    COUNT_MISMATCH = "29"  # control count (UNT segments, UNZ messages) does not match
    LOWER_LEVEL_EMPTY = "32"  # an interchange without messages
    OUTSIDE_MESSAGE = "33"  # invalid occurrence outside message (a segment between UNT and UNH)


class Erc(StrEnum):
    """DE 9321 Anwendungsfehler, Code: the ones this gateway reports, with their BDEW meaning."""

    ID_UNKNOWN = "Z10"  # ID unbekannt
    SENDER_NOT_ASSIGNED = "Z17"  # Absender ist zum angegebenen Zeitintervall dem Objekt nicht zugeordnet
    RECEIVER_NOT_ASSIGNED = "Z18"  # Empfänger ist zum angegebenen Zeitintervall dem Objekt nicht zugeordnet
    OBIS_UNKNOWN = "Z20"  # OBIS-Kennzahl zum angegebenen Zeitintervall am Objekt nicht bekannt
    REQUIRED_MISSING = "Z29"  # Erforderliche Angabe für diesen Anwendungsfall fehlt
    TIME_SERIES_INCOMPLETE = "Z30"  # Zeitreihe unvollständig
    REJECTED_BY_RECEIVER = "Z31"  # Geschäftsvorfall wird vom Empfänger zurückgewiesen
    INTERVAL_NOT_POSITIVE = "Z34"  # Zeitintervall negativ oder Null
    FORMAT = "Z35"  # Format nicht eingehalten
    CODE_NOT_ALLOWED = "Z39"  # Code nicht aus erlaubtem Wertebereich
    REPETITION = "Z40"  # Segment- bzw. Segmentgruppenwiederholbarkeit überschritten
    TIME_IMPLAUSIBLE = "Z41"  # Zeitangabe unplausibel


#: Codes whose APERAK must say where in the message the error is (SG5 FTX+Z02 "Ortsangabe
#: des AHB-Fehlers"); from the mako-engine docs quoting APERAK AHB 1.0 Nr 00017.
NEEDS_LOCATION = frozenset({"Z29", "Z35", "Z38", "Z39", "Z40", "Z41"})

# What each application check answers (see cloud_sync/edi/checks.py):
# - unknown MaLo/MeLo: Z10; malformed one (length, check digit): Z35;
# - sender / receiver not a registered partner (or the device not the location's): Z17 / Z18;
# - OBIS code not one of a load profile's: Z20;
# - a quarter-hour missing or the series not covering the period: Z30; overlapping, misaligned
#   or not 15-minute values, a period ending after the document date, a document dated after the
#   file arrived (beyond checks.CLOCK_SKEW_S): Z41; an empty or
#   negative period: Z34;
# - Prüfidentifikator not a load profile's: Z39; MIG version (UNH DE 0057) not in force on the
#   document date: Z39 alone (checked first, the rest of such a message is not checked);
# - a message that cannot be read (a quantity that is not a number, a QTY without its period, a
#   QTY qualifier not read): Z35; a second metering location (SG5/SG6) in one message: Z40;
# - a document number (BGM) the sender used before: Z31. The code list has no code for a
#   duplicate; Z31 ("rejected by the receiver") with the text naming the earlier file is our
#   choice. A duplicate *interchange* reference is a CONTRL matter: DE 0085 code 26.
