"""The JSON API behind the pages (``/api/v1``), described by ``/api/openapi.json``.

Same access rules, validation and event log as the pages (both call :mod:`device.web.actions`).
Errors are ``{"error": "...", "field": "..."}`` with the status saying whose fault it was:
400 bad input, 401 not logged in, 403 wrong role / CSRF / password change pending, 404 unknown
register, 429 too many logins, 502 the bridge refused, 504 the bridge did not answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from device.store import Store
from device.prices.tariff import Tariff
from device.web import actions, history, model
from device.web.actions import Actor
from device.web.inputs import ActionError, check_finite, query_int
from device.web.access import guard, json_error, locale
from device.web.keys import CFG, DEPS, LATE_AFTER, LIVE, SESSION, SESSIONS, TZ
from device.web.live import snapshot
from device.web.login import attempt_login, change_password
from device.web.openapi import spec
from device.home.settings import EDITABLE
from device.web.views import MODES

ApiHandler = Callable[[web.Request], Awaitable[Any]]


def endpoint(fn: ApiHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Return values become JSON; :class:`ActionError` becomes a JSON error with its status."""

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            result = await fn(request)
        except ActionError as exc:
            return json_error(exc.status, str(exc), exc.field)
        return web.json_response(result)

    return handler


async def body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise ActionError("body: not valid JSON (send Content-Type: application/json)", "body") from None
    if not isinstance(data, dict):
        raise ActionError(f"body: expected a JSON object, got {type(data).__name__}", "body")
    check_finite(data)
    return data


def _actor(request: web.Request) -> Actor:
    return Actor(request[SESSION].role or "anonymous", request.app[CFG], request.app[DEPS])


async def session_info(request: web.Request) -> dict[str, Any]:
    session = request[SESSION]
    return {"role": session.role, "must_change": session.must_change, "csrf": session.csrf,
            "language": locale(request).lang}


async def login(request: web.Request) -> dict[str, Any]:
    data = await body(request)
    await attempt_login(request, data.get("account"), data.get("password"))
    return await session_info(request)


async def logout(request: web.Request) -> dict[str, Any]:
    await request.app[SESSIONS].drop(request[SESSION])
    return {"ok": True}


async def password(request: web.Request) -> dict[str, Any]:
    data = await body(request)
    await change_password(request, data.get("old_password"), data.get("new_password"), data.get("repeat_password"))
    return {"ok": True}


async def overview(request: web.Request) -> dict[str, Any]:
    guard(request, public=True)
    deps = request.app[DEPS]
    override = deps.settings.override(deps.clock())
    return {
        **snapshot(deps.telemetry.latest(), deps.telemetry.online(), with_registers=False, now=deps.clock()),
        "planner_mode": deps.settings.config.planner.mode,
        "override": None if override is None else dataclasses.asdict(override),
    }


async def prices(request: web.Request) -> dict[str, Any]:
    guard(request)
    return await model.prices_and_plan(
        request.app[DEPS].store, request.app[CFG].prices.zone, request.app[TZ], request.app[DEPS].clock(), request.app[LATE_AFTER],
        Tariff(request.app[DEPS].settings.config.tariff, request.app[CFG].device.timezone),
    )


async def savings(request: web.Request) -> dict[str, Any]:
    guard(request)
    return await model.savings(request.app[DEPS].store, request.app[TZ], request.app[DEPS].clock())


async def get_settings(request: web.Request) -> dict[str, Any]:
    guard(request)
    settings = request.app[DEPS].settings
    effective = settings.config
    override = settings.override(request.app[DEPS].clock())
    return {
        "planner": {"mode": effective.planner.mode, "allowed": list(MODES)},
        "battery": {"reserve_pct": effective.battery.reserve_pct},
        "tariff": {key: getattr(effective.tariff, key) for key in EDITABLE["tariff"]},
        "override": None if override is None else dataclasses.asdict(override),
        "power_limits_w": actions.power_limits(effective),
    }


async def patch_settings(request: web.Request) -> dict[str, Any]:
    guard(request)
    await actions.change_settings(_actor(request), await body(request))
    return await get_settings(request)


async def start_manual(request: web.Request) -> dict[str, Any]:
    guard(request)
    data = await body(request)
    override = await actions.start_manual(_actor(request), data.get("action"), data.get("power_w"), data.get("until"))
    return dataclasses.asdict(override)


async def stop_manual(request: web.Request) -> dict[str, Any]:
    guard(request)
    await actions.stop_manual(_actor(request))
    return {"ok": True}


async def registers(request: web.Request) -> list[dict[str, Any]]:
    guard(request, "installer")
    deps = request.app[DEPS]
    return model.registers(deps.regmap, deps.telemetry.latest())


async def read_register(request: web.Request) -> dict[str, Any]:
    guard(request, "installer")
    return await actions.read_register(_actor(request), request.match_info["name"])


async def write_register(request: web.Request) -> dict[str, Any]:
    guard(request, "installer")
    data = await body(request)
    reg = actions.find_register(_actor(request), request.match_info["name"], writing=True)
    value = actions.parse_value(reg, data.get("value"))
    if data.get("confirm") is not True:
        raise ActionError(f"confirm: must be true to write {value:g} {reg.unit} to {reg.name}", "confirm")
    return await actions.write_register(_actor(request), reg.name, value)


async def history_data(request: web.Request) -> dict[str, Any]:
    """The History page's bars and totals as JSON (Wh, EUR; ``start`` of each bar in epoch s)."""
    guard(request)
    deps = request.app[DEPS]
    query = history.parse_query(request.query, ("period", "date"), model.local_today(request.app[TZ], deps.clock()))
    return await history.history(deps.store, history.Period.containing(query["period"], query["date"]), request.app[TZ])


async def health(request: web.Request) -> dict[str, Any]:
    guard(request, "installer")
    return await model.health(request.app[DEPS].store, request.app[DEPS].health, {"live_clients": request.app[LIVE].clients})


async def events(request: web.Request) -> list[dict[str, Any]]:
    guard(request, "installer")
    limit = query_int(request.query, "limit", 50, 1, 500)
    return await request.app[DEPS].store.call(Store.events, limit)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(spec())


def setup(app: web.Application) -> None:
    routes: list[tuple[str, str, ApiHandler]] = [
        ("GET", "/session", session_info),
        ("POST", "/login", login),
        ("POST", "/logout", logout),
        ("POST", "/password", password),
        ("GET", "/overview", overview),
        ("GET", "/prices", prices),
        ("GET", "/savings", savings),
        ("GET", "/history", history_data),
        ("GET", "/settings", get_settings),
        ("PATCH", "/settings", patch_settings),
        ("POST", "/manual", start_manual),
        ("DELETE", "/manual", stop_manual),
        ("GET", "/registers", registers),
        ("POST", "/registers/{name}/read", read_register),
        ("PUT", "/registers/{name}", write_register),
        ("GET", "/health", health),
        ("GET", "/events", events),
    ]
    for method, path, fn in routes:
        app.router.add_route(method, f"/api/v1{path}", endpoint(fn))
    app.router.add_get("/api/openapi.json", openapi)
