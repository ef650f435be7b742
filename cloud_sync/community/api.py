"""The operator API of communities (``/v1/communities…``), registered by :func:`add_routes`.

Every call needs an operator credential, except ``GET /v1/devices/{device}/community``, which
that device may call too (its own trades summed up, for its page). Bodies and answers are JSON; energy in Wh, prices
in µEUR/kWh, money in nEUR, times in epoch seconds (tick starts). Refusals are
``{"error": …}`` with 400 (bad input, naming the field), 403 or 404, and change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from cloud_sync import query_params
from cloud_sync.community.model import CommunityError, Member, Order, TickPrices, parse_role
from cloud_sync.db import Database
from cloud_sync.registry import Authenticator, AuthError

if TYPE_CHECKING:
    from cloud_sync.community import members

# The handlers import the ledger and the membership model (and with them NumPy) when a community
# call first comes: an aggregator that serves none does not load them.

Handler = Callable[[web.Request], Awaitable[web.Response]]
INSTANCE = socket.gethostname()
MATCH_EVERY_S = 60.0
GRACE_S = 300.0  # late readings of a tick's last minutes still make its first version
log = structlog.get_logger(__name__)


def add_routes(app: web.Application, db: web.AppKey[Database], auth: web.AppKey[Authenticator],
               every_s: float = MATCH_EVERY_S, grace_s: float = GRACE_S) -> None:
    """The routes, and the job that matches every community's due ticks every ``every_s``."""

    async def matcher(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_match_forever(app[db], every_s, grace_s))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(matcher)

    async def operator(request: web.Request) -> Database:
        who = await request.app[auth].check(request.headers.get("Authorization"), request.remote or "")
        if who.kind != "op":
            raise AuthError(403, "communities need an operator credential")
        return request.app[db]

    def route(handler: Callable[[web.Request, Database], Awaitable[Any]]) -> Handler:
        async def wrapped(request: web.Request) -> web.Response:
            database = await operator(request)
            try:
                return web.json_response(await handler(request, database))
            except CommunityError as exc:
                status = 404 if str(exc).startswith("community: no community") else 400
                return web.json_response({"error": str(exc)}, status=status)
        return wrapped

    app.router.add_get("/v1/communities", route(list_communities))
    app.router.add_post("/v1/communities", route(create))
    app.router.add_get("/v1/communities/{community}", route(show))
    app.router.add_post("/v1/communities/{community}/members", route(join))
    app.router.add_post("/v1/communities/{community}/members/{member}/leave", route(leave))
    app.router.add_post("/v1/communities/{community}/positions", route(add_positions))
    app.router.add_post("/v1/communities/{community}/match", route(match))
    app.router.add_get("/v1/communities/{community}/trades", route(trades))
    app.router.add_get("/v1/communities/{community}/balances", route(balances))

    async def device_summary(request: web.Request) -> web.Response:
        from cloud_sync.community import ledger

        who = await request.app[auth].check(request.headers.get("Authorization"), request.remote or "")
        device = request.match_info["device"]
        if who.kind == "dev" and who.name != device:
            raise AuthError(403, f"device {who.name!r} may not read the community trades of device {device!r}")
        try:
            start, end = _epoch(request, "from"), _epoch(request, "to")
            ledger.check_window(start, end)
        except CommunityError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        async with request.app[db].read() as conn:
            return web.json_response({"communities": await ledger.member_summary(conn, device, start, end)})

    app.router.add_get("/v1/devices/{device}/community", device_summary)


async def _match_forever(db: Database, every_s: float, grace_s: float) -> None:
    """Every ``every_s``: each community's ticks that ended ``grace_s`` ago or earlier.
    Any number of instances may run this at once (:mod:`cloud_sync.community.ledger`)."""
    while True:
        await asyncio.sleep(every_s)
        from cloud_sync.community import ledger, members

        try:
            async with db.read() as conn:
                ids = [c.id for c in await members.all_communities(conn)]
            for community_id in ids:
                run = await ledger.match_due(db, community_id, INSTANCE, grace_s=grace_s)
                if run.outcomes or run.taken:
                    log.info("community_matched", community=community_id, **run.as_dict())
        except Exception:  # a failed round is logged (log.exception), the next one tries again
            log.exception("community_matching_failed")


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
    from cloud_sync.community import members

    async with db.read() as conn:
        return {"communities": [c.as_dict() for c in await members.all_communities(conn)]}


async def create(request: web.Request, db: Database) -> Any:
    from cloud_sync.community import members

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
    from cloud_sync.community import members

    async with db.read() as conn:
        community = await members.get(conn, request.match_info["community"])
        return {**community.as_dict(), "members": [m.as_dict() for m in await members.history(conn, community.id)]}


def membership(body: dict[str, Any]) -> members.Membership:
    """A membership from its JSON form (``as_dict``'s keys; ``posted_ms`` dates the orders)."""
    from cloud_sync.community import members

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
    from cloud_sync.community import members

    m = membership(_object(await _body(request), "body"))
    async with db.begin() as conn:
        await members.join(conn, await members.get(conn, request.match_info["community"]), m)
    return m.as_dict()


async def leave(request: web.Request, db: Database) -> Any:
    from cloud_sync.community import members

    valid_to = _field(_object(await _body(request), "body"), "valid_to", int)
    async with db.begin() as conn:
        community = await members.get(conn, request.match_info["community"])
        await members.leave(conn, community, request.match_info["member"], valid_to)
    return {"member": request.match_info["member"], "valid_to": valid_to}


async def add_positions(request: web.Request, db: Database) -> Any:
    from cloud_sync.community import members, positions

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
    from cloud_sync.community import ledger

    grace = query_params.decimal(request.query, "grace_s", error=_bad_query, default=0.0, low=0)
    run = await ledger.match_due(db, request.match_info["community"], INSTANCE, grace_s=grace)
    return run.as_dict()


async def trades(request: web.Request, db: Database) -> Any:
    from cloud_sync.community import ledger, members

    start, end = _epoch(request, "from"), _epoch(request, "to")
    ledger.check_window(start, end)
    async with db.read() as conn:
        community = await members.get(conn, request.match_info["community"])
        rows = await conn.execute(ledger.trades_query(community.id, start, end, request.query.get("member")))
        return {"trades": [{k: getattr(r, k) for k in ("tick_start", "version", "seq", "seller", "buyer", "wh",
                                                       "price_ueur_kwh", "fee_ueur_kwh")} for r in rows]}


async def balances(request: web.Request, db: Database) -> Any:
    from cloud_sync.community import ledger, members

    async with db.read() as conn:
        community = await members.get(conn, request.match_info["community"])
        return {"balances": await ledger.balances(conn, community.id)}
