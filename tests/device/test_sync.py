"""The sync client against a real aggregator process: outages, kill -9 on both sides,
revocation, device isolation. Every scenario ends with an exact match, item by item, of the
device's readings and the aggregator's rows."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from common import mscons
from device import config
from device.edi import export_day
from device.ports import free_port
from device.store import AsyncStore, Store
from device.sync import SyncClient
from tests.cloud_sync.aggregator import Aggregator, aggregator, cloud_target, sqlite_aggregator  # noqa: F401 (pg_url: conftest.py)
from tests.device import test_edi as edi_case
from tools.bench.sync import realistic_readings

DAY = 86_400
#: Readings of the kill tests: five batches of BATCH, enough for their crash points (four uploads
#: at most) to fire with batches still to come.
BATCH = 500
BURST = 5 * BATCH


def fill(path: Path, count: int, interval_s: float = 5.0, start: float | None = None) -> None:
    store = Store(path)
    first = time.time() - count * interval_s if start is None else start
    readings = list(realistic_readings(first, count, interval_s))
    for i in range(0, count, 5000):
        store.insert_readings(readings[i:i + 5000])
    store.close()


def device_config(tmp_path: Path, device: str, agg: Aggregator, credential: str, **cloud: Any) -> config.Config:
    settings = {"url": agg.url, "credential": credential, "batch_size": 2000, "interval_s": 0.1,
                "backoff_min_s": 0.05, "backoff_max_s": 0.4, "timeout_s": 10.0, **cloud}
    return config.Config().replace(
        device={"id": device, "data_dir": str(tmp_path)}, store={"path": str(tmp_path / f"{device}.db")},
        cloud=settings,
    )


def assert_exact_match(db_path: Path, agg: Aggregator, device: str) -> None:
    """The aggregator holds every reading of the device's store exactly once, with the same
    sequence number, time and data (compared item by item; the message says what differs)."""
    conn = sqlite3.connect(db_path)
    mine = [(s, ts, orjson.loads(d)) for s, ts, d in conn.execute("SELECT id, ts, data FROM readings ORDER BY id")]
    conn.close()
    items = [orjson.loads(line) for _, line in agg.rows(device)]
    theirs = [(item["seq"], item["ts"], item["data"]) for item in items]
    if theirs == mine:
        return
    stored = collections.Counter(seq for seq, _, _ in theirs)
    doubled = sorted(seq for seq, n in stored.items() if n > 1)
    lost = sorted({seq for seq, _, _ in mine} - stored.keys())
    first = next((m[0] for m, t in zip(mine, theirs, strict=False) if m != t), None)
    pytest.fail(f"{device}: {len(mine)} readings on the device, {len(theirs)} on the aggregator; "
                f"lost {len(lost)} {lost[:10]}, doubled {len(doubled)} {doubled[:10]}, "
                f"the lists first differ at the device's sequence {first}")


async def until(condition: Callable[[], Awaitable[bool] | bool], what: str, limit_s: float = 60.0) -> None:
    """Wait for a state (not a timing assertion: the limit only turns a hang into a failure)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        result = condition()
        if await result if asyncio.iscoroutine(result) else result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


class Outage:
    """The device's network while the aggregator on ``port`` keeps running: down (nothing listens
    on :attr:`url`, so connections are refused) until :meth:`end`, then every connection to
    :attr:`url` is forwarded to the aggregator."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def end(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for writer in self._open:
            writer.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._open |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy until either side closes, then close the writing side."""
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        writer.close()
        self._open.discard(writer)


async def kill_in_turn(agg: Aggregator, crashes: Sequence[str], uploads: Sequence[asyncio.Task[None]]) -> None:
    """The aggregator, started armed with ``crashes[0]``, dies at each crash point in turn while
    ``uploads`` are still running: each restart arms the next point (its n-th pass in the new
    process), the last restart none. What one kill lost or doubled, the later ones cannot undo
    (the aggregator deletes nothing; a client whose acknowledged batch went missing has its next
    one refused as out of order, 425, and never finishes), so uploads that finish with an exact
    match prove it for every kill."""
    for crash, following in zip(crashes, (*crashes[1:], ""), strict=True):
        await until(agg.killed, f"the aggregator to die at {crash}")
        assert not all(task.done() for task in uploads), f"the uploads were done before {crash}"
        agg.start(crash=following)


@pytest.fixture
async def device_store(tmp_path: Path) -> AsyncIterator[Callable[[str], Awaitable[AsyncStore]]]:
    opened: list[AsyncStore] = []

    async def open_store(device: str) -> AsyncStore:
        store = await AsyncStore(tmp_path / f"{device}.db").open()
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        await store.close()


async def test_every_stream_arrives_exactly_once(
    aggregator: Aggregator, tmp_path: Path, device_store: Callable[[str], Awaitable[AsyncStore]]
) -> None:
    credential = aggregator.add_device("sync-all")
    fill(tmp_path / "sync-all.db", 3000)
    store = await device_store("sync-all")
    await store.call(Store.add_event, "info", "test", "settlements follow")
    db = Store(tmp_path / "sync-all.db")
    slot = int(time.time()) // 900 * 900 - 900
    db.db.execute("INSERT INTO settlements (ts, import_wh, export_wh, cost_eur, computed_at) VALUES (?, 10, 0, 0.1, 1)",
                  [slot])
    db.db.execute("UPDATE settlements SET cost_eur = 0.2 WHERE ts = ?", [slot])
    db.db.execute("INSERT INTO edi_files (name, created_at, period_start, period_end, content) "
                  "VALUES ('MSCONS_1.edi', 1, 0, 900, 'UNB+UNOC:3+x')")
    db.add_schedule("2026-06-17", 0, "day_ahead", slot, {slot: (250, 0, 1250, 900), slot + 900: (0, 125, 0, 1250)})
    db.close()
    client = SyncClient(device_config(tmp_path, "sync-all", aggregator, credential), store)
    await client.drain()
    assert_exact_match(tmp_path / "sync-all.db", aggregator, "sync-all")
    assert aggregator.documents("sync-all", "settlements")[str(slot)]["cost_eur"] == 0.2
    assert aggregator.documents("sync-all", "edi")["MSCONS_1.edi"]["content"] == "UNB+UNOC:3+x"
    assert aggregator.documents("sync-all", "schedules")["2026-06-17/0"] == {
        "ts": slot, "day": "2026-06-17", "revision": 0, "kind": "day_ahead",
        "slots": [[slot, 250, 0, 1250, 900], [slot + 900, 0, 125, 0, 1250]]}
    slots = await store.call(Store.energy_slots, 0, 2e9)
    assert len(slots) >= 10
    stored = aggregator.documents("sync-all", "energy")
    assert {int(k): v["import_wh"] for k, v in stored.items()} == {s["ts"]: s["import_wh"] for s in slots}
    assert client.stats["state"] == "ok"
    assert client.stats["streams"]["readings"] | {"bytes": 0} == {
        "cursor": 3000, "pending": 0, "lag_s": 0.0, "batches": 2, "items": 3000, "bytes": 0}


async def test_three_days_offline_then_the_backlog_drains(
    aggregator: Aggregator, tmp_path: Path, device_store: Callable[[str], Awaitable[AsyncStore]]
) -> None:
    credential = aggregator.add_device("offline")
    backlog = 3 * DAY // 60  # three days of a reading a minute: what counts is their age, not their number
    fill(tmp_path / "offline.db", backlog, interval_s=60, start=time.time() - 3 * DAY)
    store = await device_store("offline")
    network = Outage(aggregator.port)
    # rng 0: every retry after the shortest backoff, so the failures pile up without waiting
    cfg = device_config(tmp_path, "offline", aggregator, credential, batch_size=1000, url=network.url)
    client = SyncClient(cfg, store, rng=lambda: 0.0)
    task = asyncio.create_task(client.run())
    try:
        await until(lambda: client.stats["consecutive_failures"] >= 4, "repeated failures")
        assert client.stats["state"] == "failing"
        assert "ClientConnectorError" in client.stats["last_error"]
        assert client.stats["streams"]["readings"]["pending"] == backlog
        assert client.stats["lag_s"] >= 3 * DAY - 60
        assert client.stats["next_retry_s"] == 0.05
        await network.end()
        await until(lambda: client.stats["state"] == "ok" and client.stats["streams"]["readings"]["pending"] == 0,
                    "the backlog to drain")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await network.close()
    assert client.stats["state"] == "ok"
    assert_exact_match(tmp_path / "offline.db", aggregator, "offline")


@pytest.mark.parametrize("crash", ["before_upload:3", "after_ack:2"])
def test_device_killed_during_upload_resumes_exactly(
    sqlite_aggregator: Aggregator, tmp_path: Path, crash: str
) -> None:
    device = "kill-" + crash.replace(":", "-").replace("_", "-")
    credential = sqlite_aggregator.add_device(device)
    fill(tmp_path / f"{device}.db", BURST)
    env = {**os.environ, "NATTERY_DEVICE_ID": device, "NATTERY_STORE_PATH": str(tmp_path / f"{device}.db"),
           "NATTERY_CLOUD_CREDENTIAL": credential, "NATTERY_CLOUD_BATCH_SIZE": str(BATCH),
           "NATTERY_LOG_LEVEL": "warning", "NATTERY_DEVICE_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-c", "from device.cli import main; main()", "sync", "--cloud", sqlite_aggregator.url, "--drain"]
    first = subprocess.run(command, env={**env, "TEST_SYNC_CRASH": crash}, capture_output=True, timeout=120)
    assert first.returncode == -signal.SIGKILL, first.stderr.decode()[-2000:]
    stored = len(sqlite_aggregator.rows(device))
    assert 0 < stored < BURST
    second = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    assert json.loads(second.stdout)["streams"]["readings"]["cursor"] == BURST
    assert_exact_match(tmp_path / f"{device}.db", sqlite_aggregator, device)


async def test_aggregator_killed_during_ingest_loses_and_doubles_nothing(
    cloud_target: str, tmp_path: Path, device_store: Callable[[str], Awaitable[AsyncStore]]
) -> None:
    device = "agg-killed"
    crashes = ("before_commit:2", "after_commit:3")
    agg = Aggregator(cloud_target, tmp_path / "crashing.log")
    credential = agg.add_device(device)
    fill(tmp_path / f"{device}.db", BURST)
    agg.start(crash=crashes[0])
    store = await device_store(device)
    client = SyncClient(device_config(tmp_path, device, agg, credential, batch_size=BATCH), store)
    task = asyncio.create_task(client.drain())
    try:
        await kill_in_turn(agg, crashes, [task])
        await asyncio.wait_for(task, 120)
    finally:
        task.cancel()
        agg.stop()
    assert_exact_match(tmp_path / f"{device}.db", agg, device)


async def test_revoked_device_stops_and_says_why(
    sqlite_aggregator: Aggregator, tmp_path: Path, device_store: Callable[[str], Awaitable[AsyncStore]]
) -> None:
    credential = sqlite_aggregator.add_device("revoked")
    fill(tmp_path / "revoked.db", 100)
    store = await device_store("revoked")
    client = SyncClient(device_config(tmp_path, "revoked", sqlite_aggregator, credential), store)
    await client.drain()
    sqlite_aggregator.revoke_device("revoked")
    fill(tmp_path / "revoked.db", 50)
    with pytest.raises(Exception, match="HTTP 403: device 'revoked' is revoked"):
        await client.drain(max_failures=1)
    assert client.stats["state"] == "failing"
    assert len(sqlite_aggregator.rows("revoked")) == 100


async def test_a_device_cannot_upload_as_another(
    sqlite_aggregator: Aggregator, tmp_path: Path, device_store: Callable[[str], Awaitable[AsyncStore]]
) -> None:
    sqlite_aggregator.add_device("victim")
    thief_credential = sqlite_aggregator.add_device("thief")
    fill(tmp_path / "victim.db", 10)
    store = await device_store("victim")
    client = SyncClient(device_config(tmp_path, "victim", sqlite_aggregator, thief_credential), store)
    with pytest.raises(Exception, match="HTTP 403: device 'thief' may not write data of device 'victim'"):
        await client.drain(max_failures=1)
    assert sqlite_aggregator.rows("victim") == sqlite_aggregator.rows("thief") == []


async def test_one_minute_means_instead_of_raw_readings(
    sqlite_aggregator: Aggregator, tmp_path: Path, device_store: Callable[[str], Awaitable[AsyncStore]]
) -> None:
    credential = sqlite_aggregator.add_device("minutes")
    start = (time.time() // 60 - 20) * 60
    fill(tmp_path / "minutes.db", 600, interval_s=1.0, start=start)  # ten minutes at 1 s
    store = await device_store("minutes")
    client = SyncClient(device_config(tmp_path, "minutes", sqlite_aggregator, credential, readings="1min"), store)
    await client.drain()
    items = [json.loads(line) for _, line in sqlite_aggregator.rows("minutes", "readings_1min")]
    assert [i["seq"] for i in items] == [int(start // 60) + m for m in range(9)]  # the 10th minute is open
    conn = sqlite3.connect(tmp_path / "minutes.db")
    mean = conn.execute("SELECT avg(grid_w) FROM readings WHERE ts >= ? AND ts < ?", (start, start + 60)).fetchone()[0]
    conn.close()
    assert items[0]["data"]["samples"] == 60
    assert items[0]["data"]["roles"]["grid_w"] == pytest.approx(mean)
    assert sqlite_aggregator.rows("minutes") == []


async def test_lost_cursor_and_lost_aggregator_data_are_recovered(
    sqlite_aggregator: Aggregator, tmp_path: Path, device_store: Callable[[str], Awaitable[AsyncStore]]
) -> None:
    credential = sqlite_aggregator.add_device("amnesia")
    fill(tmp_path / "amnesia.db", 2500)  # two batches
    store = await device_store("amnesia")
    await SyncClient(device_config(tmp_path, "amnesia", sqlite_aggregator, credential), store).drain()
    await store.call(Store.set_sync_cursor, "readings", 0)  # e.g. a restored backup of the device
    again = SyncClient(device_config(tmp_path, "amnesia", sqlite_aggregator, credential), store)
    await again.drain()
    assert again.stats["streams"]["readings"]["items"] == 0  # resumed where the sqlite_aggregator stands
    assert_exact_match(tmp_path / "amnesia.db", sqlite_aggregator, "amnesia")

    fresh = Aggregator(str(tmp_path / "restored-cloud.db"), tmp_path / "fresh.log")  # the cloud lost it all
    fresh_credential = fresh.add_device("amnesia")
    fresh.start()
    try:
        await SyncClient(device_config(tmp_path, "amnesia", fresh, fresh_credential), store).drain()
    finally:
        fresh.stop()
    assert_exact_match(tmp_path / "amnesia.db", fresh, "amnesia")


def test_backoff_doubles_with_full_jitter_up_to_the_cap(tmp_path: Path) -> None:
    agg = Aggregator("unused", tmp_path / "x.log")
    cfg = device_config(tmp_path, "b", agg, "dev.b.x", backoff_min_s=1.0, backoff_max_s=30.0)
    highest = SyncClient(cfg, AsyncStore(tmp_path / "b.db"), rng=lambda: 1.0)
    lowest = SyncClient(cfg, AsyncStore(tmp_path / "b.db"), rng=lambda: 0.0)
    assert [highest.backoff.delay(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert {lowest.backoff.delay(n) for n in range(1, 8)} == {1.0}
    upside_down = device_config(tmp_path, "c", agg, "dev.c.x", backoff_min_s=10.0, backoff_max_s=5.0)
    with pytest.raises(ValueError, match=r"cloud.backoff_max_s: 5.0; allowed: at least cloud.backoff_min_s \(10.0\)"):
        SyncClient(upside_down, AsyncStore(tmp_path / "c.db"))


def test_sync_needs_url_and_credential(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cloud.url: empty"):
        SyncClient(config.Config(), AsyncStore(tmp_path / "x.db"))
    with pytest.raises(ValueError, match=r"cloud.credential: empty; set NATTERY_CLOUD_CREDENTIAL"):
        SyncClient(config.Config().replace(cloud={"url": "http://x"}), AsyncStore(tmp_path / "x.db"))


async def test_an_mscons_export_reaches_the_aggregator_byte_for_byte(
    aggregator: Aggregator, tmp_path: Path, device_store: Callable[[str], Awaitable[AsyncStore]]
) -> None:
    credential = aggregator.add_device("sync-edi")
    day = date(2026, 10, 25)  # 100 quarter-hours: the largest daily file
    seeded = Store(tmp_path / "sync-edi.db")
    edi_case.fill(seeded, day, skip={3})
    made = export_day(seeded, edi_case.MARKET, day, edi_case.TZ, edi_case.after(day))
    seeded.close()
    assert made is not None
    store = await device_store("sync-edi")
    await SyncClient(device_config(tmp_path, "sync-edi", aggregator, credential), store).drain()
    received = aggregator.documents("sync-edi", "edi")[made.name]["content"]
    assert received == made.content
    assert len(mscons.values_of(mscons.parse(received), mscons.OBIS_IMPORT)) == 100


async def _community_with(target: str, device: str, tick: int) -> None:
    """A community on the aggregator where ``device``'s home bought 800 Wh at ``tick``."""
    from cloud_sync.community import ledger, members, positions
    from cloud_sync.community.model import Member, Role, TickPrices
    from cloud_sync.db import connect

    db = await connect(target)
    try:
        c = members.Community(f"street-{device}", "", "greedy", TickPrices(79_400, 320_000, 10_000))
        async with db.begin() as conn:
            await members.create(conn, c)
            await members.join_new(conn, c, [
                members.Membership(Member("DE-A", Role.PROSUMER, 9_000, 0, 8_000), tick),
                members.Membership(Member("DE-B"), tick, device_id=device)])
            await positions.store(conn, c, [positions.Metered("DE-A", tick, 0, 1_000),
                                            positions.Metered("DE-B", tick, 800, 0)])
            await ledger.match_tick(conn, c, tick, "test")
    finally:
        await db.close()


async def test_the_homes_community_trades_come_back_for_its_page(
    aggregator: Aggregator, tmp_path: Path, device_store: Callable[[str], Awaitable[AsyncStore]]
) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    device = f"sync-comm-{os.getpid()}-{id(tmp_path) % 10_000}"
    credential = aggregator.add_device(device)
    cfg = device_config(tmp_path, device, aggregator, credential)
    zone = ZoneInfo(cfg.device.timezone)
    today = datetime.now(zone).date()
    midnight = int(datetime.combine(today, datetime.min.time(), zone).timestamp())
    month = int(datetime.combine(today.replace(day=1), datetime.min.time(), zone).timestamp())
    await _community_with(aggregator.target, device, midnight)
    store = await device_store(device)
    await SyncClient(cfg, store).drain()
    summary = await store.call(Store.community_summary, midnight, month)
    for period in ("today", "month"):
        (row,) = summary[period]
        # 800 Wh at the band's middle, 19.47 ct/kWh, plus the 1 ct fee
        assert (row["member"], row["bought_wh"], row["sellers"]) == ("DE-B", 800, 1)
        assert row["cost_eur"] == pytest.approx(800 * 204_700 / 1e9)
        assert row["saving_eur"] == pytest.approx(800 * (320_000 - 194_700 - 10_000) / 1e9)
    assert (await store.call(Store.community_summary, midnight + 86_400, month))["today"] == []  # not tomorrow's
