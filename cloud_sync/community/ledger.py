"""Matching and settlement in the database: each tick exactly once, corrections as versions.

A tick is matched in one transaction that inserts its ``community_ticks`` row first, then its
trades, then adds the change to every member's balance, and clears its pending mark; a failure
anywhere leaves none of it. The tick row's primary key (community, tick, version) is what makes
a tick matched once when several aggregator instances share one PostgreSQL: the second
instance to insert the same version waits for the first one's transaction and then fails on
the key, and its whole transaction is rolled back (:class:`TickTaken`). On SQLite, writers
take turns (``BEGIN IMMEDIATE``) and the second finds the version there.

Late data: a position that arrives or changes after its tick was matched marks it pending
again. The next matching compares the positions' digest with the latest version's: equal (a
duplicate) does nothing; different makes version n + 1 with its own trades, and balances
change by the difference between the new version's and the old one's sums. Earlier versions
and their trades are kept; "the trades of a tick" means those of its latest version.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.community import sql
from cloud_sync.community.members import Community, get, members_at
from cloud_sync.community.model import CommunityError, Position, Tick, TickPrices
from cloud_sync.community.pairs import Pairs
from cloud_sync.community.positions import at_tick, from_devices
from cloud_sync.community.settle import money, run_tick
from cloud_sync.db import Database
from cloud_sync.schema.community import (community_balances, community_members, community_pending, community_ticks,
                                         community_trades)

DEVICE_LOOKBACK_S = 7 * 86_400
SUMS = ("sold_wh", "bought_wh", "revenue", "cost", "fee", "saving")
COLUMNS = {"sold_wh": "sold_wh", "bought_wh": "bought_wh", "revenue": "revenue_neur", "cost": "cost_neur",
           "fee": "fee_neur", "saving": "saving_neur"}

TRADE_COLUMNS = tuple(c.name for c in community_trades.columns)
BALANCE_COLUMNS = ("community_id", "member_id", *COLUMNS.values())
ADD_TO_BALANCE = ("ON CONFLICT (community_id, member_id) DO UPDATE SET "
                  + ", ".join(f"{c} = {community_balances.name}.{c} + excluded.{c}" for c in COLUMNS.values()))


class TickTaken(Exception):
    """Another instance stored this version of the tick first; this transaction must roll back."""


@dataclass(frozen=True)
class Outcome:
    tick_start: int
    version: int  # 0: nothing to do (no change since the latest version)
    trades: int
    shared_wh: int
    trades_sha256: str


def positions_digest(tick: Tick) -> str:
    lines = "".join(f"{p.member},{p.import_wh},{p.export_wh}\n" for p in tick.positions)
    return hashlib.sha256(lines.encode()).hexdigest()


async def _latest(conn: AsyncConnection, community_id: str, tick_start: int) -> Any:
    t = community_ticks.c
    return (await conn.execute(select(community_ticks).where(
        t.community_id == community_id, t.tick_start == tick_start).order_by(t.version.desc()).limit(1))).one_or_none()


async def _version_sums(conn: AsyncConnection, community_id: str, tick: Any) -> dict[str, dict[str, int]]:
    """Per member, the sums of one stored version of a tick."""
    t = community_trades.c
    rows = (await conn.execute(select(t.seller, t.buyer, t.wh, t.price_ueur_kwh).where(
        t.community_id == community_id, t.tick_start == tick.tick_start, t.version == tick.version))).all()
    ids = sorted({r.seller for r in rows} | {r.buyer for r in rows})
    index = {m: k for k, m in enumerate(ids)}
    pairs = Pairs(*(np.array(col, np.int64) for col in (
        [index[r.seller] for r in rows], [index[r.buyer] for r in rows], [r.wh for r in rows],
        [r.price_ueur_kwh for r in rows])))
    sums = money(len(ids), pairs, TickPrices(tick.feed_in_ueur_kwh, tick.grid_import_ueur_kwh, tick.fee_ueur_kwh))
    return {m: {k: int(sums[k][i]) for k in SUMS} for i, m in enumerate(ids)}


async def match_tick(conn: AsyncConnection, community: Community, tick_start: int, instance: str,
                     now: float | None = None) -> Outcome:
    """Match and settle one tick inside the caller's write transaction (see the module)."""
    memberships = {m.member.id: m for m in await members_at(conn, community.id, tick_start)}
    tick = Tick(tick_start, community.prices, tuple(
        Position(member, import_wh, export_wh, memberships[member].ask, memberships[member].bid)
        for member, import_wh, export_wh in await at_tick(conn, community.id, tick_start) if member in memberships
    ), community.tick_s, community.fixed_price)
    digest = positions_digest(tick)
    latest = await _latest(conn, community.id, tick_start)
    p = community_pending.c
    clear = delete(community_pending).where(p.community_id == community.id, p.tick_start == tick_start)
    if latest is not None and latest.positions_sha256 == digest:
        await conn.execute(clear)
        return Outcome(tick_start, 0, 0, 0, latest.trades_sha256)
    result = run_tick(tick, {k: m.member for k, m in memberships.items()}, community.rule)
    version = 1 if latest is None else latest.version + 1
    trades = result.trades
    try:
        await conn.execute(community_ticks.insert().values(
            community_id=community.id, tick_start=tick_start, version=version, rule=community.rule,
            feed_in_ueur_kwh=community.prices.feed_in, grid_import_ueur_kwh=community.prices.grid_import,
            fee_ueur_kwh=community.prices.fee, positions_sha256=digest, trades_sha256=result.digest(),
            trades=len(trades), shared_wh=int(trades.wh.sum()), matched_at=time.time() if now is None else now,
            instance=instance))
    except IntegrityError:
        raise TickTaken(f"tick {tick_start} version {version} of {community.id} was stored by another instance") from None
    ids = result.book.ids
    fee = community.prices.fee
    await sql.insert_rows(conn, community_trades, TRADE_COLUMNS, [
        (community.id, tick_start, version, k, ids[s], ids[b], w, pr, fee)
        for k, (s, b, w, pr) in enumerate(zip(trades.seller.tolist(), trades.buyer.tolist(), trades.wh.tolist(),
                                              trades.price.tolist(), strict=True))])
    new = money(len(ids), trades, community.prices)
    traded = np.flatnonzero(new["sold_wh"] + new["bought_wh"])
    columns = [new[k][traded].tolist() for k in SUMS]
    change = {ids[i]: dict(zip(SUMS, sums, strict=True)) for i, *sums in zip(traded.tolist(), *columns, strict=True)}
    if latest is not None:
        for member, old in (await _version_sums(conn, community.id, latest)).items():
            mine = change.setdefault(member, dict.fromkeys(SUMS, 0))
            for k in SUMS:
                mine[k] -= old[k]
    await _add_to_balances(conn, community.id, change)
    await conn.execute(clear)
    return Outcome(tick_start, version, len(trades), int(trades.wh.sum()), result.digest())


async def _add_to_balances(conn: AsyncConnection, community_id: str, change: dict[str, dict[str, int]]) -> None:
    # Members in id order: two instances settling different ticks lock balance rows in the same
    # order and so cannot deadlock.
    await sql.insert_rows(conn, community_balances, BALANCE_COLUMNS,
                          [(community_id, m, *(v[k] for k in SUMS)) for m, v in sorted(change.items()) if any(v.values())],
                          ADD_TO_BALANCE)


async def due(conn: AsyncConnection, community: Community, now: float, grace_s: float) -> list[int]:
    """Pending ticks that ended at least ``grace_s`` before ``now``, oldest first."""
    p = community_pending.c
    rows = await conn.execute(select(p.tick_start).where(
        p.community_id == community.id, p.tick_start + community.tick_s + grace_s <= now).order_by(p.tick_start))
    return list(rows.scalars())


def trades_query(community_id: str, start: int, end: int, member: str | None = None) -> Any:
    """The latest version's trades of the ticks in ``[start, end)`` (a member's only, if given)."""
    t, k = community_trades.c, community_ticks.c
    latest = select(k.tick_start, func.max(k.version).label("version")).where(
        k.community_id == community_id, k.tick_start >= start, k.tick_start < end).group_by(k.tick_start).subquery()
    q = select(community_trades).join(latest, (t.tick_start == latest.c.tick_start) & (t.version == latest.c.version)) \
        .where(t.community_id == community_id)
    if member is not None:
        q = q.where((t.seller == member) | (t.buyer == member))
    return q.order_by(t.tick_start, t.seq)


async def balances(conn: AsyncConnection, community_id: str) -> list[dict[str, int | str]]:
    b = community_balances.c
    rows = await conn.execute(select(community_balances).where(b.community_id == community_id).order_by(b.member_id))
    return [{"member": r.member_id, **{c: getattr(r, c) for c in COLUMNS.values()}} for r in rows]


def check_window(start: int, end: int) -> None:
    if not 0 <= start < end:
        raise CommunityError(f"period: from {start} to {end} is not allowed (0 ≤ from < to, epoch seconds)")


@dataclass(frozen=True)
class MatchRun:
    outcomes: list[Outcome]
    taken: int  # ticks another instance matched first

    def as_dict(self) -> dict[str, object]:
        return {"matched": [o.__dict__ for o in self.outcomes if o.version], "unchanged": sum(not o.version for o in self.outcomes),
                "taken_by_another_instance": self.taken}


async def match_due(db: Database, community_id: str, instance: str, now: float | None = None,
                    grace_s: float = 0.0) -> MatchRun:
    """Positions from members' devices brought in (the last week), then every due tick matched,
    each in its own transaction."""
    now = time.time() if now is None else now
    async with db.begin() as conn:
        community = await get(conn, community_id)
        await from_devices(conn, community, int(now) - DEVICE_LOOKBACK_S, int(now) + 1)
    async with db.read() as conn:
        ticks = await due(conn, community, now, grace_s)
    outcomes, taken = [], 0
    for tick_start in ticks:
        try:
            async with db.begin() as conn:
                outcomes.append(await match_tick(conn, community, tick_start, instance, now))
        except TickTaken:
            taken += 1
    return MatchRun(outcomes, taken)


async def member_summary(conn: AsyncConnection, device: str, start: int, end: int) -> list[dict[str, object]]:
    """For each community membership of ``device``'s metering location(s): its trades of the
    ticks in ``[start, end)`` (latest versions) summed up, with the money against the grid."""
    m, k = community_members.c, community_ticks.c
    members = (await conn.execute(select(m.community_id, m.member_id).where(m.device_id == device)
                                  .distinct().order_by(m.community_id, m.member_id))).all()
    out: list[dict[str, object]] = []
    for community_id, member in members:
        trades = trades_query(community_id, start, end, member).subquery()
        rows = (await conn.execute(select(trades, k.feed_in_ueur_kwh, k.grid_import_ueur_kwh).join(
            community_ticks, (k.community_id == trades.c.community_id) & (k.tick_start == trades.c.tick_start)
            & (k.version == trades.c.version)))).all()
        sold = [r for r in rows if r.seller == member]
        bought = [r for r in rows if r.buyer == member]
        out.append({
            "community": community_id, "member": member,
            "sold_wh": sum(r.wh for r in sold), "bought_wh": sum(r.wh for r in bought),
            "buyers": len({r.buyer for r in sold}), "sellers": len({r.seller for r in bought}),
            "revenue_neur": sum(r.wh * r.price_ueur_kwh for r in sold),
            "cost_neur": sum(r.wh * (r.price_ueur_kwh + r.fee_ueur_kwh) for r in bought),
            # against feed-in for what it sold and against the import for what it bought
            "saving_neur": sum(r.wh * (r.price_ueur_kwh - r.feed_in_ueur_kwh) for r in sold)
            + sum(r.wh * (r.grid_import_ueur_kwh - r.price_ueur_kwh - r.fee_ueur_kwh) for r in bought),
        })
    return out
