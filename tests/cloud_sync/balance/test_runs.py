"""Balance groups in the database, SQLite and PostgreSQL alike: registration and its refusals,
membership boundaries, schedules from devices, substitutes, anomalies, settlement runs against a
reference computed here, reruns and versions, reports."""

from __future__ import annotations

import io
import itertools
import json
import random
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

from cloud_sync import registry as device_registry
from cloud_sync.balance import digest, intake, registry, reports, runs
from cloud_sync.balance.registry import BalanceError
from cloud_sync.balance.settle import Position, settle
from cloud_sync.balance.timegrid import day_bounds, parse_boundary, same_weekday_before
from cloud_sync.db import Database, connect
from common.market_ids import bdew_check_digit
from tests.cloud_sync.aggregator import cloud_target, pg_url  # noqa: F401

_numbers = itertools.count(1)


def melo() -> str:
    return f"DE000123456789{next(_numbers):019d}"


def partner(n: int) -> str:
    head = f"99{n:010d}"
    return head + str(bdew_check_digit(head))


@pytest.fixture
async def db(cloud_target: str) -> AsyncIterator[Database]:
    database = await connect(cloud_target)
    yield database
    await database.close()


async def group(db: Database, name: str) -> str:
    brp = partner(next(_numbers))
    await registry.add_participant(db, brp, "293", f"BRP of {name}", ["brp", "supplier"])
    await registry.add_group(db, name, name, brp)
    return name


async def member(db: Database, group_id: str, start: str, end: str | None = None, limit_w: int | None = None) -> str:
    m = melo()
    await registry.add_location(db, m, None, None, limit_w)
    await registry.join(db, group_id, m, parse_boundary(start, "start"), None if end is None else parse_boundary(end, "end"))
    return m


async def put(db: Database, table: str, rows: list[dict[str, Any]]) -> None:
    async with db.begin() as conn:
        columns = list(rows[0])
        await conn.execute(text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                                f"({', '.join(':' + c for c in columns)})"), rows)


async def schedules(db: Database, melo_id: str, values: dict[int, int], revision: int = 0) -> None:
    rows = [{"melo_id": melo_id, "ts": ts, "revision": revision, "kind": "day_ahead" if revision == 0 else "intraday",
             "import_wh": max(wh, 0), "export_wh": max(-wh, 0)} for ts, wh in values.items()]
    await put(db, "schedule_slots", [{**r, "created_at": 1.0} for r in rows])
    async with db.begin() as conn:
        await conn.execute(text("DELETE FROM schedules_in_force WHERE melo_id = :m"), {"m": melo_id})
    await put(db, "schedules_in_force", rows)


async def actuals(db: Database, melo_id: str, values: dict[int, tuple[int, int]], source: str = "device") -> None:
    await put(db, "actuals", [{"melo_id": melo_id, "ts": ts, "source": source, "import_wh": i, "export_wh": e,
                               "received_at": 1.0} for ts, (i, e) in values.items()])


async def prices(db: Database, name: str, day: date, price: str = "100.25", days: int = 1) -> None:
    start = day_bounds(day)[0]
    end = day_bounds(date.fromordinal(day.toordinal() + days - 1))[1]
    rows = "".join(f"{ts},{price}\n".replace(str(ts), _utc(ts)) for ts in range(start, end, 900))
    await runs.upload_prices(db, name, "timestamp,price\n" + rows)


def _utc(ts: int) -> str:
    from datetime import UTC, datetime

    return f"{datetime.fromtimestamp(ts, UTC):%Y-%m-%dT%H:%M:%SZ}"


async def results(db: Database, run: int) -> dict[tuple[str, int], tuple[Any, ...]]:
    async with db.read() as conn:
        rows = (await conn.execute(text(
            "SELECT melo_id, ts, schedule_wh, schedule_source, actual_wh, actual_source, deviation_wh, price_milli, "
            "cost_nano FROM settlement_results WHERE run_id = :r"), {"r": run})).all()
    return {(r[0], int(r[1])): tuple(r[2:]) for r in rows}


# --- registration and refusals --------------------------------------------------------------
async def test_every_invalid_registration_is_refused_naming_what_is_wrong(db: Database) -> None:
    brp = partner(900)
    cases = [
        (registry.add_participant(db, brp[:-1] + "0", "293", "x", ["brp"]), 400, "check digit (13th) is 0"),
        (registry.add_participant(db, brp, "293", "x", ["banker"]), 400, "roles: got banker, allowed one or more of"),
        (registry.add_participant(db, brp, "293", " ", ["brp"]), 400, "name: empty"),
        (registry.add_group(db, "G-none", "x", brp), 404, f"brp: {brp} is not a registered participant"),
        (registry.add_group(db, "bad id!", "x", brp), 400, "id: got 'bad id!'"),
        (registry.add_location(db, "DE00012345678900000000000000000X", None, None, None), 400, "melo: "),
        (registry.add_location(db, melo(), "12345678901", None, None), 400, "malo: "),
        (registry.add_location(db, melo(), None, "no-such-device", None), 404, "device: 'no-such-device' is not a "
                                                                               "registered device"),
        (registry.add_location(db, melo(), None, None, 0), 400, "connection_limit_w: got 0"),
        (registry.join(db, "no-such-group", melo(), 0), 404, "group: 'no-such-group' is not a balance group"),
    ]
    for call, status, message in cases:
        with pytest.raises(BalanceError) as caught:
            await call
        assert caught.value.status == status and message in str(caught.value), str(caught.value)
    supplier = partner(901)
    await registry.add_participant(db, supplier, "293", "Supplier", ["supplier"])
    with pytest.raises(BalanceError, match="registered but not as a balance-responsible party"):
        await registry.add_group(db, "G-supplier", "x", supplier)
    g = await group(db, "G-refusals")
    with pytest.raises(BalanceError, match="already exists"):
        await registry.add_group(db, g, "x", partner(902))
    m = await member(db, g, "2026-06-17T10:15")
    with pytest.raises(BalanceError, match="is already registered"):
        await registry.add_location(db, m, None, None, None)
    unknown = melo()[:-1] + "X"
    with pytest.raises(BalanceError, match=f"melo: '{unknown}' is not a registered metering location"):
        await registry.join(db, g, unknown, parse_boundary("2026-06-17T10:15", "s"))
    other = await group(db, "G-refusals-2")
    with pytest.raises(BalanceError) as caught:
        await registry.join(db, other, m, parse_boundary("2026-06-18T00:00", "s"))
    assert caught.value.status == 409 and "would be in two groups at once" in str(caught.value)
    with pytest.raises(BalanceError) as caught:
        await registry.leave(db, other, m, parse_boundary("2026-06-18T00:00", "e"))
    assert caught.value.status == 409 and "no open membership" in str(caught.value)
    with pytest.raises(BalanceError, match="is not after start"):
        await registry.leave(db, g, m, parse_boundary("2026-06-17T10:15", "e"))
    await registry.leave(db, g, m, parse_boundary("2026-06-18T00:00", "e"))
    await registry.join(db, other, m, parse_boundary("2026-06-18T00:00", "s"))  # moves on the boundary
    history = await registry.memberships(db, melo_id=m)
    assert [(h["group"], h["start"], h["end"]) for h in history] == [
        (g, "2026-06-17T10:15:00+02:00", "2026-06-18T00:00:00+02:00"), (other, "2026-06-18T00:00:00+02:00", None)]


async def test_a_location_linked_to_a_device_and_the_device_linked_once(db: Database, cloud_target: str) -> None:
    await device_registry.add(db, "dev", "bal-dev-1")
    first = melo()
    assert (await registry.add_location(db, first, None, "bal-dev-1", 11000))["device"] == "bal-dev-1"
    with pytest.raises(BalanceError, match="already linked to metering location"):
        await registry.add_location(db, melo(), None, "bal-dev-1", None)
    listed = {loc["melo"]: loc for loc in await registry.locations(db)}
    assert listed[first] == {"melo": first, "malo": None, "device": "bal-dev-1", "connection_limit_w": 11000}



async def test_adding_a_location_the_edi_registry_linked_keeps_its_device_and_malo(db: Database) -> None:
    from cloud_sync.edi import store as edi_store

    await device_registry.add(db, "dev", "bal-dev-edi")
    linked = melo()
    async with db.begin() as conn:  # as `nattery-cloud edi location add … --device` leaves it
        await edi_store.register_location(conn, linked, "51238696781", "bal-dev-edi")
    added = await registry.add_location(db, linked, None, None, 13800)
    assert (added["device"], added["malo"]) == ("bal-dev-edi", "51238696781")
    listed = {loc["melo"]: loc for loc in await registry.locations(db)}
    assert listed[linked] == {"melo": linked, "malo": "51238696781", "device": "bal-dev-edi",
                              "connection_limit_w": 13800}

# --- runs ----------------------------------------------------------------------------------
async def test_membership_boundaries_decide_the_settled_quarter_hours(db: Database) -> None:
    g = await group(db, "G-bounds")
    day = date(2026, 6, 17)
    await prices(db, "p-bounds", day)
    partial = await member(db, g, "2026-06-17T10:15", "2026-06-17T23:45")
    whole = await member(db, g, "2026-06-01T00:00")
    run = await runs.settle_group(db, g, *day_bounds(day), prices="p-bounds")
    rows = await results(db, run["run"])
    partial_slots = sorted(ts for m, ts in rows if m == partial)
    assert len(partial_slots) == 54 and partial_slots[0] == parse_boundary("2026-06-17T10:15", "t")
    assert partial_slots[-1] == parse_boundary("2026-06-17T23:30", "t")
    assert len([1 for m, _ in rows if m == whole]) == 96
    assert run["members"] == 2


@pytest.mark.parametrize(("day", "slots"), [(date(2026, 3, 29), 92), (date(2026, 10, 25), 100)])
async def test_clock_change_days_settle_every_quarter_hour_once(db: Database, day: date, slots: int) -> None:
    g = await group(db, f"G-dst-{slots}")
    await prices(db, f"p-dst-{slots}", day)
    m = await member(db, g, "2026-03-01T00:00")
    start, end = day_bounds(day)
    await schedules(db, m, {ts: 100 for ts in range(start, end, 900)})
    await actuals(db, m, {ts: (130, 0) for ts in range(start, end, 900)})
    run = await runs.settle_group(db, g, start, end, prices=f"p-dst-{slots}")
    assert run["slots"] == slots and len(await results(db, run["run"])) == slots
    assert run["deviation_kwh"] == str(Fraction(30 * slots, 1000).__float__()) or run["deviation_kwh"] == f"{30 * slots / 1000:g}"
    by_slot = await reports.run_rows(db, run["run"], "slot")
    assert len(by_slot) == slots and len({r["start"] for r in by_slot}) == slots  # the repeated hour twice, by offset


async def test_deviation_and_cost_match_a_reference_and_reruns_are_identical(db: Database) -> None:
    rng = random.Random(5)
    g = await group(db, "G-reference")
    day = date(2026, 6, 18)
    start, end = day_bounds(day)
    slots = list(range(start, end, 900))
    price_text = {ts: f"{rng.randint(-30000, 90000) / 100:.2f}" for ts in slots}
    await runs.upload_prices(db, "p-ref", "timestamp,price\n" + "".join(f"{_utc(t)},{p}\n" for t, p in price_text.items()))
    members = [await member(db, g, "2026-06-01T00:00") for _ in range(12)]
    kwh_schedule: dict[tuple[str, int], Fraction] = {}
    kwh_actual: dict[tuple[str, int], Fraction] = {}
    for m in members:
        plan = {ts: rng.randint(-2000, 3000) for ts in slots}
        revised = {ts: rng.randint(-2000, 3000) for ts in slots[60:]}
        metered = {ts: (rng.randint(0, 3000), rng.randint(0, 1500)) for ts in slots}
        await schedules(db, m, plan)
        await put(db, "schedule_slots", [{"melo_id": m, "ts": ts, "revision": 1, "kind": "intraday",
                                          "import_wh": max(wh, 0), "export_wh": max(-wh, 0), "created_at": 2.0}
                                         for ts, wh in revised.items()])
        async with db.begin() as conn:
            await conn.execute(text("UPDATE schedules_in_force SET revision = 1, kind = 'intraday', import_wh = :i, "
                                    "export_wh = :e WHERE melo_id = :m AND ts = :t"),
                               [{"i": max(wh, 0), "e": max(-wh, 0), "m": m, "t": ts} for ts, wh in revised.items()])
        await actuals(db, m, metered)
        official = {ts: (v[0] + 7, v[1]) for ts, v in list(metered.items())[:10]}  # EDI values win over the device's
        await actuals(db, m, official, "edi")
        for ts in slots:
            kwh_schedule[m, ts] = Fraction({**plan, **revised}[ts], 1000)
            imp, exp = official.get(ts, metered[ts])
            kwh_actual[m, ts] = Fraction(imp - exp, 1000)
    run = await runs.settle_group(db, g, start, end, prices="p-ref")
    rows = await results(db, run["run"])
    total_eur = Fraction(0)
    for (m, ts), row in rows.items():
        deviation = kwh_actual[m, ts] - kwh_schedule[m, ts]
        cost = deviation * Fraction(price_text[ts]) / 1000  # kWh × EUR/MWh
        assert Fraction(int(row[4]), 1000) == deviation
        assert Fraction(int(row[6]), 10**9) == cost
        total_eur += cost
    assert Fraction(run["cost_eur"]) == total_eur
    assert {row[1] for row in rows.values()} == {"day_ahead", "intraday"}
    assert {row[3] for (m, ts), row in rows.items() if ts == slots[0]} == {"edi"}
    # the database's digest is the one the core computes from the same positions and prices
    positions = [Position(m, ts, int(r[0]), r[1], int(r[2]), r[3]) for (m, ts), r in rows.items()]
    milli = {ts: int(Decimal(p) * 1000) for ts, p in price_text.items()}
    assert run["input_digest"] == digest.input_digest(positions, milli, {"anomalies": "flag"})
    assert run["results_digest"] == digest.results_digest(settle(positions, milli))
    again = await runs.settle_group(db, g, start, end, prices="p-ref")
    assert again["unchanged"] and again["run"] == run["run"] and again["results_digest"] == run["results_digest"]
    # a changed price series is a new version; the old one stays as it was
    changed = {**price_text, slots[5]: "999.99"}
    await runs.upload_prices(db, "p-ref", "timestamp,price\n" + "".join(f"{_utc(t)},{p}\n" for t, p in changed.items()))
    second = await runs.settle_group(db, g, start, end, prices="p-ref")
    assert (second["version"], second["unchanged"]) == (2, False) and second["input_digest"] != run["input_digest"]
    assert await results(db, run["run"]) == rows
    assert [r["version"] for r in await runs.list_runs(db, g)] == [2, 1]


async def test_a_member_without_a_schedule_gets_its_four_weeks_profile_flagged(db: Database) -> None:
    g = await group(db, "G-substitute")
    day = date(2026, 7, 15)
    start, end = day_bounds(day)
    await prices(db, "p-sub", day, days=1)
    m = await member(db, g, "2026-07-15T00:00")
    sent = await member(db, g, "2026-07-15T00:00")
    await schedules(db, sent, {ts: 50 for ts in range(start, end, 900)})
    slot = parse_boundary("2026-07-15T18:00", "t")
    history = {}
    for weeks, wh in ((1, 400), (2, 401), (3, 402), (4, 404), (5, 10_000)):
        then = same_weekday_before(slot, weeks)
        assert then is not None
        history[then] = (wh, 0)
    await actuals(db, m, history)
    run = await runs.settle_group(db, g, start, end, prices="p-sub")
    rows = await results(db, run["run"])
    assert rows[m, slot][:2] == (402, "substitute")  # (400 + 401 + 402 + 404) / 4 rounded half up
    assert rows[m, slot - 900][:2] == (0, "none")  # no history at that time
    assert rows[m, slot][3] == "missing" and rows[m, slot][4] == 0  # no actual: settled as scheduled
    by_member = {r["melo"]: r for r in await reports.run_rows(db, run["run"], "member")}
    assert by_member[m]["substitute_schedules"] == 1 and by_member[sent]["substitute_schedules"] == 0


async def test_anomalies_are_listed_and_handled_by_the_operators_choice(db: Database) -> None:
    g = await group(db, "G-anomalies")
    day = date(2026, 8, 12)
    start, end = day_bounds(day)
    await prices(db, "p-anom", day)
    spiky = await member(db, g, "2026-08-01T00:00", limit_w=11_000)
    flat = await member(db, g, "2026-08-01T00:00")
    for m in (spiky, flat):
        await schedules(db, m, {ts: 100 for ts in range(start, end, 900)})
    await actuals(db, spiky, {ts: (120 + (ts // 900) % 7, 0) for ts in range(start, end, 900)} | {start: (4000, 0)})
    await actuals(db, flat, {ts: (77, 0) for ts in range(start, end, 900)})
    flagged = await runs.settle_group(db, g, start, end, prices="p-anom")
    listed = await reports.anomalies(db, flagged["run"])
    assert sorted((a["melo"], a["kind"]) for a in listed) == sorted([(spiky, "above_limit"), (flat, "flat_day")])
    excluded = await runs.settle_group(db, g, start, end, prices="p-anom", anomalies="exclude")
    assert excluded["version"] == 2  # another choice is another input
    rows = await results(db, excluded["run"])
    assert rows[spiky, start][3:5] == ("excluded", 0)
    assert all(rows[flat, ts][3] == "excluded" for ts in range(start, end, 900))
    assert rows[spiky, start + 900][3] == "device"


async def test_device_schedules_and_energy_are_taken_from_what_devices_synced(db: Database) -> None:
    await device_registry.add(db, "dev", "bal-dev-2")
    g = await group(db, "G-devices")
    day = date(2026, 9, 9)
    start, end = day_bounds(day)
    await prices(db, "p-dev", day)
    m = melo()
    await registry.add_location(db, m, None, "bal-dev-2", None)
    await registry.join(db, g, m, start)
    docs = [
        ("schedules", f"{day}/0", start - 30000, {"ts": start - 30000, "day": str(day), "revision": 0, "kind": "day_ahead",
                                                   "slots": [[ts, 200, 0] for ts in range(start, end, 900)]}),
        ("schedules", f"{day}/1", start + 3600, {"ts": start + 3600, "day": str(day), "revision": 1, "kind": "intraday",
                                                  "slots": [[ts, 0, 100] for ts in range(start + 4500, end, 900)]}),
        ("energy", str(start), start, {"ts": start, "import_wh": 250.4, "export_wh": 0.0}),
        ("energy", str(start + 4500), start + 4500, {"ts": start + 4500, "import_wh": 0.0, "export_wh": 80.6}),
    ]
    await put(db, "documents", [{"device_id": "bal-dev-2", "stream": s, "key": k, "seq": n, "ts": ts,
                                 "data": json.dumps(d), "store_id": ""} for n, (s, k, ts, d) in enumerate(docs, 1)])
    run = await runs.settle_group(db, g, start, end, prices="p-dev")
    rows = await results(db, run["run"])
    assert rows[m, start][:5] == (200, "day_ahead", 250, "device", 50)
    assert rows[m, start + 4500][:5] == (-100, "intraday", -81, "device", 19)
    nominated = await reports.nomination(db, g, day)
    assert nominated[0]["schedule_kwh"] == Fraction(200, 1000).__float__() or str(nominated[0]["schedule_kwh"]) == "0.2"
    assert str(nominated[-1]["schedule_kwh"]) == "0.2"  # the day-ahead position, not the revision



async def test_the_nominated_position_carries_the_flexibility_the_devices_sent(db: Database) -> None:
    rng = random.Random(13)
    g = await group(db, "G-flex")
    day = date(2026, 9, 10)
    start, end = day_bounds(day)
    slots = list(range(start, end, 900))
    sent: dict[str, dict[int, tuple[int, int, int, int]]] = {}
    for n, device in enumerate(("bal-flex-1", "bal-flex-2", "bal-flex-old")):
        await device_registry.add(db, "dev", device)
        m = melo()
        await registry.add_location(db, m, None, device, None)
        await registry.join(db, g, m, start + (3600 if n == 1 else 0))  # the second joins at 01:00
        sent[device] = {ts: (rng.randrange(0, 900), rng.randrange(0, 300), rng.randrange(0, 1250),
                             rng.randrange(0, 1250)) for ts in slots}
    docs = [("schedules", f"{day}/0", start - 30000,
             {"ts": start - 30000, "day": str(day), "revision": 0, "kind": "day_ahead",
              "slots": [[ts, *(v[:2] if device.endswith("old") else v)] for ts, v in values.items()]})
            for device, values in sent.items()]
    await put(db, "documents", [{"device_id": device, "stream": s, "key": k, "seq": 1, "ts": ts,
                                 "data": json.dumps(d), "store_id": ""} for device, (s, k, ts, d) in zip(sent, docs, strict=True)])
    await member(db, g, "2026-09-01T00:00")  # no device: a substitute without flexibility
    await intake.refresh(db, start, end)
    nominated = await reports.nomination(db, g, day)
    assert len(nominated) == 96
    for row, ts in zip(nominated, slots, strict=True):
        flexible = ["bal-flex-1"] + (["bal-flex-2"] if ts >= start + 3600 else [])
        assert row["members_with_flex"] == len(flexible) and row["members"] == len(flexible) + 2
        assert row["flex_up_kwh"] == Decimal(sum(sent[d][ts][2] for d in flexible)) / 1000
        assert row["flex_down_kwh"] == Decimal(sum(sent[d][ts][3] for d in flexible)) / 1000
        scheduled = [*flexible, "bal-flex-old"]
        assert row["schedule_kwh"] == Decimal(sum(sent[d][ts][0] - sent[d][ts][1] for d in scheduled)) / 1000
    header = reports.as_csv(nominated).splitlines()[0]
    assert header == "start,schedule_kwh,flex_up_kwh,flex_down_kwh,members,substitutes,members_with_flex"

async def test_reports_as_csv_and_parquet(db: Database) -> None:
    g = await group(db, "G-report")
    day = date(2026, 6, 20)
    start, end = day_bounds(day)
    await prices(db, "p-rep", day, price="-12.5")
    m = await member(db, g, "2026-06-01T00:00")
    await schedules(db, m, {ts: 100 for ts in range(start, end, 900)})
    await actuals(db, m, {ts: (0, 23) for ts in range(start, end, 900)})
    run = await runs.settle_group(db, g, start, end, prices="p-rep")
    rows = await reports.run_rows(db, run["run"], "slot")
    csv_text = reports.as_csv(rows)
    assert csv_text.splitlines()[1] == ("2026-06-20T00:00:00+02:00,0.1,-0.023,-0.123,-12.5,0.0015375,1,0,0")
    table = pq.read_table(io.BytesIO(reports.as_parquet(rows)))
    assert table.num_rows == 96 and str(table.schema.field("cost_eur").type) == "decimal128(28, 9)"
    assert str(table.column("cost_eur")[0].as_py()) == "0.001537500"
    with pytest.raises(BalanceError, match="by: got 'day', allowed: slot, member"):
        await reports.run_rows(db, run["run"], "day")


async def test_runs_refuse_what_cannot_be_settled(db: Database) -> None:
    g = await group(db, "G-run-refusals")
    day = date(2026, 6, 21)
    start, end = day_bounds(day)
    cases = [
        (runs.settle_group(db, "no-group", start, end), 404, "group: 'no-group' is not a balance group"),
        (runs.settle_group(db, g, start, end, prices="nothing"), 404, "no imbalance price series named 'nothing'"),
        (runs.settle_group(db, g, start, end, anomalies="ignore"), 400, "anomalies: got 'ignore'"),
        (runs.settle_group(db, g, end, start), 400, "start before end"),
        (runs.settle_group(db, g, start + 60, end), 400, "quarter-hour boundaries"),
        (runs.upload_prices(db, "p", "timestamp,price\n2026-06-21T00:00:00Z,1\n2026-06-21T00:00:00Z,2\n"), 400,
         "row 3: interval 2026-06-21T00:00:00Z repeats row 2"),
    ]
    await prices(db, "p-short", day)
    cases.append((runs.settle_group(db, g, start, end + 900, prices="p-short"), 422,
                  "no imbalance price for the quarter-hour starting 2026-06-22T00:00:00+02:00"))
    for call, status, message in cases:
        with pytest.raises(BalanceError) as caught:
            await call
        assert caught.value.status == status and message in str(caught.value), str(caught.value)
