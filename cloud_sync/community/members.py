"""Communities and their members over time, in the aggregator's database.

A membership is an interval ``[valid_from, valid_to)`` of tick starts carrying the member's
system and standing orders; a change of any of them ends the open interval and starts a new
one, so a tick is always matched with the members and systems of its own time. Every change
sets a new ``members_token``, so an instance may keep the memberships it read (its
:class:`Roster`) until the token changes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.community.book import Ints, Terms
from cloud_sync.community.model import (RULE_NAMES, TICK_S, CommunityError, Member, Order, TickPrices, check_id,
                                        parse_role)
from cloud_sync.schema.community import communities, community_members


@dataclass(frozen=True)
class Community:
    id: str
    name: str
    rule: str
    prices: TickPrices
    fixed_price: int | None = None
    tick_s: int = TICK_S

    def __post_init__(self) -> None:
        check_id("community id", self.id)
        if self.rule not in RULE_NAMES:
            raise CommunityError(f"rule: {self.rule!r} is not allowed (one of {', '.join(RULE_NAMES)})")

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "rule": self.rule, "feed_in_ueur_kwh": self.prices.feed_in,
                "grid_import_ueur_kwh": self.prices.grid_import, "fee_ueur_kwh": self.prices.fee,
                "fixed_price_ueur_kwh": self.fixed_price, "tick_s": self.tick_s}


@dataclass(frozen=True)
class Membership:
    member: Member
    valid_from: int
    valid_to: int | None = None
    device_id: str | None = None
    ask: Order | None = None
    bid: Order | None = None

    def as_dict(self) -> dict[str, object]:
        m = self.member
        return {"member": m.id, "role": str(m.role), "pv_wp": m.pv_wp, "battery_wh": m.battery_wh,
                "inverter_w": m.inverter_w, "export_limit_w": m.export_limit_w, "device": self.device_id,
                "valid_from": self.valid_from, "valid_to": self.valid_to,
                "ask_ueur_kwh": self.ask.limit if self.ask else None, "bid_ueur_kwh": self.bid.limit if self.bid else None}


async def create(conn: AsyncConnection, community: Community, now: float | None = None) -> None:
    if await conn.scalar(select(communities.c.id).where(communities.c.id == community.id)) is not None:
        raise CommunityError(f"community id: {community.id!r} exists already")
    await conn.execute(communities.insert().values(
        id=community.id, name=community.name, rule=community.rule, feed_in_ueur_kwh=community.prices.feed_in,
        grid_import_ueur_kwh=community.prices.grid_import, fee_ueur_kwh=community.prices.fee,
        fixed_price_ueur_kwh=community.fixed_price, tick_s=community.tick_s,
        created_at=time.time() if now is None else now, members_token=secrets.token_hex(16)))


async def get(conn: AsyncConnection, community_id: str) -> Community:
    row = (await conn.execute(select(communities).where(communities.c.id == community_id))).one_or_none()
    if row is None:
        raise CommunityError(f"community: no community {community_id!r}")
    return Community(row.id, row.name, row.rule, TickPrices(row.feed_in_ueur_kwh, row.grid_import_ueur_kwh,
                                                            row.fee_ueur_kwh), row.fixed_price_ueur_kwh, row.tick_s)


async def all_communities(conn: AsyncConnection) -> list[Community]:
    ids = (await conn.execute(select(communities.c.id).order_by(communities.c.id))).scalars().all()
    return [await get(conn, i) for i in ids]


_COLUMNS = tuple(community_members.c[name] for name in (
    "member_id", "role", "pv_wp", "battery_wh", "inverter_w", "export_limit_w", "valid_from", "valid_to", "device_id",
    "ask_ueur_kwh", "bid_ueur_kwh", "order_posted_ms"))


def _membership(r: Sequence[Any]) -> Membership:
    """From a row of :data:`_COLUMNS`."""
    member_id, role, pv_wp, battery_wh, inverter_w, export_limit_w, valid_from, valid_to, device, ask, bid, posted = r
    return Membership(Member(member_id, parse_role(role), pv_wp, battery_wh, inverter_w, export_limit_w),
                      valid_from, valid_to, device, None if ask is None else Order(ask, posted),
                      None if bid is None else Order(bid, posted))


@dataclass(frozen=True)
class Roster:
    """Every membership interval of a community, as arrays in member id order (Python string
    order, the books' order; a member's intervals by ``valid_from``), with what each fixes for
    a tick (:class:`~cloud_sync.community.book.Terms`), read at one ``token``."""

    token: str
    ids: tuple[str, ...]
    valid_from: Ints
    valid_to: Ints  # OPEN: no end
    terms: Terms

    OPEN: ClassVar[int] = 2**62

    @classmethod
    def of(cls, token: str, memberships: Sequence[Membership], tick_s: int) -> Roster:
        ms = sorted(memberships, key=lambda m: (m.member.id, m.valid_from))
        n = len(ms)

        def column(values: Iterable[int]) -> Ints:
            return np.fromiter(values, np.int64, n)

        posted_ask = column(m.ask.posted_ms if m.ask else 0 for m in ms)
        posted_bid = column(m.bid.posted_ms if m.bid else 0 for m in ms)
        return cls(token, tuple(m.member.id for m in ms), column(m.valid_from for m in ms),
                   column(cls.OPEN if m.valid_to is None else m.valid_to for m in ms),
                   Terms(column(m.member.sell_cap_wh(tick_s) for m in ms),
                         np.fromiter((m.ask is not None for m in ms), np.bool_, n),
                         column(m.ask.limit if m.ask else 0 for m in ms), posted_ask,
                         np.fromiter((m.bid is not None for m in ms), np.bool_, n),
                         column(m.bid.limit if m.bid else 0 for m in ms), posted_bid))

    def at(self, tick_start: int, members: Sequence[str]) -> tuple[Ints, Ints]:
        """For positions of ``members`` in the tick starting at ``tick_start``: the indices of
        those whose member is in the community then, in member id order, and their intervals."""
        active = np.flatnonzero((self.valid_from <= tick_start) & (tick_start < self.valid_to)).tolist()
        interval_of = {self.ids[k]: k for k in active}  # intervals of one member never overlap
        intervals = np.fromiter((interval_of.get(m, -1) for m in members), np.int64, len(members))
        kept = np.flatnonzero(intervals >= 0)
        kept = kept[np.argsort(intervals[kept], kind="stable")]
        return kept, intervals[kept]

    def terms_of(self, intervals: Ints) -> Terms:
        """The terms of these intervals, in their order."""
        t = self.terms
        return Terms(t.limit_wh[intervals], t.has_ask[intervals], t.ask[intervals], t.ask_ms[intervals],
                     t.has_bid[intervals], t.bid[intervals], t.bid_ms[intervals])


# Per community, its roster as last read by this process (one per community; a changed token
# replaces it).
_rosters: dict[str, Roster] = {}


async def roster(conn: AsyncConnection, community: Community) -> Roster:
    """The community's memberships as they are in ``conn``'s transaction: read and checked again
    only when its ``members_token`` changed since this process last read them (any instance's
    change of a membership sets a new token in the same transaction)."""
    token = await conn.scalar(select(communities.c.members_token).where(communities.c.id == community.id))
    if token is None:
        raise CommunityError(f"community: no community {community.id!r}")
    known = _rosters.get(community.id)
    if known is None or known.token != token:
        known = _rosters[community.id] = Roster.of(token, await history(conn, community.id), community.tick_s)
    return known


async def _changed(conn: AsyncConnection, community_id: str) -> None:
    """A new token for the community's memberships (see :func:`roster`), in the changing transaction."""
    await conn.execute(update(communities).where(communities.c.id == community_id).values(
        members_token=secrets.token_hex(16)))


async def history(conn: AsyncConnection, community_id: str) -> list[Membership]:
    c = community_members.c
    rows = await conn.execute(select(*_COLUMNS).where(c.community_id == community_id)
                              .order_by(c.member_id, c.valid_from))
    return [_membership(r) for r in rows]


def _row(community_id: str, m: Membership) -> dict[str, object]:
    order = m.ask or m.bid
    return dict(community_id=community_id, member_id=m.member.id, valid_from=m.valid_from, valid_to=m.valid_to,
                device_id=m.device_id, role=str(m.member.role), pv_wp=m.member.pv_wp, battery_wh=m.member.battery_wh,
                inverter_w=m.member.inverter_w, export_limit_w=m.member.export_limit_w,
                ask_ueur_kwh=m.ask.limit if m.ask else None, bid_ueur_kwh=m.bid.limit if m.bid else None,
                order_posted_ms=order.posted_ms if order else None)


async def join_new(conn: AsyncConnection, community: Community, new: list[Membership]) -> None:
    """Many first memberships at once (a community set up from a list): refused if any of
    them already has a membership or appears twice."""
    ids = [m.member.id for m in new]
    if len(set(ids)) != len(ids):
        raise CommunityError("members: a member appears twice in one list (each once)")
    c = community_members.c
    known = set((await conn.execute(select(c.member_id).where(c.community_id == community.id))).scalars())
    if clash := sorted(known & set(ids)):
        raise CommunityError(f"member {clash[0]}: has a membership already (join it with its own valid_from)")
    for m in new:
        if m.valid_from % community.tick_s:
            raise CommunityError(f"member {m.member.id}: valid_from {m.valid_from} is not allowed (a tick start)")
    if new:
        await conn.execute(community_members.insert(), [_row(community.id, m) for m in new])
        await _changed(conn, community.id)


async def join(conn: AsyncConnection, community: Community, m: Membership) -> None:
    """Start ``m`` at ``m.valid_from``: a member's open interval before it ends there; an
    interval that would overlap a later one is refused."""
    if m.valid_from % community.tick_s:
        raise CommunityError(f"valid_from: {m.valid_from} is not allowed (a tick start, a multiple of {community.tick_s} s)")
    c = community_members.c
    mine = and_(c.community_id == community.id, c.member_id == m.member.id)
    later = await conn.scalar(select(c.valid_from).where(mine, c.valid_from >= m.valid_from).limit(1))
    if later is not None:
        raise CommunityError(f"member {m.member.id}: valid_from {m.valid_from} is not allowed (a membership from "
                             f"{later} exists; memberships of one member may not overlap)")
    await conn.execute(update(community_members).where(mine, c.valid_from < m.valid_from, or_(
        c.valid_to.is_(None), c.valid_to > m.valid_from)).values(valid_to=m.valid_from))
    await conn.execute(community_members.insert().values(**_row(community.id, m)))
    await _changed(conn, community.id)


async def leave(conn: AsyncConnection, community: Community, member_id: str, valid_to: int) -> None:
    """End ``member_id``'s open membership at ``valid_to`` (a tick start)."""
    if valid_to % community.tick_s:
        raise CommunityError(f"valid_to: {valid_to} is not allowed (a tick start, a multiple of {community.tick_s} s)")
    c = community_members.c
    done = await conn.execute(update(community_members).where(
        c.community_id == community.id, c.member_id == member_id, c.valid_to.is_(None), c.valid_from < valid_to,
    ).values(valid_to=valid_to))
    if not done.rowcount:
        raise CommunityError(f"member: {member_id!r} has no open membership of {community.id!r} that began before {valid_to}")
    await _changed(conn, community.id)
