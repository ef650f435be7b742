"""The gateway's pure parts: syntax check → CONTRL, application checks → APERAK codes, and the
reconciliation arithmetic. Each hand-broken file fails exactly the check it was broken for."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from cloud_sync.edi import answers, checks, reconcile, syntax
from common import mscons
from tests.cloud_sync.edi_files import (
    DEVICE_PARTY, FIXTURE_MELO, FIXTURES, GRID, MALO, MELO, build, context, day_file, day_start,
    fixture_context, profile, with_values,
)

DAY = date(2026, 6, 15)


def findings(text: str, ctx: checks.Context | None = None) -> list[tuple[str, str]]:
    report = syntax.check(text.encode("latin-1"))
    assert report.fault is None and all(m.fault is None for m in report.messages), report
    seen: set[tuple[str, str]] = set()
    checked = [checks.check(m, report.decimal_mark, ctx or context(), seen) for m in report.messages]
    return [(f.code.value, f.text) for c in checked for f in c.findings]


def codes(text: str, ctx: checks.Context | None = None) -> list[str]:
    return [code for code, _ in findings(text, ctx)]


@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25), DAY, date(2026, 12, 31)])
def test_a_device_day_passes_every_check_clock_changes_included(day: date) -> None:
    assert findings(day_file(day)) == []
    assert findings(day_file(day, substitute_every=7)) == []


def test_several_messages_and_comma_decimal_mark() -> None:
    text = build(profile(DAY, 8), profile(date(2026, 6, 16), 9), reference="8")
    comma = text.replace("UNA:+.? '", "UNA:+,? '").replace("0.", "0,").replace("1.29", "1.29")
    # Only QTY values carry a decimal mark in these files; OBIS codes keep their points.
    assert "QTY+220:0,125:KWH" in comma
    report = syntax.check(comma.encode())
    assert (report.decimal_mark, len(report.accepted_messages)) == (",", 2)
    assert findings(comma) == []
    seen: set[tuple[str, str]] = set()
    parsed = checks.check(report.messages[0], report.decimal_mark, context(), seen).profile
    assert parsed is not None and parsed.series[0].values[0].kwh == Decimal("0.125")


@pytest.mark.parametrize(("broken", "code", "says"), [
    # unknown or mistyped metering location
    (lambda: day_file(DAY, melo="DE0001234567890000000000000000002"), "Z10", "is not a registered metering location"),
    (lambda: day_file(DAY).replace(MELO, "DE000123456789000000000000000000a"), "Z35", "the 33rd character 'a' is wrong"),
    (lambda: day_file(DAY).replace(MELO, MALO[:10]), "Z35", "10 characters, a MeLo-ID has 33"),
    (lambda: day_file(DAY).replace(MELO, MALO[:10] + "2").replace("13018", "13025"), "Z35",
     "the check digit (11th) is 2, it should be 1"),
    # unknown partners
    (lambda: day_file(DAY, sender=mscons.Party("9900000000011", "293")), "Z17", "sender 9900000000011 is not a registered"),
    (lambda: day_file(DAY, receiver=mscons.Party("9800000000014", "332")), "Z18", "receiver 9800000000014 is not a registered"),
    (lambda: day_file(DAY, sender=mscons.Party("9900000000005", "293")), "Z35", "the check digit (13th) is 5, it should be 3"),
    # wrong OBIS
    (lambda: day_file(DAY).replace("1-1?:2.29.0", "1-1?:2.8.0"), "Z20", "OBIS code '1-1:2.8.0'"),
    # interval gap, overlap, misalignment
    (lambda: build(with_values(profile(DAY), mscons.OBIS_IMPORT, profile(DAY).series[0].values[:40]
                               + profile(DAY).series[0].values[41:])), "Z30", "quarter-hours"),
    (lambda: build(with_values(profile(DAY), mscons.OBIS_IMPORT, profile(DAY).series[0].values[:41]
                               + profile(DAY).series[0].values[40:])), "Z41", "overlaps"),
    (lambda: build(with_values(profile(DAY), mscons.OBIS_IMPORT, tuple(
        replace(v, start=v.start + 300, end=v.end + 300) for v in profile(DAY).series[0].values))), "Z41",
     "not one quarter-hour on the quarter-hour grid"),
    (lambda: build(with_values(profile(DAY), mscons.OBIS_EXPORT, profile(DAY).series[1].values[:-1])), "Z30",
     "values end"),
    # period after the document date
    (lambda: day_file(DAY, document_date=day_start(DAY) + 3600), "Z41", "after the document date"),
    # version not valid on the document date (2.5 before 2026-10-01, 2.4c after)
    (lambda: day_file(DAY).replace(":2.4c'", ":2.5'"), "Z39", "MIG version '2.5' is not in force on the document date 2026-06-16"),
    (lambda: day_file(date(2026, 10, 5)).replace(":2.5'", ":2.4c'"), "Z39", "'2.5' is"),
    # not a load profile
    (lambda: day_file(DAY).replace("RFF+Z13:13018", "RFF+Z13:13017"), "Z39", "Prüfidentifikator 13017"),
    # the version comes first: a message of another MIG is not checked further (wrong OBIS too)
    (lambda: day_file(DAY).replace(":2.4c'", ":2.5'").replace("1-1?:2.29.0", "1-1?:2.8.0"), "Z39", "'2.4c' is"),
    # the versions before: 2.4b until 2024-04-02, 2.4c from 2024-04-03 (German days) ...
    (lambda: day_file(date(2024, 4, 1)).replace(":2.4b'", ":2.4c'"), "Z39",
     "MIG version '2.4c' is not in force on the document date 2024-04-02; '2.4b' is"),
    (lambda: day_file(date(2024, 4, 2)).replace(":2.4c'", ":2.4b'"), "Z39",
     "MIG version '2.4b' is not in force on the document date 2024-04-03; '2.4c' is"),
    # ... and none on record before 2023-10-01
    (lambda: re.sub(r"DTM\+137:\d{12}", "DTM+137:202309301200", day_file(DAY)), "Z39",
     "MIG version '2.4c': no MSCONS MIG version on record for 2023-09-30; the first known is 2.4b, from 2023-10-01"),
    # the document date's German day decides: 22:30 UTC on 30 September is 1 October in Germany
    (lambda: day_file(date(2026, 9, 29), document_date=int(datetime(2026, 9, 30, 22, 30, tzinfo=UTC).timestamp()))
     .replace(":2.5'", ":2.4c'"), "Z39", "MIG version '2.4c' is not in force on the document date 2026-10-01; '2.5' is"),
])
def test_each_hand_broken_file_gets_its_aperak_code(broken: object, code: str, says: str) -> None:
    found = findings(broken())  # type: ignore[operator]
    assert [c for c, _ in found] == [code], found
    assert says in found[0][1]


# Another sender's layout, written by hand after the public MIG 2.4c examples of a market-
# location load profile (13025, BGM Z48): comma decimal mark, segments on their own lines,
# contact details (CTA/COM), a request reference (RFF+AGI), times at +01, quantities without a
# unit, a substitute value with its method and reason, two messages of which one has the
# location's MaLo-ID and the other its MeLo-ID.
PARTNER_LAYOUT = """UNA:+,? '
UNB+UNOC:3+9800000000007:502+9900000000003:500+260616:0705+P4711++TL'
UNH+M1+MSCONS:D:04B:UN:2.4c'
BGM+Z48+LG4711-1+9'
DTM+137:202606160805?+01:303'
RFF+AGI:AFN9523'
RFF+Z13:13025'
NAD+MS+9800000000007::332'
CTA+IC+:Max Mustermann'
COM+messwerte@msb.example:EM'
NAD+MR+9900000000003::293'
UNS+D'
NAD+DP'
LOC+172+51238696781'
DTM+163:202606150000?+01:303'
DTM+164:202606150030?+01:303'
LIN+1'
PIA+5+1-0?:1.29.0:SRW'
QTY+220:0,25'
DTM+163:202606150000?+01:303'
DTM+164:202606150015?+01:303'
QTY+67:0,125'
DTM+163:202606150015?+01:303'
DTM+164:202606150030?+01:303'
STS+Z32++Z92'
STS+Z40++Z75'
UNT+25+M1'
UNH+M2+MSCONS:D:04B:UN:2.4c'
BGM+7+LG4711-2+9'
DTM+137:202606160805?+01:303'
RFF+Z13:13018'
NAD+MS+9800000000007::332'
NAD+MR+9900000000003::293'
UNS+D'
NAD+DP'
LOC+172+DE0001234567890000000000000000001'
DTM+163:202606142200?+00:303'
DTM+164:202606142215?+00:303'
LIN+1'
PIA+5+1-1?:2.29.0:SRW'
QTY+220:0'
DTM+163:202606142200?+00:303'
DTM+164:202606142215?+00:303'
UNT+17+M2'
UNZ+2+P4711'
"""


def test_another_senders_layout_is_read_as_written() -> None:
    text = PARTNER_LAYOUT.replace("\n", "\r\n")
    assert findings(text, context(device=None)) == []
    report = syntax.check(text.encode())
    first = checks.check(report.messages[0], report.decimal_mark, context(device=None), set())
    assert first.location is not None and first.location.melo_id == MELO  # found by its MaLo-ID
    assert first.profile is not None
    (series,) = first.profile.series
    assert [(v.start, v.kwh, v.status, v.method) for v in series.values] == [
        (day_start(DAY) + 3600, Decimal("0.25"), "true", None),  # 00:00 at +01 is 23:00 UTC
        (day_start(DAY) + 4500, Decimal("0.125"), "substitute", "interpolated")]
    two_locations = PARTNER_LAYOUT.replace("LOC+172+51238696781'", f"LOC+172+51238696781'NAD+DP'LOC+172+{MELO}'").replace(
        "UNT+25+M1", "UNT+27+M1")
    assert [c for c, _ in findings(two_locations, context(device=None))] == ["Z40"]


def test_status_reasons_of_a_correction_are_taken() -> None:
    # The layout of the real corrected 2.4c days of docs/edi.md (not copied: they have no
    # licence): every true value with a correction reason (STS+Z34++ZA4), substitute values with
    # three STS (method ZJ2, reasons ZB0).
    text = PARTNER_LAYOUT.replace("DTM+164:202606150015?+01:303'\n", "DTM+164:202606150015?+01:303'\nSTS+Z34++ZA4'\n").replace(
        "STS+Z32++Z92'\nSTS+Z40++Z75'", "STS+Z32++ZJ2'\nSTS+Z34++ZB0'\nSTS+Z40++ZB0'").replace("UNT+25+M1", "UNT+27+M1")
    assert text.count("STS+") == 4
    assert findings(text, context(device=None)) == []
    report = syntax.check(text.encode())
    first = checks.check(report.messages[0], report.decimal_mark, context(device=None), set())
    assert first.profile is not None
    assert [(v.kwh, v.status, v.method) for v in first.profile.series[0].values] == [
        (Decimal("0.25"), "true", None), (Decimal("0.125"), "substitute", "extrapolated")]


def test_a_document_dated_after_its_arrival_is_refused() -> None:
    made = profile(DAY)
    received = made.document_date - checks.CLOCK_SKEW_S  # the sender's clock ahead by the whole allowance
    assert findings(day_file(DAY), replace(context(), received=received)) == []
    assert findings(day_file(DAY), replace(context(), received=received - 1)) == [
        ("Z41", "document date 2026-06-15T22:10Z is after the file arrived (2026-06-15T21:59Z)")]


def test_duplicate_document_numbers_within_a_file_and_across_files() -> None:
    twice = build(profile(DAY, 8), profile(date(2026, 6, 16), 8), reference="8")
    assert codes(twice) == ["Z31"]
    ctx = replace(context(), documents={(DEVICE_PARTY.id, "MSCONS00000007"): 41})
    assert findings(day_file(DAY), ctx) == [("Z31", "document number 'MSCONS00000007' of sender 9900000000003 "
                                                    "was received before (file 41)")]


def test_a_device_may_send_only_its_own_locations() -> None:
    assert codes(day_file(DAY), context(device="dev2")) == ["Z17"]
    assert codes(day_file(DAY), context(device=None)) == []  # an operator relays a partner's file


@pytest.mark.parametrize(("mutate", "code", "segment", "says"), [
    (lambda t: t[: t.index("UNZ")], "13", "UNZ", "no UNZ"),
    (lambda t: t.replace("UNZ+1+7'", "UNZ+2+7'"), "29", "UNZ", "UNZ counts '2' messages, the interchange has 1"),
    (lambda t: t.replace("UNZ+1+7'", "UNZ+1+8'"), "28", "UNZ", "does not close UNB reference '7'"),
    (lambda t: t.replace("UNOC:3", "UNOB:3"), "2", "UNB", "supported: UNOC:3"),
    (lambda t: t.replace("UNA:+.? '", "UNA:+;? '"), "20", "UNA", "decimal mark ';'"),
    (lambda t: t.replace("UNA:+.? '", "UNA::.? '"), "20", "UNA", "not four different characters"),
    (lambda t: "UNH+1+MSCONS'" + t, "13", "UNB", "it must begin with UNA or UNB"),
    (lambda t: t[:-1], "18", "UNB", "not a readable EDIFACT interchange"),
    (lambda t: t.replace("UNB+", "UNX+"), "13", "UNB", "no UNB"),
    (lambda t: t.replace("'UNH+", "'DTM+137:202606160000?+00:303'UNH+"), "33", "UNZ", "segment DTM outside a message"),
    (lambda t: t.replace("BGM", "BG\x01"), "21", "UNB", "control character 0x01"),
])
def test_corrupt_interchanges_are_rejected_whole_by_contrl(mutate: object, code: str, segment: str, says: str) -> None:
    report = syntax.check(mutate(day_file(DAY)).encode("latin-1"))  # type: ignore[operator]
    assert report.fault is not None and (report.fault.code.value, report.fault.segment) == (code, segment), report.fault
    assert says in report.fault.text
    answer = answers.contrl(report, "C1", day_start(DAY))
    assert f"UCI+{report.reference}+" in answer and f"+4+{code}+{segment}'" in answer and "UCM" not in answer


@pytest.mark.parametrize(("mutate", "code", "says"), [
    (lambda t: t.replace("UNT+", "UNT+1"), "29", "UNT counts 1"),
    (lambda t: t.replace("+9'DTM+137", "+9'DTM+137:202606160000?+00:303'DTM+137"), "29", "the message has"),
    (lambda t: t.replace("MSCONS:D:04B", "UTILMD:D:04B"), "14", "message type 'UTILMD:D:04B:UN:2.4c'"),
    (lambda t: t[: t.rindex("UNT")] + "UNT+" + t[t.rindex("UNT") + 4:].replace("+7'", "+8'", 1), "28", "UNT reference '8'"),
])
def test_a_broken_message_is_rejected_alone_by_ucm(mutate: object, code: str, says: str) -> None:
    text = build(profile(DAY, 7), profile(date(2026, 6, 16), 9), reference="7")
    first_end = text.index("UNH+9")
    report = syntax.check((mutate(text[:first_end]) + text[first_end:]).encode())  # type: ignore[operator]
    assert report.fault is None
    bad, good = report.messages
    assert bad.fault is not None and bad.fault.code.value == code and says in bad.fault.text, bad.fault
    assert good.fault is None and report.accepted_messages == (good,)
    answer = answers.contrl(report, "C1", day_start(DAY))
    assert f"+7'UCM+7+{':'.join(bad.kind)}+4+{code}+" in answer


def test_aperak_names_the_message_the_code_and_where() -> None:
    text = day_file(DAY).replace("1-1?:2.29.0", "1-1?:2.8.0").replace("RFF+Z13:13018", "RFF+Z13:")
    report = syntax.check(text.encode())
    checked = checks.check(report.messages[0], report.decimal_mark, context(), set())
    answer = answers.aperak(report, [checked], "A1", day_start(DAY))
    assert answer is not None
    segments = answer.split("'")
    assert "UNH+1+APERAK:D:07B:UN:2.1i" in segments and "BGM+313+A1-1" in segments
    assert "RFF+ACE:MSCONS00000007" in segments and "RFF+ACW:7" in segments
    assert f"NAD+MR+{DEVICE_PARTY.id}::293" in segments and f"NAD+MS+{GRID.id}::332" in segments
    assert "ERC+Z29" in segments and "FTX+Z02+++SG1 RFF?+Z13" in segments
    assert "ERC+Z20" in segments  # Z20 needs no location
    assert answer.startswith(f"UNA:+.? 'UNB+UNOC:3+{GRID.id}:502+{DEVICE_PARTY.id}:500+")


def test_reconciliation_per_slot_and_day_with_tolerances() -> None:
    start = day_start(DAY)
    device = {start + n * 900: 100 for n in range(96)}
    partner = {**device, start: 150, start + 900: 95}
    partner.pop(start + 95 * 900)
    (day,) = reconcile.compare(MELO, mscons.OBIS_IMPORT, device, partner, reconcile.Tolerance(slot_wh=10, day_pct=2.0))
    assert (day.day, len(day.slots), day.device_only, day.partner_only) == (DAY, 95, 1, 0)
    assert [s.flagged for s in day.slots[:3]] == [True, False, False]
    assert (day.device_wh, day.partner_wh, day.diff_wh) == (9500, 9545, -45)
    assert day.diff_pct == round(-45 / 9545 * 100, 3) and not day.flagged
    (loose,) = reconcile.compare(MELO, mscons.OBIS_IMPORT, device, partner, reconcile.Tolerance(slot_wh=10, day_pct=0.4))
    assert loose.flagged
    assert reconcile.compare(MELO, mscons.OBIS_IMPORT, device, {}) == []
    (zero,) = reconcile.compare(MELO, mscons.OBIS_EXPORT, {start: 0}, {start: 20})
    assert zero.diff_pct == -100.0 and zero.flagged
    rows = list(reconcile.csv_rows([day]))
    assert rows[0][:4] == ["melo_id", "obis", "day", "slot_start"] and rows[1][4:] == [100, 150, -50, 1]


# Market partners' files (tests/cloud_sync/fixtures/README.md says where each comes from).
def test_market_partner_load_profiles_after_the_mig_examples_are_accepted() -> None:
    # 13025, the market location's load profile: UNA with comma, one line, no units, contact
    # details, runs of preliminary (Z18) and proposed (201) values, a substitute with its method
    # (Z88 Vergleichsmessung) and reason (Z40 Z75), import and export as two LIN groups.
    text = (FIXTURES / "mscons_13025_malo_2024-12-16.edi").read_bytes()
    report = syntax.check(text)
    assert report.decimal_mark == "," and len(report.accepted_messages) == 1
    (checked,) = [checks.check(m, report.decimal_mark, fixture_context(), set()) for m in report.messages]
    assert checked.findings == () and checked.location is not None and checked.location.melo_id == FIXTURE_MELO
    assert checked.profile is not None and checked.profile.check_id == "13025"
    imports, exports = checked.profile.series
    assert Counter(v.status for v in imports.values) == {"true": 87, "preliminary": 6, "proposed": 2, "substitute": 1}
    (substitute,) = [v for v in imports.values if v.status == "substitute"]
    assert (substitute.method, substitute.start) == ("Z88", int(datetime(2024, 12, 16, 9, 0, tzinfo=UTC).timestamp()))
    assert (len(exports.values), exports.obis, {v.status for v in exports.values}) == (96, "1-1:2.29.0", {"true"})
    assert sum(v.kwh for v in imports.values) > 0 and imports.values[0].kwh == Decimal("0.085")


def test_a_partner_file_without_una_on_lines_over_the_clock_change_is_accepted() -> None:
    # 13018 on the MeLo, no UNA (so the comma is the decimal mark), a segment per line (CRLF),
    # the meter's number (SG7 RFF+MG), two messages: 27 October 2024 has 100 quarter-hours.
    report = syntax.check((FIXTURES / "mscons_13018_melo_2024-10-27_28.edi").read_bytes())
    assert report.decimal_mark == "," and len(report.accepted_messages) == 2
    seen: set[tuple[str, str]] = set()
    first, second = [checks.check(m, report.decimal_mark, fixture_context(), seen) for m in report.messages]
    assert first.findings == () and second.findings == ()
    assert first.profile is not None and second.profile is not None
    assert [len(s.values) for s in first.profile.series] == [100, 100]
    assert [len(s.values) for s in second.profile.series] == [96, 96]
    assert [(v.status, v.method) for v in first.profile.series[0].values if v.status != "true"] == [
        ("substitute", "interpolated")]


def test_a_real_public_file_of_an_old_mig_gets_the_version_code() -> None:
    # A real interchange from a public repository (MIG 2.2e, 2016, Prüfidentifikator 13008),
    # cut to its first day: nothing in it is read under the 2.4c rules, the version is refused.
    report = syntax.check((FIXTURES / "vdmitriyev_MSCONS_TL_SAMPLE02_2.2e_first_day.edi").read_bytes())
    assert report.fault is None and len(report.accepted_messages) == 1
    (checked,) = [checks.check(m, report.decimal_mark, fixture_context(), set()) for m in report.messages]
    assert [(f.code.value, f.text, f.where) for f in checked.findings] == [
        ("Z39", "MIG version '2.2e': no MSCONS MIG version on record for 2016-01-12; the first known is 2.4b, "
                "from 2023-10-01", "UNH S009 DE0057 2.2e")]


# Two layouts of the real 2.4c files of docs/edi.md that are not load profiles, written here by
# hand with made-up values (the real files have no licence): a meter reading (13017: LOC+172
# without an ID, the meter in RFF+AGK, the reading's time as DTM+7/DTM+9, OBIS 1.8.0) and a
# month's energy quantity (13019: OBIS 1.9.0, one QTY over a month, STS reasons).
_NOT_PROFILES = """UNA:+,? 'UNB+UNOC:3+9800000000007:502+9900000000003:500+260616:0705+P4712++VL'\
UNH+1+MSCONS:D:04B:UN:2.4c'BGM+7+P4712-1+9'DTM+137:202606160705?+00:303'RFF+Z13:13017'\
NAD+MS+9800000000007::332'NAD+MR+9900000000003::293'UNS+D'NAD+DP'LOC+172'RFF+AGK:4711'LIN+1'\
PIA+5+1-1?:1.8.0:SRW'QTY+220:1234,5'DTM+7:202605312200?+00:303'DTM+9:202605312200?+00:303'UNT+16+1'\
UNH+2+MSCONS:D:04B:UN:2.4c'BGM+7+P4712-2+9'DTM+137:202606160705?+00:303'RFF+Z13:13019'\
NAD+MS+9800000000007::332'NAD+MR+9900000000003::293'UNS+D'NAD+DP'LOC+172+51238696781'LIN+1'\
PIA+5+1-1?:1.9.0:SRW'QTY+220:321,125'DTM+163:202604302200?+00:303'DTM+164:202605312200?+00:303'\
STS+10+Z36'UNT+16+2'UNZ+2+P4712'"""


def test_a_meter_reading_and_an_energy_quantity_get_the_check_id_code_not_a_parse_error() -> None:
    report = syntax.check(_NOT_PROFILES.encode("latin-1"))
    assert report.fault is None and len(report.accepted_messages) == 2
    checked = [checks.check(m, report.decimal_mark, context(device=None), set()) for m in report.messages]
    assert [[(f.code.value, f.text, f.where) for f in c.findings] for c in checked] == [
        [("Z39", f"Prüfidentifikator {pid}; this gateway takes load profiles: 13018, 13025", f"RFF+Z13:{pid}")]
        for pid in ("13017", "13019")]
    assert not any(c.accepted for c in checked)


def test_quantity_qualifiers_beyond_those_read_are_refused_naming_them() -> None:
    text = (FIXTURES / "mscons_13025_malo_2024-12-16.edi").read_text("latin-1").replace("QTY+201:", "QTY+20:", 1)
    report = syntax.check(text.encode("latin-1"))
    (checked,) = [checks.check(m, report.decimal_mark, fixture_context(), set()) for m in report.messages]
    assert [f.code.value for f in checked.findings] == ["Z35"]
    assert "QTY qualifier '20'; read: 220 (true), 67 (substitute), 201 (proposed), Z18 (preliminary)" in \
        checked.findings[0].text


def _documented(marker: str) -> list[str]:
    text = (Path(__file__).resolve().parents[2] / "docs" / "edi.md").read_text()
    block = text.split(f"<!-- {marker} -->\n```\n", 1)[1].split("```", 1)[0]
    return block.splitlines()


def test_the_documented_answers_are_what_the_gateway_writes() -> None:
    """docs/edi.md's CONTRL and APERAK for the device's file 42 of 2026-06-15 written as MIG 2.5."""
    report = syntax.check(build(profile(DAY, 42)).replace(":2.4c'", ":2.5'").encode())
    checked = [checks.check(m, report.decimal_mark, context(), set()) for m in report.messages]
    stamp = int(datetime(2026, 6, 16, 4, 5, tzinfo=UTC).timestamp())
    aperak = answers.aperak(report, [c for c in checked if not c.accepted], "A17", stamp)
    assert aperak is not None
    for marker, answer in (("contrl-example", answers.contrl(report, "C17", stamp)), ("aperak-example", aperak)):
        lines = [segment + "'" for segment in re.split(r"(?<!\?)'", answer.removeprefix("UNA:+.? '")) if segment]
        assert _documented(marker) == ["UNA:+.? '", *lines]
