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
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, cast

import numpy as np
from sqlalchemy import BigInteger, Select, delete, func, literal, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.community import members
from cloud_sync.community.book import Book, assemble
from cloud_sync.community.members import Community, get
from cloud_sync.community.model import CommunityError
from cloud_sync.community.positions import from_devices
from cloud_sync.community.settle import run_book
from cloud_sync.db import Database, Kind, insert_rows, upsert
from cloud_sync.schema.community import (community_balances, community_members, community_pending, community_positions,
                                         community_ticks, community_trades)

DEVICE_LOOKBACK_S = 7 * 86_400
COLUMNS = {"sold_wh": "sold_wh", "bought_wh": "bought_wh", "revenue": "revenue_neur", "cost": "cost_neur",
           "fee": "fee_neur", "saving": "saving_neur"}


class TickTaken(Exception):
    """Another instance stored this version of the tick first; this transaction must roll back."""


@dataclass(frozen=True)
class Outcome:
    tick_start: int
    version: int  # 0: nothing to do (no change since the latest version)
    trades: int
    shared_wh: int
    trades_sha256: str


def positions_digest(members: Sequence[str], import_wh: Sequence[int], export_wh: Sequence[int]) -> str:
    """SHA-256 of a tick's positions (members in id order): equal digests, equal positions."""
    lines = "".join(f"{m},{i},{e}\n" for m, i, e in zip(members, import_wh, export_wh, strict=True))
    return hashlib.sha256(lines.encode()).hexdigest()


async def _book(conn: AsyncConnection, community: Community, tick_start: int) -> tuple[Book, str]:
    """The tick's book from its stored positions (checked when they were stored) of the members
    in the community at its start, and the positions' digest."""
    roster = await members.roster(conn, community)
    c = community_positions.c
    rows = (await conn.execute(select(c.member_id, c.import_wh, c.export_wh).where(
        c.community_id == community.id, c.tick_start == tick_start))).all()
    ids, imports, exports = (list(col) for col in zip(*rows, strict=True)) if rows else ([], [], [])
    kept, intervals = roster.at(tick_start, ids)
    order = kept.tolist()
    ids = [ids[k] for k in order]
    import_wh, export_wh = np.array(imports, np.int64)[kept], np.array(exports, np.int64)[kept]
    book = assemble(tick_start, community.prices, community.fixed_price, tuple(ids), import_wh, export_wh,
                    roster.terms_of(intervals))
    return book, positions_digest(ids, import_wh.tolist(), export_wh.tolist())


async def _latest(conn: AsyncConnection, community_id: str, tick_start: int) -> Any:
    t = community_ticks.c
    return (await conn.execute(select(community_ticks).where(
        t.community_id == community_id, t.tick_start == tick_start).order_by(t.version.desc()).limit(1))).one_or_none()


def _legs(community_id: str, tick_start: int, version: int, feed_in: int, grid_import: int, sign: int) -> list[Select[Any]]:
    """The trades of one version of a tick as changes to balances (``sign`` −1: taken back),
    each trade twice: its seller's change and its buyer's (the money of
    :func:`cloud_sync.community.settle.money`)."""
    t = community_trades.c
    mine = (t.community_id == community_id, t.tick_start == tick_start, t.version == version)
    wh, price, fee, none = t.wh * sign, t.price_ueur_kwh, t.fee_ueur_kwh, literal(0, BigInteger)

    def leg(member: Any, *amounts: Any) -> Select[Any]:
        # labelled: a select keeps only one of equal unlabelled columns
        return select(member.label("member"), *(a.label(k) for a, k in zip(amounts, COLUMNS.values(), strict=True))
                      ).where(*mine)

    return [leg(t.seller, wh, none, wh * price, none, none, wh * (price - feed_in)),
            leg(t.buyer, none, wh, none, wh * (price + fee), wh * fee, wh * (grid_import - price - fee))]


async def _add_to_balances(conn: AsyncConnection, community: Community, tick_start: int, version: int,
                           latest: Any) -> None:
    """Every member's balance changed by its sums over the new version's trades (less those of
    the version before, for a correction), computed and written by the database in one
    statement. Members in id order: two instances settling different ticks lock balance rows
    in the same order and so cannot deadlock."""
    legs = _legs(community.id, tick_start, version, community.prices.feed_in, community.prices.grid_import, 1)
    if latest is not None:
        legs += _legs(community.id, tick_start, latest.version, latest.feed_in_ueur_kwh, latest.grid_import_ueur_kwh, -1)
    change = union_all(*legs).subquery()
    member, *amounts = change.c
    # PostgreSQL: sorted and grouped by bytes, not by the database's collation (10,000 members:
    # 33 of 40 ms of the sort); SQLite compares bytes anyway
    key = member.collate("C") if conn.dialect.name == "postgresql" else member
    sums = select(literal(community.id), key, *(func.sum(a) for a in amounts)).group_by(key).order_by(key)
    b = community_balances.c
    add = upsert(cast(Kind, conn.dialect.name), community_balances).from_select(
        [b.community_id, b.member_id, *(b[k] for k in COLUMNS.values())], sums)
    await conn.execute(add.on_conflict_do_update(index_elements=[b.community_id, b.member_id], set_={
        k: b[k] + add.excluded[k] for k in COLUMNS.values()}))


async def match_tick(conn: AsyncConnection, community: Community, tick_start: int, instance: str,
                     now: float | None = None) -> Outcome:
    """Match and settle one tick inside the caller's write transaction (see the module)."""
    book, digest = await _book(conn, community, tick_start)
    latest = await _latest(conn, community.id, tick_start)
    p = community_pending.c
    clear = delete(community_pending).where(p.community_id == community.id, p.tick_start == tick_start)
    if latest is not None and latest.positions_sha256 == digest:
        await conn.execute(clear)
        return Outcome(tick_start, 0, 0, 0, latest.trades_sha256)
    result = run_book(book, community.rule)
    version = 1 if latest is None else latest.version + 1
    trades, trades_sha256 = result.trades, result.digest()
    shared_wh = int(trades.wh.sum())
    try:
        await conn.execute(community_ticks.insert().values(
            community_id=community.id, tick_start=tick_start, version=version, rule=community.rule,
            feed_in_ueur_kwh=community.prices.feed_in, grid_import_ueur_kwh=community.prices.grid_import,
            fee_ueur_kwh=community.prices.fee, positions_sha256=digest, trades_sha256=trades_sha256,
            trades=len(trades), shared_wh=shared_wh, matched_at=time.time() if now is None else now,
            instance=instance))
    except IntegrityError:
        raise TickTaken(f"tick {tick_start} version {version} of {community.id} was stored by another instance") from None
    ids = book.ids
    n = len(trades)
    await insert_rows(conn, community_trades, list(zip(
        repeat(community.id, n), repeat(tick_start, n), repeat(version, n), range(n),
        [ids[s] for s in trades.seller.tolist()], [ids[b] for b in trades.buyer.tolist()], trades.wh.tolist(),
        trades.price.tolist(), repeat(community.prices.fee, n), strict=True)))
    await _add_to_balances(conn, community, tick_start, version, latest)
    await conn.execute(clear)
    return Outcome(tick_start, version, n, shared_wh, trades_sha256)


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
