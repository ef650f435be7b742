"""The MSCONS parser in common/: interchanges written by others (UNA, comma decimals, several
messages) and broken ones, refused with a message saying where."""

from __future__ import annotations

import contextlib
import warnings
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import hypothesis
import pytest
from hypothesis import strategies as st

from common import mscons

# Written by hand on purpose: another sender's layout (comma decimals, no unit, two messages,
# a BDEW sender and a GS1 receiver), which our own builder never produces.
FOREIGN = (
    "UNA:+,? '"
    "UNB+UNOC:3+9900000000003:500+4012345000009:14+261102:0605+R1++TL'"
    "UNH+M1+MSCONS:D:04B:UN:2.4c'BGM+7+DOC1+9'DTM+137:202611020605?+00:303'RFF+Z13:13018'"
    "NAD+MS+9900000000003::293'NAD+MR+4012345000009::9'UNS+D'NAD+DP'"
    "LOC+172+DE0001234567890000000000000000001'DTM+163:202610312300?+00:303'DTM+164:202610312330?+00:303'"
    "LIN+1'PIA+5+1-1?:1.29.0:SRW'"
    "QTY+220:1,25'DTM+163:202610312300?+00:303'DTM+164:202610312315?+00:303'"
    "QTY+67:0,5:KWH'DTM+163:202610312315?+00:303'DTM+164:202610312330?+00:303'STS+Z32++Z92'"
    "UNT+21+M1'"
    "UNH+M2+MSCONS:D:04B:UN:2.5'BGM+7+DOC2+9'DTM+137:202611020605?+01:303'"
    "NAD+MS+9900000000003::293'NAD+MR+4012345000009::9'UNS+D'NAD+DP'"
    "LOC+172+DE0001234567890000000000000000002'DTM+163:202610312300?+00:303'DTM+164:202610312315?+00:303'"
    "LIN+1'PIA+5+1-1?:2.29.0:SRW'QTY+220:0,004'DTM+163:202610312300?+00:303'DTM+164:202610312315?+00:303'"
    "UNT+16+M2'"
    "UNZ+2+R1'"
)


def utc(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp())


def test_foreign_interchange_with_una_and_comma_decimal_mark() -> None:
    parsed = mscons.parse(FOREIGN)
    assert parsed.reference == "R1"
    assert parsed.sender == mscons.Party("9900000000003", "293")
    assert parsed.receiver == mscons.Party("4012345000009", "9")
    one, two = parsed.messages
    assert (one.version, two.version, one.check_id) == ("2.4c", "2.5", "13018")
    assert one.document_date == utc(2026, 11, 2, 6, 5)
    assert two.document_date == utc(2026, 11, 2, 5, 5)  # the same clock time at +01
    (imports,) = one.series
    assert imports.obis == mscons.OBIS_IMPORT
    assert imports.values == (
        mscons.Value(utc(2026, 10, 31, 23, 0), utc(2026, 10, 31, 23, 15), Decimal("1.25"), "true"),
        mscons.Value(utc(2026, 10, 31, 23, 15), utc(2026, 10, 31, 23, 30), Decimal("0.5"), "substitute", "interpolated"),
    )
    assert mscons.values_of(parsed, mscons.OBIS_EXPORT)[0].kwh == Decimal("0.004")


def test_without_una_the_comma_is_the_decimal_mark() -> None:
    parsed = mscons.parse(FOREIGN.removeprefix("UNA:+,? '"))
    assert mscons.values_of(parsed, mscons.OBIS_IMPORT)[0].kwh == Decimal("1.25")


def test_point_decimal_mark_declared_in_una_is_read() -> None:
    text = FOREIGN.replace("UNA:+,? '", "UNA:+.? '").replace("1,25", "1.25")
    assert mscons.values_of(mscons.parse(text), mscons.OBIS_IMPORT)[0].kwh == Decimal("1.25")


@pytest.mark.parametrize(("broken", "message"), [
    (FOREIGN[: FOREIGN.index("UNZ")], "no UNZ at the end: the interchange is cut short"),
    (FOREIGN.replace("UNT+21+M1", "UNT+20+M1"), "message M1: UNT says 20 segments, the message has 21"),
    (FOREIGN.replace("UNZ+2+R1", "UNZ+3+R1"), "UNZ\\+3\\+R1 does not close UNB reference R1 with 2 messages"),
    (FOREIGN.replace("MSCONS:D:04B:UN:2.5", "UTILMD:D:11A:UN:5.2"), "not an MSCONS message"),
    (FOREIGN.replace("QTY+220:1,25'DTM+163:202610312300?+00:303'", "QTY+220:1,25'"),
     "message M1: a QTY without its DTM\\+163 and DTM\\+164"),
    (FOREIGN.replace("QTY+220:1,25", "QTY+220:x"), "'x' is not a number"),
    (FOREIGN.replace("QTY+220:0,004", "QTY+999:0,004"), "QTY qualifier '999'"),
    (FOREIGN.replace("DTM+137:202611020605?+00:303", "DTM+137:20261102:102"), "is not format 303"),
    ("hello", "not a readable EDIFACT interchange: .*Unexpected end"),
    (FOREIGN[FOREIGN.index("UNH"):], "does not begin with UNB"),
])
def test_broken_interchanges_are_refused_saying_where(broken: str, message: str) -> None:
    with pytest.raises(mscons.MsconsError, match=message):
        mscons.parse(broken)


def test_builder_refuses_values_it_cannot_write() -> None:
    party = mscons.Party("9900000000003", "293")
    value = mscons.Value(0, 900, Decimal("0.0005"))
    profile = mscons.LoadProfile("1", "1", 0, "2.4c", "13018", party, party, "DE" + "0" * 31, 0, 900,
                                 (mscons.Series(mscons.OBIS_IMPORT, (value,)),))
    with pytest.raises(ValueError, match="at most three decimals"):
        mscons.build(mscons.Interchange("1", party, party, 0, (profile,)))


def readme_example() -> str:
    """The example interchange in docs/edi.md: what the builder writes for these inputs, one segment a line."""
    sender, receiver = mscons.Party("9900000000003", "293"), mscons.Party("9800000000007", "332")
    start = utc(2026, 10, 31, 23, 0)

    def series(obis: str, kwh: tuple[str, str]) -> mscons.Series:
        first = mscons.Value(start, start + 900, Decimal(kwh[0]))
        second = mscons.Value(start + 900, start + 1800, Decimal(kwh[1]), "substitute", "interpolated")
        return mscons.Series(obis, (first, second))

    message = mscons.LoadProfile(
        "42", "MSCONS00000042", utc(2026, 11, 2, 1, 10), mscons.mig_version(datetime(2026, 11, 2).date()),
        mscons.CHECK_ID_LOAD_PROFILE, sender, receiver, "DE0001234567890000000000000000001", start, start + 1800,
        (series(mscons.OBIS_IMPORT, ("0.213", "0.198")), series(mscons.OBIS_EXPORT, ("0", "0.005"))),
    )
    text = mscons.build(mscons.Interchange("42", sender, receiver, utc(2026, 11, 2, 1, 10), (message,)))
    return text.replace("'", "'\n")


def test_the_documented_example_is_what_the_builder_writes() -> None:
    readme = (Path(__file__).resolve().parents[2] / "docs" / "edi.md").read_text()
    block = readme.split("<!-- mscons-example -->\n```\n", 1)[1].split("```", 1)[0]
    assert block == readme_example()
    assert mscons.parse(block.replace("\n", "")).messages[0].series[1].values[1].kwh == Decimal("0.005")


@hypothesis.settings(derandomize=True, max_examples=300, deadline=None, database=None)
@hypothesis.given(cut=st.integers(0, len(FOREIGN)), at=st.integers(0, len(FOREIGN) - 1),
                  char=st.sampled_from(list("+:'?,.0123456789AZ ")))
def test_damaged_interchanges_parse_or_are_refused_never_crash(cut: int, at: int, char: str) -> None:
    for damaged in (FOREIGN[:cut], FOREIGN[:at] + char + FOREIGN[at + 1:], FOREIGN[:at] + FOREIGN[at + 1:]):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with contextlib.suppress(mscons.MsconsError):
                mscons.parse(damaged)
