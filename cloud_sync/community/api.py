"""The operator API of communities (``/v1/communities…``), registered by :func:`add_routes`.

Every call needs an operator credential, except ``GET /v1/devices/{device}/community``, which
that device may call too (its own trades summed up, for its page). Bodies and answers are JSON; energy in Wh, prices
in µEUR/kWh, money in nEUR, times in epoch seconds (tick starts). Refusals are
``{"error": …}`` with 400 (bad input, naming the field), 403 or 404, and change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from cloud_sync.community.model import CommunityError
from cloud_sync.db import Database
from cloud_sync.registry import Authenticator, AuthError

# The handlers (cloud_sync.community.handlers) import the ledger and the membership model, and
# with them NumPy: they are imported here when the first community call or matching round comes,
# so an aggregator that serves none does not load them.

Handler = Callable[[web.Request], Awaitable[web.Response]]
MATCH_EVERY_S = 60.0
GRACE_S = 300.0  # late readings of a tick's last minutes still make its first version


def add_routes(app: web.Application, db: web.AppKey[Database], auth: web.AppKey[Authenticator],
               every_s: float = MATCH_EVERY_S, grace_s: float = GRACE_S) -> None:
    """The routes, and the job that matches every community's due ticks every ``every_s``."""

    async def match_forever() -> None:
        await asyncio.sleep(every_s)
        from cloud_sync.community import handlers

        await handlers.match_forever(app[db], every_s, grace_s)

    async def matcher(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(match_forever())
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

    def route(name: str) -> Handler:
        """The handler ``name`` of :mod:`cloud_sync.community.handlers`, for operators only."""
        async def wrapped(request: web.Request) -> web.Response:
            database = await operator(request)
            from cloud_sync.community import handlers

            try:
                return web.json_response(await getattr(handlers, name)(request, database))
            except CommunityError as exc:
                status = 404 if str(exc).startswith("community: no community") else 400
                return web.json_response({"error": str(exc)}, status=status)
        return wrapped

    app.router.add_get("/v1/communities", route("list_communities"))
    app.router.add_post("/v1/communities", route("create"))
    app.router.add_get("/v1/communities/{community}", route("show"))
    app.router.add_post("/v1/communities/{community}/members", route("join"))
    app.router.add_post("/v1/communities/{community}/members/{member}/leave", route("leave"))
    app.router.add_post("/v1/communities/{community}/positions", route("add_positions"))
    app.router.add_post("/v1/communities/{community}/match", route("match"))
    app.router.add_get("/v1/communities/{community}/trades", route("trades"))
    app.router.add_get("/v1/communities/{community}/balances", route("balances"))

    async def device_summary(request: web.Request) -> web.Response:
        who = await request.app[auth].check(request.headers.get("Authorization"), request.remote or "")
        device = request.match_info["device"]
        if who.kind == "dev" and who.name != device:
            raise AuthError(403, f"device {who.name!r} may not read the community trades of device {device!r}")
        from cloud_sync.community import handlers

        try:
            return web.json_response(await handlers.device_summary(request, request.app[db], device))
        except CommunityError as exc:
            return web.json_response({"error": str(exc)}, status=400)

    app.router.add_get("/v1/devices/{device}/community", device_summary)
