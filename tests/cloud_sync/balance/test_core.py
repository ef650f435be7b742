"""The balance core without a database: time grid, membership, schedules, prices, settlement,
digests and anomalies, each against values worked out here by other means."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

from cloud_sync.balance import anomalies, digest, positions, prices, schedule, settle
from cloud_sync.balance.membership import Membership, MembershipError, check_end, check_join, member_slots
from cloud_sync.balance.timegrid import TimeError, day_bounds, parse_boundary, same_weekday_before

MELO_A = "DE0001234567890000000000000000001"
MELO_B = "DE0001234567890000000000000000002"


# --- time grid -------------------------------------------------------------------------------
def test_local_times_become_utc_boundaries_on_ordinary_and_clock_change_days() -> None:
    assert parse_boundary("2026-06-10T10:15", "start") == parse_boundary("2026-06-10T08:15Z", "start")
    assert parse_boundary("2026-01-10T23:45", "end") == parse_boundary("2026-01-10T22:45Z", "end")
    # The spring day: 01:45 CET is followed by 03:00 CEST, 15 minutes later.
    assert parse_boundary("2026-03-29T03:00", "t") - parse_boundary("2026-03-29T01:45", "t") == 900
    assert [(e - s) // 900 for s, e in (day_bounds(date(2026, 3, 29)), day_bounds(date(2026, 10, 25)),
                                         day_bounds(date(2026, 6, 1)))] == [92, 100, 96]


@pytest.mark.parametrize(("text", "message"), [
    ("2026-03-29T02:30", "does not exist in Europe/Berlin"),
    ("2026-10-25T02:30", "happens twice in Europe/Berlin (the clocks go back); give an offset: "
                         "2026-10-25T02:30:00+02:00 or 2026-10-25T02:30:00+01:00"),
    ("2026-06-10T10:20", "on a quarter-hour"),
    ("2026-06-10T10:15:30Z", "on a quarter-hour"),
    ("yesterday", "expected an ISO-8601 time"),
])
def test_times_that_are_not_one_boundary_are_refused(text: str, message: str) -> None:
    with pytest.raises(TimeError, match="start: ") as caught:
        parse_boundary(text, "start")
    assert message in str(caught.value)


def test_both_halves_of_the_autumn_hour_are_reachable_with_an_offset() -> None:
    first = parse_boundary("2026-10-25T02:30+02:00", "t")
    second = parse_boundary("2026-10-25T02:30+01:00", "t")
    assert second - first == 3600


def test_same_weekday_maps_wall_clock_time_across_clock_changes() -> None:
    after_spring = parse_boundary("2026-04-05T10:15", "t")  # CEST
    assert same_weekday_before(after_spring, 1) == parse_boundary("2026-03-29T10:15", "t")
    assert same_weekday_before(after_spring, 2) == parse_boundary("2026-03-22T10:15", "t")  # CET: 7 d + 1 h
    assert same_weekday_before(parse_boundary("2026-04-05T02:15", "t"), 1) is None  # in the spring gap
    second_half = parse_boundary("2026-10-25T02:15+01:00", "t")
    assert same_weekday_before(second_half, 1) == parse_boundary("2026-10-18T02:15", "t")


# --- membership ------------------------------------------------------------------------------
def test_a_join_at_10_15_and_a_leave_at_23_45_cover_exactly_those_quarter_hours() -> None:
    m = Membership(MELO_A, "G1", parse_boundary("2026-06-10T10:15", "s"), parse_boundary("2026-06-10T23:45", "e"))
    start, end = day_bounds(date(2026, 6, 10))
    covered = member_slots([m], "G1", start, end)[MELO_A]
    assert len(covered) == 54  # 10:15 … 23:30 local
    assert covered[0] == m.start and covered[-1] == m.end - 900  # type: ignore[operator]
    assert member_slots([m], "G2", start, end) == {}


def test_membership_across_the_autumn_clock_change_has_one_more_hour() -> None:
    m = Membership(MELO_A, "G1", parse_boundary("2026-10-25T00:00", "s"), parse_boundary("2026-10-25T06:00", "e"))
    assert len(member_slots([m], "G1", *day_bounds(date(2026, 10, 25)))[MELO_A]) == 28  # 7 hours
    spring = Membership(MELO_A, "G1", parse_boundary("2026-03-29T00:00", "s"), parse_boundary("2026-03-29T06:00", "e"))
    assert len(member_slots([spring], "G1", *day_bounds(date(2026, 3, 29)))[MELO_A]) == 20  # 5 hours


def test_overlapping_memberships_are_refused_and_adjacent_ones_accepted() -> None:
    t = parse_boundary("2026-06-10T10:15", "t")
    old = Membership(MELO_A, "G1", t, t + 3600)
    check_join([old], Membership(MELO_A, "G2", t + 3600))  # joins the next group as it leaves
    check_join([old], Membership(MELO_B, "G2", t))  # another location
    with pytest.raises(MembershipError, match=f"metering location {MELO_A} would be in two groups at once: "
                                              f"{MELO_A} in group G1 from 2026-06-10T10:15:00\\+02:00"):
        check_join([old], Membership(MELO_A, "G2", t + 2700))
    with pytest.raises(MembershipError, match="open-ended"):
        check_join([Membership(MELO_A, "G1", t)], Membership(MELO_A, "G2", t - 900, t + 900))
    with pytest.raises(MembershipError, match=r"end: .* is not after start"):
        check_join([], Membership(MELO_A, "G2", t, t))
    with pytest.raises(MembershipError, match="already ended"):
        check_end(old, t + 7200)


# --- schedules -------------------------------------------------------------------------------
def test_substitute_is_the_rounded_mean_of_the_last_four_same_weekdays() -> None:
    ts = parse_boundary("2026-06-17T18:00", "t")  # a Wednesday
    history = {same_weekday_before(ts, w): wh for w, wh in ((1, 400), (2, 401), (3, 402), (4, 404), (5, 9999))}
    # (400 + 401 + 402 + 404) / 4 = 401.75 → 402; the fifth week back is not used
    assert schedule.substitute_wh(history, ts) == 402  # type: ignore[arg-type]
    assert schedule.substitute_wh({same_weekday_before(ts, 2): 7, same_weekday_before(ts, 3): 8}, ts) == 8  # type: ignore[dict-item]
    assert schedule.substitute_wh({ts - 86400: 5}, ts) is None  # yesterday is not a same weekday
    assert schedule.mean_wh([-3, -4]) == -3  # -3.5 rounds half up


def test_group_schedule_sums_members_and_flags_substitutes() -> None:
    t = parse_boundary("2026-06-17T18:00", "t")
    a = schedule.member_schedule([t, t + 900], {t: (100, "day_ahead"), t + 900: (-50, "intraday")}, {})
    b = schedule.member_schedule([t, t + 900], {}, {same_weekday_before(t, 1): 30})  # type: ignore[dict-item]
    assert b == {t: (30, "substitute"), t + 900: (0, "none")}
    assert schedule.group_schedule({"a": a, "b": b}) == {t: 130, t + 900: -50}


# --- prices ----------------------------------------------------------------------------------
def _csv(rows: list[tuple[str, str]], sep: str = ",") -> str:
    return "\n".join([f"timestamp{sep}price"] + [f"{t}{sep}{p}" for t, p in rows]) + "\n"


def test_price_series_quarter_hourly_hourly_and_decimal_comma() -> None:
    q = prices.parse_csv(_csv([("2026-06-17T16:00:00Z", "100.5"), ("2026-06-17T16:15:00Z", "-20.125")]))
    assert (q.resolution_s, list(q.prices.values())) == (900, [100500, -20125])
    h = prices.parse_csv(_csv([("2026-06-17T18:00:00+02:00", "1.234,5".replace(".", "")),
                               ("2026-06-17T19:00:00+02:00", "7")], ";"))
    assert h.resolution_s == 3600
    start = parse_boundary("2026-06-17T16:00Z", "t")
    assert list(h.per_slot(start, start + 7200).values()) == [1234500] * 4 + [7000] * 4
    assert prices.parse_csv(prices.to_csv(q.prices)) == q


@pytest.mark.parametrize(("rows", "message"), [
    ([("2026-06-17T16:00:00Z", "1"), ("2026-06-17T16:00:00Z", "2")], "row 3: interval 2026-06-17T16:00:00Z repeats row 2"),
    ([("2026-06-17T16:00:00Z", "1"), ("2026-06-17T16:15:00Z", "1"), ("2026-06-17T16:45:00Z", "1")],
     "row 4: 2026-06-17T16:45:00Z is 30 minutes after the row above, the series so far is every 15 minutes"),
    ([("2026-06-17T16:00:00Z", "1"), ("2026-06-17T16:05:00Z", "1")], "row 3: timestamp '2026-06-17T16:05:00Z' is not on a quarter-hour"),
    ([("2026-06-17T16:00:00Z", "1"), ("2026-06-17T16:30:00Z", "1")], "row 3: 30 minutes after the row above"),
    ([("2026-06-17T16:00:00Z", "abc")], "row 2: price 'abc' is not a number"),
    ([("2026-06-17T16:00:00Z", "1.2345")], "row 2: price '1.2345' has more than three decimals"),
    ([("2026-06-17T16:00:00Z", "NaN")], "row 2: price 'NaN' is outside"),
    ([("2026-06-17T16:00:00Z", "200000")], "row 2: price '200000' is outside"),
    ([("2026-06-17T16:00:00", "1")], "row 2: timestamp '2026-06-17T16:00:00' has no UTC offset"),
    ([("2026-06-17T16:15:00Z", "1"), ("2026-06-17T17:15:00Z", "1")], "row 2: 2026-06-17T18:15:00+02:00 does not start a 60-minute interval"),
    ([("2026-06-17T16:15:00Z", "1"), ("2026-06-17T16:00:00Z", "1")], "row 3: 2026-06-17T16:00:00Z is before the row above"),
    ([], "row 2: no prices after the header"),
])
def test_invalid_price_series_are_refused_naming_row_and_value(rows: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(prices.PriceError) as caught:
        prices.parse_csv(_csv(rows))
    assert message in str(caught.value)


def test_a_series_with_a_gap_in_the_settled_period_is_refused() -> None:
    series = prices.parse_csv(_csv([("2026-06-17T16:00:00Z", "1")]))
    start = parse_boundary("2026-06-17T16:00Z", "t")
    with pytest.raises(prices.PriceError, match="no imbalance price for the quarter-hour starting 2026-06-17T18:15:00"):
        series.per_slot(start, start + 1800)


# --- settlement ------------------------------------------------------------------------------
def test_deviation_and_cost_split_match_an_independent_reference() -> None:
    """Random members in kWh with three decimals and prices with two: the reference works in
    Fractions of kWh and EUR/MWh, the code in integer Wh, milli-EUR/MWh and nano-EUR."""
    rng = random.Random(13)
    start = parse_boundary("2026-06-17T00:00", "t")
    slots = list(range(start, start + 96 * 900, 900))
    melos = [f"DE000123456789000000000000000{n:04d}" for n in range(40)]
    sched = {(m, t): Fraction(rng.randint(-3000, 3000), 1000) for m in melos for t in slots}
    actual = {(m, t): Fraction(rng.randint(0, 4000), 1000) - Fraction(rng.randint(0, 2000), 1000)
              for m in melos for t in slots}
    price = {t: Fraction(rng.randint(-50000, 90000), 100) for t in slots}
    pos = [settle.Position(m, t, int(sched[m, t] * 1000), "day_ahead", int(actual[m, t] * 1000), "device")
           for m in melos for t in slots]
    results = settle.settle(pos, {t: int(p * 1000) for t, p in price.items()})
    by_slot = settle.per_slot(results)
    for s in by_slot:
        deviation_kwh = sum(actual[m, s.ts] - sched[m, s.ts] for m in melos)
        assert Fraction(s.deviation_wh, 1000) == deviation_kwh
        assert Fraction(s.cost_nano, 10**9) == deviation_kwh * price[s.ts] / 1000  # kWh × EUR/MWh / 1000
    for r in results:
        share = (actual[r.melo, r.ts] - sched[r.melo, r.ts]) * price[r.ts] / 1000
        assert Fraction(r.cost_nano, 10**9) == share
    group_cost = sum(s.cost_nano for s in by_slot)
    assert sum(r.cost_nano for r in results) == group_cost  # the shares add up exactly
    assert settle.eur(group_cost) == Decimal(group_cost) / Decimal(10**9)


def test_digests_are_stable_and_change_with_any_input() -> None:
    t = parse_boundary("2026-06-17T00:00", "t")
    pos = [settle.Position(MELO_A, t, 10, "day_ahead", 12, "edi"), settle.Position(MELO_B, t, 5, "none", 0, "device")]
    base = digest.input_digest(pos, {t: 1000}, {"anomalies": "flag"})
    assert base == digest.input_digest(list(reversed(pos)), {t: 1000}, {"anomalies": "flag"})
    assert base != digest.input_digest(pos, {t: 1001}, {"anomalies": "flag"})
    assert base != digest.input_digest(pos[:1], {t: 1000}, {"anomalies": "flag"})
    assert base != digest.input_digest(pos, {t: 1000}, {"anomalies": "exclude"})
    changed = [settle.Position(MELO_A, t, 10, "day_ahead", 12, "device"), pos[1]]
    assert base != digest.input_digest(changed, {t: 1000}, {"anomalies": "flag"})


# --- anomalies and positions ------------------------------------------------------------------
def _day(day: date, value: tuple[int, int] | None = None, seed: int = 0) -> dict[int, tuple[int, int]]:
    rng = random.Random(seed)
    start, end = day_bounds(day)
    return {t: value or (rng.randint(50, 300), rng.randint(0, 50)) for t in range(start, end, 900)}


def test_anomalies_each_kind() -> None:
    history: dict[int, tuple[int, int]] = {}
    for n in range(1, 15):
        history.update(_day(date(2026, 6, 1) + timedelta(days=n), seed=n))
    today = _day(date(2026, 6, 16), seed=99)
    t0 = min(today)
    today[t0] = (-5, 0)
    today[t0 + 900] = (4000, 0)  # 16 kW for a quarter-hour on an 11 kW connection
    found = anomalies.check_member(MELO_A, today, history, limit_w=11_000)
    assert [(a.kind, a.start) for a in found] == [("negative", t0), ("above_limit", t0 + 900)]
    assert "4000 Wh in a quarter-hour, the connection carries at most 2750 Wh (11000 W)" in found[1].detail
    flat = anomalies.check_member(MELO_A, _day(date(2026, 6, 16), (120, 0)), history, None)
    assert [a.kind for a in flat] == ["flat_day"]
    copied = {t + 2 * 86400: v for t, v in _day(date(2026, 6, 14), seed=13).items()}
    assert [a.kind for a in anomalies.check_member(MELO_A, copied, history, None)] == ["repeated_day"]
    huge = {t: (v[0] * 5, v[1]) for t, v in _day(date(2026, 6, 16), seed=5).items()}
    assert [a.kind for a in anomalies.check_member(MELO_A, huge, history, None)] == ["jump"]
    assert anomalies.check_member(MELO_A, _day(date(2026, 6, 16), seed=98), history, 11_000) == []


def test_positions_follow_the_operators_choice_for_anomalies() -> None:
    t = parse_boundary("2026-06-17T18:00", "t")
    week = same_weekday_before(t, 1)
    assert week is not None
    metered = {MELO_A: {t: (500, 0, "edi"), t + 900: (-7, 0, "edi")}}
    sent = {MELO_A: {t: (100, "day_ahead"), t + 900: (100, "day_ahead")}}
    history = {MELO_A: {week + 900: 90}}
    bad = anomalies.check_member(MELO_A, {k: v[:2] for k, v in metered[MELO_A].items()}, {}, None)
    slots = {MELO_A: [t, t + 900, t + 1800]}
    flag = positions.build(slots, sent, metered, history, bad, "flag")
    assert [(p.actual_wh, p.actual_source, p.deviation_wh) for p in flag] == [
        (500, "edi", 400), (-7, "edi", -107), (0, "missing", 0)]
    excl = positions.build(slots, sent, metered, history, bad, "exclude")
    assert [(p.actual_source, p.deviation_wh) for p in excl][1] == ("excluded", 0)
    subst = positions.build(slots, sent, metered, history, bad, "substitute")
    assert [(p.actual_wh, p.actual_source) for p in subst][1] == (90, "substitute")
    with pytest.raises(ValueError, match="anomalies: got 'drop', allowed: flag, exclude, substitute"):
        positions.build(slots, sent, metered, history, bad, "drop")
