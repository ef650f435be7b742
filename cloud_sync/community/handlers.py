"""The community API's handlers (:mod:`cloud_sync.community.api` registers them and checks the
operator credential first): each takes the request and the database and returns what is answered
as JSON; bad input raises :class:`~cloud_sync.community.model.CommunityError` naming the field.

This module imports the ledger and the membership model (and with them NumPy): ``api`` imports it
when the first community call comes, so an aggregator that serves none does not load them.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import structlog
from aiohttp import web

from cloud_sync import query_params
from cloud_sync.community import ledger, members, positions
from cloud_sync.community.model import CommunityError, Member, Order, TickPrices, parse_role
from cloud_sync.db import Database

INSTANCE = socket.gethostname()
log = structlog.get_logger(__name__)


async def match_forever(db: Database, every_s: float, grace_s: float) -> None:
    """Each community's ticks that ended ``grace_s`` ago or earlier, now and every ``every_s``.
    Any number of instances may run this at once (:mod:`cloud_sync.community.ledger`)."""
    while True:
        try:
            async with db.read() as conn:
                ids = [c.id for c in await members.all_communities(conn)]
            for community_id in ids:
                run = await ledger.match_due(db, community_id, INSTANCE, grace_s=grace_s)
                if run.outcomes or run.taken:
                    log.info("community_matched", community=community_id, **run.as_dict())
        except Exception:  # a failed round is logged (log.exception), the next one tries again
            log.exception("community_matching_failed")
        await asyncio.sleep(every_s)


async def device_summary(request: web.Request, db: Database, device: str) -> Any:
    """``device``'s trades in its communities over the ``from``/``to`` window, summed up."""
    start, end = _epoch(request, "from"), _epoch(request, "to")
    ledger.check_window(start, end)
    async with db.read() as conn:
        return {"communities": await ledger.member_summary(conn, device, start, end)}


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise CommunityError("body: not JSON (send a JSON object)") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CommunityError(f"{what}: {value!r} is not allowed (a JSON object)")
    return value


def _field(body: dict[str, Any], key: str, kind: type, default: Any = ..., what: str = "body") -> Any:
    if key not in body:
        if default is ...:
            raise CommunityError(f"{what}.{key}: missing (required)")
        return default
    value = body[key]
    if value is None and default is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CommunityError(f"{what}.{key}: {value!r} is not allowed (a {kind.__name__})")
    return value


def _bad_query(message: str) -> CommunityError:
    return CommunityError(f"query {message}")


def _epoch(request: web.Request, name: str) -> int:
    return query_params.integer(request.query, name, error=_bad_query, low=0, unit="epoch seconds")


async def list_communities(request: web.Request, db: Database) -> Any:
    async with db.read() as conn:
        return {"communities": [c.as_dict() for c in await members.all_communities(conn)]}


async def create(request: web.Request, db: Database) -> Any:
    body = _object(await _body(request), "body")
    community = members.Community(
        _field(body, "id", str), _field(body, "name", str, ""), _field(body, "rule", str),
        TickPrices(_field(body, "feed_in_ueur_kwh", int), _field(body, "grid_import_ueur_kwh", int),
                   _field(body, "fee_ueur_kwh", int, 0)),
        _field(body, "fixed_price_ueur_kwh", int, None))
    async with db.begin() as conn:
        await members.create(conn, community)
    return community.as_dict()


async def show(request: web.Request, db: Database) -> Any:
    async with db.read() as conn:
        community = await members.get(conn, request.match_info["community"])
        return {**community.as_dict(), "members": [m.as_dict() for m in await members.history(conn, community.id)]}


def membership(body: dict[str, Any]) -> members.Membership:
    """A membership from its JSON form (``as_dict``'s keys; ``posted_ms`` dates the orders)."""
    member = Member(_field(body, "member", str), parse_role(_field(body, "role", str)), _field(body, "pv_wp", int, 0),
                    _field(body, "battery_wh", int, 0), _field(body, "inverter_w", int, 0),
                    _field(body, "export_limit_w", int, None))
    posted = _field(body, "posted_ms", int, None)
    valid_from = _field(body, "valid_from", int)

    def order(key: str) -> Order | None:
        limit = _field(body, key, int, None)
        return None if limit is None else Order(limit, valid_from * 1000 if posted is None else posted)

    return members.Membership(member, valid_from, None, _field(body, "device", str, None), order("ask_ueur_kwh"),
                              order("bid_ueur_kwh"))


async def join(request: web.Request, db: Database) -> Any:
    m = membership(_object(await _body(request), "body"))
    async with db.begin() as conn:
        await members.join(conn, await members.get(conn, request.match_info["community"]), m)
    return m.as_dict()


async def leave(request: web.Request, db: Database) -> Any:
    valid_to = _field(_object(await _body(request), "body"), "valid_to", int)
    async with db.begin() as conn:
        community = await members.get(conn, request.match_info["community"])
        await members.leave(conn, community, request.match_info["member"], valid_to)
    return {"member": request.match_info["member"], "valid_to": valid_to}


async def add_positions(request: web.Request, db: Database) -> Any:
    items = await _body(request)
    if not isinstance(items, list):
        raise CommunityError("body: not a list (send a JSON list of positions)")
    rows = []
    for k, item in enumerate(items):
        what = f"positions[{k}]"
        p = _object(item, what)
        rows.append(positions.Metered(_field(p, "member", str, what=what), _field(p, "tick_start", int, what=what),
                                      _field(p, "import_wh", int, what=what), _field(p, "export_wh", int, what=what)))
    async with db.begin() as conn:
        changed = await positions.store(conn, await members.get(conn, request.match_info["community"]), rows)
    return {"received": len(rows), "changed": changed}


async def match(request: web.Request, db: Database) -> Any:
    grace = query_params.decimal(request.query, "grace_s", error=_bad_query, default=0.0, low=0)
    run = await ledger.match_due(db, request.match_info["community"], INSTANCE, grace_s=grace)
    return run.as_dict()


async def trades(request: web.Request, db: Database) -> Any:
    start, end = _epoch(request, "from"), _epoch(request, "to")
    ledger.check_window(start, end)
    async with db.read() as conn:
        community = await members.get(conn, request.match_info["community"])
        rows = await conn.execute(ledger.trades_query(community.id, start, end, request.query.get("member")))
        return {"trades": [{k: getattr(r, k) for k in ("tick_start", "version", "seq", "seller", "buyer", "wh",
                                                       "price_ueur_kwh", "fee_ueur_kwh")} for r in rows]}


async def balances(request: web.Request, db: Database) -> Any:
    async with db.read() as conn:
        community = await members.get(conn, request.match_info["community"])
        return {"balances": await ledger.balances(conn, community.id)}
