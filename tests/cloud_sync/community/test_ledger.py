"""Matching and settlement in the aggregator's database, on SQLite and PostgreSQL: trades and
balances in one transaction, each tick matched once (also by two racing instances on one
PostgreSQL), duplicates ignored, late data as a correction version, membership over time."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import func, select, text

from cloud_sync.community import ledger, members, positions
from cloud_sync.community.model import Member, Order, Position, Role, Tick, TickPrices
from cloud_sync.community.settle import run_tick
from cloud_sync.db import Database, connect
from cloud_sync.registry import Authenticator
from cloud_sync.schema.community import community_pending, community_ticks, community_trades
from tests.cloud_sync.aggregator import cloud_target, pg_url  # noqa: F401

DB = web.AppKey("db", Database)
AUTH = web.AppKey("auth", Authenticator)
T0 = 1_767_225_600  # 2026-01-01T00:00Z
PRICES = TickPrices(feed_in=80_000, grid_import=320_000, fee=10_000)
NOW = T0 + 86_400
SYSTEMS = {
    "a": Member("a", Role.PROSUMER, 8_000, 10_000, 8_000),
    "b": Member("b", Role.PROSUMER, 5_000, 0, 4_000, export_limit_w=2_000),
    "c": Member("c"),
    "d": Member("d"),
}


@pytest.fixture
async def db(cloud_target: str) -> AsyncIterator[Database]:
    database = await connect(cloud_target)
    yield database
    await database.close()


async def community(db: Database, rule: str = "price_priority") -> members.Community:
    c = members.Community(f"c-{uuid.uuid4().hex[:8]}", "test", rule, PRICES)
    async with db.begin() as conn:
        await members.create(conn, c)
        for m in SYSTEMS.values():
            ask = Order(120_000, T0 * 1000 - 5) if m.id == "a" else None
            await members.join(conn, c, members.Membership(m, T0, ask=ask))
    return c


def metered(tick: int, a: int = 1_500, b: int = 900, c: int = 700, d: int = 1_300) -> list[positions.Metered]:
    return [positions.Metered("a", tick, 0, a), positions.Metered("b", tick, 0, b),
            positions.Metered("c", tick, c, 0), positions.Metered("d", tick, d, 0)]


async def store(db: Database, c: members.Community, rows: list[positions.Metered]) -> int:
    async with db.begin() as conn:
        return await positions.store(conn, c, rows)


async def rows(db: Database, query: Any) -> list[Any]:
    async with db.read() as conn:
        return list((await conn.execute(query)).all())


async def balances(db: Database, c: members.Community) -> dict[str, tuple[int, ...]]:
    async with db.read() as conn:
        return {b["member"]: tuple(b[k] for k in ledger.COLUMNS.values()) for b in await ledger.balances(conn, c.id)}


def expected(ticks: list[list[positions.Metered]], systems: dict[str, Member] = SYSTEMS) -> tuple[list[str], dict[str, tuple[int, ...]]]:
    """Trade lines and balance totals the pure core gives for these ticks."""
    lines: list[str] = []
    totals: dict[str, list[int]] = {}
    for tick_rows in ticks:
        start = tick_rows[0].tick_start
        tick = Tick(start, PRICES, tuple(Position(p.member, p.import_wh, p.export_wh,
                                                  Order(120_000, T0 * 1000 - 5) if p.member == "a" else None)
                                         for p in tick_rows))
        result = run_tick(tick, systems, "price_priority")
        lines += result.lines()
        b = result.balances
        for i, m in enumerate(result.book.ids):
            sums = [int(getattr(b, k)[i]) for k in ledger.COLUMNS]
            if any(sums):
                totals[m] = [x + y for x, y in zip(totals.get(m, [0] * 6), sums, strict=True)]
    return lines, {m: tuple(v) for m, v in totals.items()}


def stored_lines(trade_rows: list[Any]) -> list[str]:
    return [f"{r.tick_start},{r.seq},{r.seller},{r.buyer},{r.wh},{r.price_ueur_kwh}" for r in trade_rows]


async def test_due_ticks_are_matched_once_with_trades_and_balances_as_the_core_gives(db: Database) -> None:
    c = await community(db)
    ticks = [metered(T0), metered(T0 + 900, a=400, d=2_000)]
    assert await store(db, c, [p for t in ticks for p in t]) == 8
    run = await ledger.match_due(db, c.id, "one", now=NOW)
    assert [(o.tick_start, o.version) for o in run.outcomes] == [(T0, 1), (T0 + 900, 1)]
    lines, totals = expected(ticks)
    assert stored_lines(await rows(db, ledger.trades_query(c.id, T0, T0 + 1800))) == lines
    assert await balances(db, c) == totals
    # b's 2 kW limit binds: 500 Wh of its 900 Wh in each quarter-hour
    assert totals["b"][0] == 1_000
    again = await ledger.match_due(db, c.id, "one", now=NOW)
    assert again.outcomes == [] and await balances(db, c) == totals


async def test_a_tick_not_yet_over_waits(db: Database) -> None:
    c = await community(db)
    await store(db, c, metered(T0))
    assert (await ledger.match_due(db, c.id, "one", now=T0 + 899)).outcomes == []
    assert (await ledger.match_due(db, c.id, "one", now=T0 + 900 + 59, grace_s=60)).outcomes == []
    assert len((await ledger.match_due(db, c.id, "one", now=T0 + 900 + 60, grace_s=60)).outcomes) == 1


async def test_the_same_readings_ingested_again_change_nothing(db: Database) -> None:
    c = await community(db)
    await store(db, c, metered(T0))
    await ledger.match_due(db, c.id, "one", now=NOW)
    before = await balances(db, c)
    assert await store(db, c, metered(T0)) == 0
    assert await rows(db, select(community_pending).where(community_pending.c.community_id == c.id)) == []
    assert (await ledger.match_due(db, c.id, "one", now=NOW)).outcomes == []
    assert await balances(db, c) == before


async def test_late_data_makes_a_correction_version_and_keeps_the_old_trades(db: Database) -> None:
    c = await community(db)
    await store(db, c, metered(T0) + metered(T0 + 900))
    await ledger.match_due(db, c.id, "one", now=NOW)
    first = await rows(db, ledger.trades_query(c.id, T0, T0 + 900))
    # d's meter reading for the first tick arrives late and smaller
    assert await store(db, c, [positions.Metered("d", T0, 600, 0)]) == 1
    run = await ledger.match_due(db, c.id, "one", now=NOW)
    assert [(o.tick_start, o.version) for o in run.outcomes] == [(T0, 2)]
    corrected = metered(T0, d=600)
    lines, totals = expected([corrected, metered(T0 + 900)])
    assert stored_lines(await rows(db, ledger.trades_query(c.id, T0, T0 + 1800))) == lines
    assert await balances(db, c) == totals  # as if the first version had never been settled
    t = community_trades.c
    kept = await rows(db, select(community_trades).where(t.community_id == c.id, t.tick_start == T0, t.version == 1)
                      .order_by(t.seq))
    assert stored_lines(kept) == stored_lines(first)
    versions = await rows(db, select(community_ticks.c.version, community_ticks.c.trades_sha256).where(
        community_ticks.c.community_id == c.id, community_ticks.c.tick_start == T0).order_by(community_ticks.c.version))
    assert [v for v, _ in versions] == [1, 2] and versions[0][1] != versions[1][1]


async def test_a_failure_after_the_trades_leaves_neither_trades_nor_balances(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    c = await community(db)
    await store(db, c, metered(T0))

    async def broken(*args: Any) -> None:
        raise RuntimeError("disk gone")

    monkeypatch.setattr(ledger, "_add_to_balances", broken)
    with pytest.raises(RuntimeError, match="disk gone"):
        await ledger.match_due(db, c.id, "one", now=NOW)
    assert await rows(db, select(community_ticks).where(community_ticks.c.community_id == c.id)) == []
    assert await rows(db, select(community_trades).where(community_trades.c.community_id == c.id)) == []
    assert await balances(db, c) == {}
    monkeypatch.undo()
    assert len((await ledger.match_due(db, c.id, "one", now=NOW)).outcomes) == 1  # still pending


async def test_membership_over_time(db: Database) -> None:
    c = await community(db)
    async with db.begin() as conn:
        await members.leave(conn, c, "c", T0 + 900)
        # b's feed-in limit is lifted from the third tick on: a new interval, the old one ends
        await members.join(conn, c, members.Membership(Member("b", Role.PROSUMER, 5_000, 0, 4_000), T0 + 1800))
        with pytest.raises(members.CommunityError, match="memberships of one member may not overlap"):
            await members.join(conn, c, members.Membership(SYSTEMS["d"], T0))
        with pytest.raises(members.CommunityError, match="no open membership"):
            await members.leave(conn, c, "c", T0 + 2700)
    await store(db, c, metered(T0) + metered(T0 + 900) + metered(T0 + 1800))
    await ledger.match_due(db, c.id, "one", now=NOW)
    trades = await rows(db, ledger.trades_query(c.id, T0, T0 + 2700))
    assert any(r.buyer == "c" for r in trades if r.tick_start == T0)
    assert not any(r.buyer == "c" for r in trades if r.tick_start > T0)
    sold_b = {t: sum(r.wh for r in trades if r.seller == "b" and r.tick_start == t) for t in (T0, T0 + 900, T0 + 1800)}
    assert sold_b == {T0: 500, T0 + 900: 500, T0 + 1800: 900}


async def test_a_membership_changed_after_a_tick_was_matched_counts_from_the_next(db: Database) -> None:
    # an instance keeps the memberships it read while the community's members_token stays;
    # a change, here made by another instance, sets a new token
    c = await community(db)
    await store(db, c, metered(T0))
    await ledger.match_due(db, c.id, "one", now=NOW)
    other = await connect(db.target)
    try:
        async with other.begin() as conn:
            await members.join(conn, c, members.Membership(Member("b", Role.PROSUMER, 5_000, 0, 4_000), T0 + 900))
            await members.leave(conn, c, "c", T0 + 900)
    finally:
        await other.close()
    await store(db, c, metered(T0 + 900))
    await ledger.match_due(db, c.id, "one", now=NOW)
    trades = await rows(db, ledger.trades_query(c.id, T0, T0 + 1800))
    sold_b = {t: sum(r.wh for r in trades if r.seller == "b" and r.tick_start == t) for t in (T0, T0 + 900)}
    assert sold_b == {T0: 500, T0 + 900: 900}
    assert {r.tick_start for r in trades if r.buyer == "c"} == {T0}


async def test_two_instances_match_every_tick_exactly_once(cloud_target: str) -> None:
    one, two = await connect(cloud_target), await connect(cloud_target)
    try:
        c = await community(one)
        ticks = [metered(T0 + 900 * k, a=300 + 37 * k, d=500 + 53 * k) for k in range(24)]
        await store(one, c, [p for t in ticks for p in t])
        a, b = await asyncio.gather(ledger.match_due(one, c.id, "one", now=NOW), ledger.match_due(two, c.id, "two", now=NOW))
        matched = [o.tick_start for o in a.outcomes + b.outcomes if o.version]
        assert sorted(matched) == [T0 + 900 * k for k in range(24)]
        k = community_ticks.c
        assert await rows(db=one, query=select(func.count()).select_from(community_ticks).where(k.community_id == c.id)) == [(24,)]
        lines, totals = expected(ticks)
        assert stored_lines(await rows(one, ledger.trades_query(c.id, T0, NOW))) == lines
        assert await balances(one, c) == totals
    finally:
        await one.close()
        await two.close()


@pytest.mark.postgres
async def test_the_second_instance_to_insert_a_tick_waits_then_rolls_back(pg_url: str) -> None:
    """Instance one holds the tick's row uncommitted; instance two computes the same tick and
    blocks on the key; when one commits, two fails on it and writes nothing."""
    one, two = await connect(pg_url), await connect(pg_url)
    try:
        c = await community(one)
        await store(one, c, metered(T0))
        async with one.begin() as conn:
            first = await ledger.match_tick(conn, c, T0, "one", NOW)

            async def second() -> ledger.Outcome:
                async with two.begin() as other:
                    return await ledger.match_tick(other, c, T0, "two", NOW)

            racing = asyncio.create_task(second())
            await wait_for_a_lock_wait(two)
            assert not racing.done()
        with pytest.raises(ledger.TickTaken):
            await racing
        assert first.version == 1
        lines, totals = expected([metered(T0)])
        assert stored_lines(await rows(one, ledger.trades_query(c.id, T0, T0 + 900))) == lines
        assert await balances(one, c) == totals
    finally:
        await one.close()
        await two.close()


async def wait_for_a_lock_wait(db: Database, timeout: float = 10.0) -> None:
    """Until some backend of this database waits for a lock (the racing insert)."""
    async with asyncio.timeout(timeout):
        while True:
            async with db.read() as conn:
                waiting = await conn.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"))
            if waiting:
                return
            await asyncio.sleep(0.01)  # polling a condition, not timing


async def test_a_community_set_up_from_a_list(db: Database) -> None:
    c = members.Community(f"c-{uuid.uuid4().hex[:8]}", "test", "greedy", PRICES)
    async with db.begin() as conn:
        await members.create(conn, c)
        await members.join_new(conn, c, [members.Membership(m, T0) for m in SYSTEMS.values()])
        assert [m.member for m in await members.history(conn, c.id)] == list(SYSTEMS.values())
        with pytest.raises(members.CommunityError, match="member a: has a membership already"):
            await members.join_new(conn, c, [members.Membership(SYSTEMS["a"], T0 + 900)])
        with pytest.raises(members.CommunityError, match="a member appears twice"):
            await members.join_new(conn, c, [members.Membership(Member("e"), T0)] * 2)


async def test_each_instances_job_matches_what_is_due(cloud_target: str) -> None:
    """Two aggregator applications on one database, each with its matching job (a short period
    here): every due tick is matched once, and a tick not over yet waits."""
    from aiohttp.test_utils import TestServer

    from cloud_sync.community import api
    from cloud_sync.limits import FailureLimiter

    setup = await connect(cloud_target)
    servers, dbs = [], []
    try:
        c = await community(setup)
        now = int(time.time()) // 900 * 900
        await store(setup, c, metered(now - 1800) + metered(now - 900) + metered(now + 3600))
        for _ in range(2):
            db = await connect(cloud_target)
            app = web.Application()
            app[DB], app[AUTH] = db, Authenticator(db, FailureLimiter(10, 60))
            api.add_routes(app, DB, AUTH, every_s=0.05, grace_s=0)
            server = TestServer(app)
            await server.start_server()
            servers.append(server)
            dbs.append(db)
        k = community_ticks.c

        async def matched() -> list[Any]:
            return await rows(setup, select(k.tick_start, k.version).where(k.community_id == c.id).order_by(k.tick_start))

        async with asyncio.timeout(60):  # a hang becomes a failure; the wait is for a state
            while len(await matched()) < 2:
                await asyncio.sleep(0.05)
        for server in servers:  # stop both jobs before looking closer
            await server.close()
        assert await matched() == [(now - 1800, 1), (now - 900, 1)]  # the hour ahead is not due
    finally:
        for server in servers:
            await server.close()
        for db in dbs:
            await db.close()
        await setup.close()

