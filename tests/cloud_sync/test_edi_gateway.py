"""The EDI gateway against a real ``nattery-cloud serve`` (SQLite and PostgreSQL): files posted
by devices and operators and synced in the ``edi`` stream, the answers, the typed quarter-hours,
the original bytes, the size limit, reconciliation and the answers' way back to the device."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import Executable, func, select

from cloud_sync.db import connect
from cloud_sync.edi import pipeline, store
from cloud_sync.edi.pipeline import MAX_FILE_BYTES
from cloud_sync.schema.edi import edi_values
from common import sync_protocol as protocol
from common import mscons
from device.edi import export_day
from device.store import AsyncStore, Store
from device.sync import SyncClient
from tests.cloud_sync.aggregator import Aggregator, aggregator, batch_body, cloud_target, pg_url  # noqa: F401
from tests.cloud_sync.test_metrics import scrape
from tests.cloud_sync.edi_files import (
    DEVICE_PARTY, FIXTURE_MALO, FIXTURE_MELO, FIXTURES, GRID, MALO, MSB, build, day_file, day_start, profile,
)
from tests.device import test_edi as edi_case
from tests.device.test_sync import device_config

DAY = date(2026, 6, 15)


class Gateway:
    """The aggregator with an operator, one registered metering location per test and its device."""

    def __init__(self, agg: Aggregator) -> None:
        self.agg = agg
        self.op = agg.add_operator(f"op-{uuid.uuid4().hex[:8]}")
        self.device = f"dev-{uuid.uuid4().hex[:8]}"
        self.dev = agg.add_device(self.device)
        # A MeLo-ID of this test's own (the database is shared by the module's tests).
        self.melo = "DE000123456789" + uuid.uuid4().hex[:19].upper()
        self._next = uuid.uuid4().int % 10_000_000 * 10  # interchange references unique in the shared database

    def ref(self) -> int:
        self._next += 1
        return self._next

    async def request(self, method: str, path: str, credential: str | None = None, **kwargs: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {credential or self.op}", **kwargs.pop("headers", {})}
        async with aiohttp.ClientSession() as s, s.request(method, self.agg.url + path, headers=headers, **kwargs) as r:
            if r.content_type == "application/json":
                return r.status, await r.json()
            return r.status, await r.read()

    async def register(self, malo: str | None = None) -> None:
        for party in (DEVICE_PARTY, GRID):
            assert (await self.request("PUT", f"/v1/edi/partners/{party.id}", json={"qualifier": party.qualifier}))[0] == 200
        status, answer = await self.request("PUT", f"/v1/edi/locations/{self.melo}",
                                            json={"malo_id": malo, "device_id": self.device})
        assert status == 200, answer

    async def post(self, text: str | bytes, credential: str | None = None, name: str | None = None) -> dict[str, Any]:
        data = text.encode("latin-1") if isinstance(text, str) else text
        status, answer = await self.request("POST", "/v1/edi" + (f"?name={name}" if name else ""),
                                            credential or self.dev, data=data)
        assert status == 200, answer
        return dict(answer)

    def values(self, source: str = "device") -> list[tuple[str, int, int, str]]:
        v = edi_values.c
        rows = self.agg_rows(select(v.obis, v.slot_start, v.wh, v.status).where(v.melo_id == self.melo, v.source == source)
                             .order_by(v.obis, v.slot_start))
        return [(str(o), int(t), int(w), str(s)) for o, t, w, s in rows]

    def agg_rows(self, statement: Executable) -> list[tuple[Any, ...]]:
        from tests.cloud_sync.aggregator import _fetch, run

        return list(run(_fetch(self.agg.target, statement)))


@pytest.fixture
async def gateway(aggregator: Aggregator) -> AsyncIterator[Gateway]:
    made = Gateway(aggregator)
    await made.register(None)
    yield made


def exported_wh(made: mscons.LoadProfile) -> list[tuple[str, int, int, str]]:
    return sorted((s.obis, v.start, int(v.kwh * 1000), v.status) for s in made.series for v in s.values)


@pytest.mark.parametrize(("day", "slots"), [(date(2026, 3, 29), 92), (date(2026, 10, 25), 100), (DAY, 96)])
async def test_device_days_are_accepted_and_stored_typed_clock_changes_both_ways(
        gateway: Gateway, day: date, slots: int) -> None:
    made = profile(day, gateway.ref(), melo=gateway.melo, substitute_every=9)
    answer = await gateway.post(build(made))
    assert answer["accepted"] is True and answer["aperak"] is None and answer["errors"] == []
    assert f"UCI+{made.reference}+9900000000003:500+9800000000007:502+7'" in answer["contrl"]
    stored = gateway.values()
    assert stored == exported_wh(made) and len(stored) == 2 * slots
    assert sum(s == "substitute" for *_, s in stored) == 2 * len(range(0, slots, 9))


async def test_original_bytes_are_kept_unchanged(gateway: Gateway) -> None:
    text = build(profile(DAY, gateway.ref(), melo=gateway.melo)).replace("UNA:+.? '", "UNA:+,? '").replace("0.", "0,")
    data = text.replace("'", "'\r\n").encode("latin-1")  # a segment a line, comma decimals
    answer = await gateway.post(data)
    assert answer["accepted"] is True, answer["errors"]
    status, body = await gateway.request("GET", f"/v1/edi/files/{answer['file_id']}/content")
    assert status == 200 and body == data
    assert gateway.values()[0][2] == 125  # "0,125" kWh → 125 Wh


async def test_application_errors_get_an_aperak_and_store_no_values(gateway: Gateway) -> None:
    ref = gateway.ref()
    wrong_version = day_file(DAY, ref, melo=gateway.melo).replace(":2.4c'", ":2.5'")
    answer = await gateway.post(wrong_version)
    assert answer["accepted"] is False and f"UCI+{ref}+" in answer["contrl"] and "+7'" in answer["contrl"]
    assert answer["errors"] == [{"level": "APERAK", "code": "Z39", "message": str(ref), "where": "UNH S009 DE0057 2.5",
                                 "text": "MIG version '2.5' is not in force on the document date 2026-06-16; '2.4c' is"}]
    assert "ERC+Z39'" in answer["aperak"] and f"RFF+ACE:MSCONS{ref:08d}'" in answer["aperak"]
    future = day_file(DAY, gateway.ref(), melo=gateway.melo, document_date=day_start(DAY) + 7200)
    answer = await gateway.post(future)
    assert [e["code"] for e in answer["errors"]] == ["Z41"] and "ERC+Z41'" in answer["aperak"]
    # a whole file from the future: its period ends before its document date, which is next month
    ahead = date.today() + timedelta(days=30)
    answer = await gateway.post(day_file(ahead, gateway.ref(), melo=gateway.melo))
    assert [(e["code"], e["where"]) for e in answer["errors"]] == [("Z41", "DTM+137")]
    assert "is after the file arrived" in answer["errors"][0]["text"]
    assert gateway.values() == []


async def test_metrics_count_the_files_by_source_and_outcome(gateway: Gateway) -> None:
    key = "nattery_aggregator_edi_files_total"

    async def counts() -> dict[str, float]:
        status, figures = await scrape(gateway.agg, gateway.op)
        assert status == 200
        return {dict(labels)["outcome"]: value for (name, labels), value in figures.items()
                if name == key and dict(labels)["source"] == "device"}

    before = await counts()
    await gateway.post(build(profile(DAY, gateway.ref(), melo=gateway.melo)))
    await gateway.post(day_file(DAY, gateway.ref(), melo=gateway.melo).replace(":2.4c'", ":2.5'"))  # APERAK Z39
    await gateway.post(b"\x00\x01 not EDIFACT at all")  # CONTRL
    after = await counts()
    assert {k: after[k] - before.get(k, 0) for k in after} == {
        "accepted": 1, "rejected_application": 1, "rejected_syntax": 1}


async def test_corrupt_files_get_a_contrl_rejection(gateway: Gateway) -> None:
    ref = gateway.ref()
    text = day_file(DAY, ref, melo=gateway.melo)
    answer = await gateway.post(text.replace(f"UNZ+1+{ref}'", f"UNZ+3+{ref}'"))
    assert answer["accepted"] is False and answer["aperak"] is None
    assert f"UCI+{ref}+9900000000003:500+9800000000007:502+4+29+UNZ'" in answer["contrl"]
    assert answer["errors"][0]["code"] == "29" and answer["errors"][0]["level"] == "CONTRL"
    answer = await gateway.post(b"\x00\x01 not EDIFACT at all")
    assert answer["accepted"] is False and "+4+21+UNB'" in answer["contrl"]


async def test_a_reactive_energy_series_beside_the_active_ones_is_accepted_not_stored(gateway: Gateway) -> None:
    made = profile(DAY, gateway.ref(), melo=gateway.melo)
    reactive = mscons.Series("1-1:3.29.0", made.series[0].values)
    answer = await gateway.post(build(replace(made, series=(*made.series, reactive)), reference=made.reference))
    assert answer["accepted"] is True and answer["aperak"] is None
    assert len(gateway.values()) == 192  # import and export, 96 each; the reactive series is not stored
    only = profile(date(2026, 6, 16), gateway.ref(), melo=gateway.melo)
    answer = await gateway.post(build(replace(only, series=(reactive,)), reference=only.reference))
    assert [e["code"] for e in answer["errors"]] == ["Z20"] and "reactive energy only" in answer["errors"][0]["text"]


async def test_several_messages_one_rejected_alone_and_duplicates(gateway: Gateway) -> None:
    good, bad = profile(DAY, gateway.ref(), melo=gateway.melo), profile(date(2026, 6, 16), gateway.ref(), melo=gateway.melo)
    bad = replace(bad, series=(bad.series[0], mscons.Series("1-1:2.8.0", bad.series[1].values)))
    answer = await gateway.post(build(good, bad, reference=good.reference))
    assert answer["accepted"] is False and [e["code"] for e in answer["errors"]] == ["Z20"]
    assert answer["aperak"].count("UNH+") == 1 and f"RFF+ACW:{bad.reference}'" in answer["aperak"]
    assert len(gateway.values()) == 192  # the good message's day only
    again = await gateway.post(build(good, reference=good.reference))  # the same interchange reference
    assert "+4+26+UNB'" in again["contrl"] and "received before" in again["errors"][0]["text"]
    same_document = await gateway.post(build(good, reference=str(gateway.ref())))
    assert [e["code"] for e in same_document["errors"]] == ["Z31"]


async def test_a_device_may_only_send_its_own_locations(gateway: Gateway) -> None:
    other = gateway.agg.add_device(f"dev-{uuid.uuid4().hex[:8]}")
    answer = await gateway.post(day_file(DAY, gateway.ref(), melo=gateway.melo), credential=other)
    assert [e["code"] for e in answer["errors"]] == ["Z17"]
    assert (await gateway.request("PUT", f"/v1/edi/partners/{GRID.id}", credential=other,
                                  json={"qualifier": "332"}))[0] == 403


async def test_files_beyond_the_limit_are_refused_with_413_unread(gateway: Gateway) -> None:
    status, answer = await gateway.request(
        "POST", "/v1/edi", gateway.dev, data=b"x" * 10, expect100=True,
        headers={"Content-Length": str(MAX_FILE_BYTES + 1)})
    assert status == 413 and answer == {"error": f"EDI file of {MAX_FILE_BYTES + 1} bytes; the limit is {MAX_FILE_BYTES} bytes"}

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read until it passes the limit
        for _ in range(MAX_FILE_BYTES // 65536 + 2):
            yield b"'" * 65536

    status, answer = await gateway.request("POST", "/v1/edi", gateway.dev, data=chunks())
    assert status == 413 and answer == {"error": f"EDI file larger than the limit of {MAX_FILE_BYTES} bytes"}


async def test_reconciliation_of_device_and_partner_values(gateway: Gateway) -> None:
    status, _ = await gateway.request("PUT", f"/v1/edi/locations/{gateway.melo}",
                                      json={"malo_id": MALO, "device_id": gateway.device})
    assert status == 200
    device = profile(DAY, gateway.ref(), melo=gateway.melo)
    assert (await gateway.post(build(device)))["accepted"]
    # The official values: the MSB's load profile of the market location (13025, OBIS channel 0,
    # sender the grid operator), with one quarter-hour 60 Wh higher.
    official = profile(DAY, gateway.ref(), melo=MALO, sender=GRID, receiver=DEVICE_PARTY)
    values = list(official.series[0].values)
    values[4] = replace(values[4], kwh=values[4].kwh + Decimal("0.060"))
    official = replace(official, check_id=mscons.CHECK_ID_MALO_PROFILE,
                       series=(mscons.Series("1-0:1.29.0", tuple(values)), mscons.Series("1-0:2.29.0", official.series[1].values)))
    answer = await gateway.post(build(official), credential=gateway.op)
    assert answer["accepted"] is True, answer["errors"]
    status, report = await gateway.request("GET", f"/v1/edi/reconciliation?melo={gateway.melo}&from=2026-06-15&to=2026-06-15")
    assert status == 200
    imports, exports = report["days"]
    assert (imports["obis"], imports["slots"], imports["diff_wh"], imports["flagged_slots"]) == ("1-1:1.29.0", 96, -60, 1)
    assert imports["device_wh"] == sum(int(v.kwh * 1000) for v in device.series[0].values)
    assert (exports["diff_wh"], exports["flagged"]) == (0, False)
    status, loose = await gateway.request("GET", f"/v1/edi/reconciliation?melo={gateway.melo}&from=2026-06-15&to=2026-06-15"
                                                 "&slot_wh=60&day_pct=0.5")
    assert (status, loose["days"][0]["flagged_slots"], loose["tolerance"]) == (200, 0, {"slot_wh": 60, "day_pct": 0.5})
    for query, error in (("slot_wh=-1", "slot_wh: got -1, allowed: 0 or more"),
                         ("day_pct=nan", "day_pct: got 'nan', expected a finite number"),
                         ("to=15.06.2026", "to: got '15.06.2026', expected YYYY-MM-DD")):
        status, answer = await gateway.request("GET", f"/v1/edi/reconciliation?melo={gateway.melo}&{query}")
        assert (status, answer) == (400, {"error": error})
    status, text = await gateway.request("GET", f"/v1/edi/reconciliation?melo={gateway.melo}&from=2026-06-15&to=2026-06-15&format=csv")
    rows = list(csv.reader(io.StringIO(text.decode())))
    assert len(rows) == 1 + 192 and rows[5][6:] == ["-60", "1"]
    status, answer = await gateway.request("GET", f"/v1/edi/reconciliation?melo={gateway.melo}", gateway.dev)
    assert status == 200
    other = gateway.agg.add_device(f"dev-{uuid.uuid4().hex[:8]}")
    status, answer = await gateway.request("GET", f"/v1/edi/reconciliation?melo={gateway.melo}", other)
    assert status == 403 and "may only read its own metering locations" in answer["error"]


async def test_market_partner_files_are_accepted_and_an_old_mig_refused(gateway: Gateway) -> None:
    """The files of tests/cloud_sync/fixtures, posted by an operator as a partner's: the hand-built
    ones after the MIG 2.4c examples are accepted, their values stored with their statuses; the
    real public 2.2e file gets a CONTRL that accepts its syntax and an APERAK Z39."""
    status, _ = await gateway.request("PUT", f"/v1/edi/partners/{MSB.id}", json={"qualifier": MSB.qualifier})
    assert status == 200
    status, _ = await gateway.request("PUT", f"/v1/edi/locations/{FIXTURE_MELO}", json={"malo_id": FIXTURE_MALO})
    assert status == 200
    for name in ("mscons_13025_malo_2024-12-16.edi", "mscons_13018_melo_2024-10-27_28.edi"):
        answer = await gateway.post((FIXTURES / name).read_bytes(), credential=gateway.op)
        assert (answer["accepted"], answer["errors"], answer["aperak"]) == (True, [], None), name
        assert "UCI+MSB00000" in answer["contrl"] and "+7'" in answer["contrl"]
    v = edi_values.c
    rows = gateway.agg_rows(select(v.obis, v.status, func.count()).where(v.melo_id == FIXTURE_MELO, v.source == "partner")
                            .group_by(v.obis, v.status).order_by(v.obis, v.status))
    assert [tuple(r) for r in rows] == [("1-1:1.29.0", "preliminary", 6), ("1-1:1.29.0", "proposed", 2),
                                        ("1-1:1.29.0", "substitute", 3), ("1-1:1.29.0", "true", 281),
                                        ("1-1:2.29.0", "true", 292)]  # 96 + 100 + 96 quarter-hours each
    real = (FIXTURES / "vdmitriyev_MSCONS_TL_SAMPLE02_2.2e_first_day.edi").read_bytes()
    answer = await gateway.post(real, credential=gateway.op)
    assert answer["accepted"] is False and "UCI+13337815E25+1234567889111:500+" in answer["contrl"]
    assert [(e["level"], e["code"]) for e in answer["errors"]] == [("APERAK", "Z39")]
    assert "ERC+Z39'" in answer["aperak"] and "FTX+Z02+++UNH S009 DE0057 2.2e'" in answer["aperak"]
    status, stored = await gateway.request("GET", f"/v1/edi/files/{answer['file_id']}/content")
    assert (status, stored) == (200, real)


async def test_the_stream_runner_takes_new_files_of_the_devices_whose_stream_moved(gateway: Gateway) -> None:
    made = profile(DAY, gateway.ref(), melo=gateway.melo)
    item = {"seq": 1, "key": "MSCONS_runner.edi", "data": {"name": "MSCONS_runner.edi", "created_at": 1.0,
                                                           "period_start": made.start, "period_end": made.end,
                                                           "content": build(made)}}
    status, answer = await gateway.request("POST", "/v1/ingest/edi", gateway.dev,
                                           data=batch_body(gateway.device, "edi", [item]),
                                           headers={"Content-Type": protocol.CONTENT_TYPE})
    assert status == 200, answer
    db = await connect(gateway.agg.target)
    try:
        since = await pipeline.run_new_streams(db, 0.0)
        assert since > 0.0
        async with db.read() as conn:
            assert await store.pending_stream_files(conn, gateway.device, 10) == []
            (answer_row,) = await store.answers_for(conn, gateway.device, ["MSCONS_runner.edi"])
    finally:
        await db.close()
    assert answer_row["state"] == "accepted" and len(gateway.values()) == 192


async def test_synced_files_run_through_the_gateway_and_the_answers_reach_the_device(
        gateway: Gateway, tmp_path: Path) -> None:
    market = replace(edi_case.MARKET, melo_id=gateway.melo)
    seeded = Store(tmp_path / f"{gateway.device}.db")
    edi_case.fill(seeded, DAY, skip={3})
    made = export_day(seeded, market, DAY, edi_case.TZ, edi_case.after(DAY))
    broken = export_day(seeded, replace(market, melo_id="DE0001234567890000000000000000099"), DAY, edi_case.TZ,
                        edi_case.after(DAY))
    seeded.close()
    assert made is not None and broken is not None
    store = await AsyncStore(tmp_path / f"{gateway.device}.db").open()
    try:
        await SyncClient(device_config(tmp_path, gateway.device, gateway.agg, gateway.dev), store).drain()
        files = {f["name"]: f for f in await store.call(Store.recent_edi_files, 10)}
    finally:
        await store.close()
    assert files[made.name]["ack_state"] == "accepted"
    assert files[broken.name]["ack_state"] == "rejected"
    assert [(e["code"], e["level"]) for e in files[broken.name]["ack"]["errors"]] == [("Z10", "APERAK")]
    status, body = await gateway.request("GET", f"/v1/edi/files/{files[made.name]['ack']['file_id']}/content")
    assert status == 200 and body == made.content.encode()

