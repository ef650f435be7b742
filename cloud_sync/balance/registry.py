"""Participants, metering locations, balance groups and memberships: create, list, change, end.

Every refusal is a :class:`BalanceError` whose ``status`` is what the API answers (400 invalid,
404 unknown ID, 409 in conflict with what is stored) and whose message names the field, the
value and what is allowed. Nothing is deleted: memberships are ended, never rewritten.
"""

from __future__ import annotations

import re
import time
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.balance.membership import Membership, MembershipError, check_end, check_join
from cloud_sync.balance.timegrid import iso
from cloud_sync.db import Database
from cloud_sync.edi import store as edi_store
from cloud_sync.schema.balance import balance_groups, balance_locations, group_memberships, participant_roles
from cloud_sync.schema.edi import edi_locations, edi_partners
from cloud_sync.schema.sync import devices
from common import market_ids

ROLES = ("supplier", "brp", "mpo", "dso", "tso", "aggregator")
ROLE_NAMES = {"supplier": "supplier", "brp": "balance-responsible party", "mpo": "metering point operator",
              "dso": "grid operator", "tso": "transmission system operator", "aggregator": "aggregator"}
GROUP_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class BalanceError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _check(status: int, check: Any, field: str, value: str) -> str:
    try:
        return str(check(value))
    except market_ids.IdError as exc:
        raise BalanceError(status, f"{field}: {exc}") from None


async def add_participant(db: Database, partner_id: str, qualifier: str, name: str, roles: list[str]) -> dict[str, Any]:
    """Register a market participant (the EDI gateway's partner registry) with its roles (at
    least one of :data:`ROLES`); an already registered partner gains the roles."""
    _check(400, lambda v: market_ids.check_partner(v, qualifier), "id", partner_id)
    if not name.strip():
        raise BalanceError(400, "name: empty; give the participant's name")
    if not roles or any(r not in ROLES for r in roles):
        raise BalanceError(400, f"roles: got {','.join(roles) or 'none'}, allowed one or more of {', '.join(ROLES)}")
    now = time.time()
    dialect = postgresql if db.kind == "postgresql" else sqlite
    async with db.begin() as conn:
        await edi_store.register_partner(conn, partner_id, qualifier, name)
        await conn.execute(dialect.insert(participant_roles).on_conflict_do_nothing(), [
            {"participant_id": partner_id, "role": r, "created_at": now} for r in sorted(set(roles))])
    return (await participants(db, partner_id))[0]


async def participants(db: Database, only: str | None = None) -> list[dict[str, Any]]:
    query = select(edi_partners).order_by(edi_partners.c.partner_id)
    if only is not None:
        query = query.where(edi_partners.c.partner_id == only)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
        roles = (await conn.execute(select(participant_roles.c.participant_id, participant_roles.c.role)
                                    .order_by(participant_roles.c.role))).all()
    by_id: dict[str, list[str]] = {}
    for pid, role in roles:
        by_id.setdefault(pid, []).append(role)
    return [{"id": r.partner_id, "qualifier": r.qualifier, "name": r.name, "roles": by_id.get(r.partner_id, [])}
            for r in rows]


async def add_location(db: Database, melo_id: str, malo_id: str | None, device_id: str | None,
                       connection_limit_w: int | None) -> dict[str, Any]:
    """Register a metering location (the EDI gateway's registry), linked to a registered device
    if given, with the connection's limit for the anomaly checks. A location the EDI registry
    already knows keeps its device link and MaLo-ID unless new ones are given."""
    _check(400, market_ids.check_melo, "melo", melo_id)
    if malo_id:
        _check(400, market_ids.check_malo, "malo", malo_id)
    if connection_limit_w is not None and not 0 < connection_limit_w <= 1_000_000:
        raise BalanceError(400, f"connection_limit_w: got {connection_limit_w}, allowed 1 to 1000000 W")
    async with db.begin() as conn:
        if await _exists(conn, balance_locations.c.melo_id, melo_id):
            raise BalanceError(409, f"melo: metering location {melo_id} is already registered")
        known = (await conn.execute(select(edi_locations.c.malo_id, edi_locations.c.device_id)
                                    .where(edi_locations.c.melo_id == melo_id))).first()
        if known is not None:
            malo_id = malo_id or known.malo_id
            device_id = device_id if device_id is not None else known.device_id
        if device_id is not None:
            if not await _exists(conn, devices.c.id, device_id):
                raise BalanceError(404, f"device: {device_id!r} is not a registered device "
                                        "(nattery-cloud device add)")
            linked = (await conn.execute(select(edi_locations.c.melo_id).where(
                edi_locations.c.device_id == device_id, edi_locations.c.melo_id != melo_id))).first()
            if linked is not None:
                raise BalanceError(409, f"device: {device_id!r} is already linked to metering location {linked[0]}")
        if malo_id and (await conn.execute(select(edi_locations.c.melo_id).where(
                edi_locations.c.malo_id == malo_id, edi_locations.c.melo_id != melo_id))).first() is not None:
            raise BalanceError(409, f"malo: market location {malo_id} belongs to another metering location")
        await edi_store.register_location(conn, melo_id, malo_id or None, device_id)
        await conn.execute(insert(balance_locations).values(melo_id=melo_id, connection_limit_w=connection_limit_w,
                                                            created_at=time.time()))
    return {"melo": melo_id, "malo": malo_id or None, "device": device_id, "connection_limit_w": connection_limit_w}


async def locations(db: Database) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = (await conn.execute(
            select(edi_locations, balance_locations.c.connection_limit_w)
            .select_from(edi_locations.outerjoin(balance_locations)).order_by(edi_locations.c.melo_id))).all()
    return [{"melo": r.melo_id, "malo": r.malo_id, "device": r.device_id,
             "connection_limit_w": r.connection_limit_w} for r in rows]


async def add_group(db: Database, group_id: str, name: str, brp_id: str) -> dict[str, Any]:
    """A balance group, whose balance-responsible party must be registered in that role."""
    if not GROUP_ID.match(group_id):
        raise BalanceError(400, f"id: got {group_id!r:.80}, allowed 1-64 of A-Z a-z 0-9 _ -")
    async with db.begin() as conn:
        if await _exists(conn, balance_groups.c.id, group_id):
            raise BalanceError(409, f"id: balance group {group_id} already exists")
        role = (await conn.execute(select(participant_roles.c.role).where(and_(
            participant_roles.c.participant_id == brp_id, participant_roles.c.role == "brp")))).first()
        if role is None:
            known = await _exists(conn, edi_partners.c.partner_id, brp_id)
            raise BalanceError(404, f"brp: {brp_id} is " + ("registered but not as a balance-responsible party "
                                                            "(role brp)" if known else "not a registered participant"))
        await conn.execute(insert(balance_groups).values(id=group_id, name=name or group_id, brp_id=brp_id,
                                                         created_at=time.time()))
    return {"id": group_id, "name": name or group_id, "brp": brp_id}


async def groups(db: Database) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = (await conn.execute(
            select(balance_groups, func.count(group_memberships.c.id).label("memberships"))
            .select_from(balance_groups.outerjoin(group_memberships))
            .group_by(*balance_groups.c).order_by(balance_groups.c.id))).all()
    return [{"id": r.id, "name": r.name, "brp": r.brp_id, "memberships": r.memberships} for r in rows]


async def join(db: Database, group_id: str, melo_id: str, start: int, end: int | None = None) -> dict[str, Any]:
    """``melo_id`` joins ``group_id`` from ``start`` (until ``end``); refuses an overlap."""
    new = Membership(melo_id, group_id, start, end)
    async with db.begin() as conn:
        await _known(conn, group_id, melo_id)
        rows = (await conn.execute(select(group_memberships).where(group_memberships.c.melo_id == melo_id))).all()
        try:
            check_join([_membership(r) for r in rows], new)
        except MembershipError as exc:
            raise BalanceError(409 if "two groups" in str(exc) else 400, str(exc)) from None
        result = await conn.execute(insert(group_memberships).values(
            melo_id=melo_id, group_id=group_id, start_ts=start, end_ts=end, created_at=time.time()))
        membership_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    return {"id": membership_id, **_describe(new)}


async def leave(db: Database, group_id: str, melo_id: str, end: int) -> dict[str, Any]:
    """End ``melo_id``'s open membership of ``group_id`` at ``end``."""
    async with db.begin() as conn:
        await _known(conn, group_id, melo_id)
        rows = (await conn.execute(select(group_memberships).where(and_(
            group_memberships.c.melo_id == melo_id, group_memberships.c.group_id == group_id,
            group_memberships.c.end_ts.is_(None))))).all()
        if not rows:
            raise BalanceError(409, f"{melo_id} has no open membership of group {group_id} to end")
        row = rows[0]
        try:
            check_end(_membership(row), end)
        except MembershipError as exc:
            raise BalanceError(400, str(exc)) from None
        await conn.execute(update(group_memberships).where(group_memberships.c.id == row.id)
                           .values(end_ts=end, ended_at=time.time()))
    return {"id": row.id, **_describe(Membership(melo_id, group_id, row.start_ts, end))}


async def memberships(db: Database, group_id: str | None = None, melo_id: str | None = None) -> list[dict[str, Any]]:
    """The whole history, oldest first."""
    query = select(group_memberships).order_by(group_memberships.c.start_ts, group_memberships.c.id)
    if group_id is not None:
        query = query.where(group_memberships.c.group_id == group_id)
    if melo_id is not None:
        query = query.where(group_memberships.c.melo_id == melo_id)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return [{"id": r.id, **_describe(_membership(r))} for r in rows]


def _membership(row: Any) -> Membership:
    return Membership(row.melo_id, row.group_id, int(row.start_ts), None if row.end_ts is None else int(row.end_ts))


def _describe(m: Membership) -> dict[str, Any]:
    return {"melo": m.melo, "group": m.group, "start": iso(m.start), "end": None if m.end is None else iso(m.end)}


async def _known(conn: AsyncConnection, group_id: str, melo_id: str) -> None:
    if not await _exists(conn, balance_groups.c.id, group_id):
        raise BalanceError(404, f"group: {group_id!r} is not a balance group (nattery-cloud balance group add)")
    # Locking the location's row serialises concurrent changes of its memberships (PostgreSQL;
    # SQLite writers take turns anyway), so two joins cannot both pass the overlap check.
    location = select(edi_locations.c.melo_id).where(edi_locations.c.melo_id == melo_id).with_for_update()
    if (await conn.execute(location)).first() is None:
        raise BalanceError(404, f"melo: {melo_id!r} is not a registered metering location "
                                "(nattery-cloud balance location add)")


async def _exists(conn: AsyncConnection, column: Any, value: str) -> bool:
    return (await conn.execute(select(column).where(column == value))).first() is not None


def overlapping(start: int, end: int) -> Any:
    """Memberships overlapping ``[start, end)`` (for the settlement queries)."""
    return and_(group_memberships.c.start_ts < end,
                or_(group_memberships.c.end_ts.is_(None), group_memberships.c.end_ts > start))
