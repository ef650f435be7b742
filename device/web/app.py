"""The aiohttp application: its state (keys in :mod:`~device.web.keys`), one cleanup context per
resource, and the middlewares.

Middlewares, outermost first: errors (JSON for ``/api``, a page otherwise, never a traceback),
security headers (a strict CSP: scripts only from ``/static``), sessions (every visitor has one,
so even the login form carries a CSRF token) and CSRF (every state-changing method needs the
session's token, from the ``X-CSRF-Token`` header or the form field ``csrf``). Handlers state who
may call them with :func:`device.web.access.guard`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
import structlog
from aiohttp import web

from common import web_security
from common.web_security import amended, headers_middleware
from device.config import Config, ConfigError
from device.home.accounts import Users
from device.web import api, metrics, views
from device.web.access import is_api, json_error, set_session_cookie
from device.web.auth import LoginLimiter, Sessions
from device.web.deps import WebDeps
from device.web.keys import (
    CFG, COOKIE, DEPS, FRESH_SESSION, LATE_AFTER, LIMITER, LIVE, SESSION, SESSIONS, STARTED, TEMPLATES, TZ,
    USERS,
)
from device.web.live import LiveHub
from device.web.model import parse_clock

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if is_api(request) and exc.status >= 400 and exc.content_type != "application/json":
            return json_error(exc.status, _api_reason(request, exc))
        raise
    except Exception:
        log.exception("web handler failed", path=request.path)
        if is_api(request):
            return json_error(500, "internal error; see the device log")
        return web.Response(status=500, text="Internal error; see the device log.")


def _api_reason(request: web.Request, exc: web.HTTPException) -> str:
    """What aiohttp's own refusals (no route, wrong method, body too large) mean for an API caller."""
    if isinstance(exc, web.HTTPNotFound):
        return f"no such endpoint: {request.method} {request.path} (the API is described at /api/openapi.json)"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return f"{request.method} {request.path}: method not allowed; allowed: {', '.join(sorted(exc.allowed_methods))}"
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return f"request body too large: at most {request.client_max_size} bytes"
    return exc.text or exc.reason


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/static/"):
        return await handler(request)
    sid = request.cookies.get(COOKIE)
    session = request.app[SESSIONS].get(sid) or request.app[SESSIONS].anonymous(sid)
    request[FRESH_SESSION] = session.id != sid
    request[SESSION] = session
    return await amended(request, handler, set_session_cookie)


def _csrf_refused(request: web.Request) -> web.Response:
    message = "CSRF token missing or wrong: reload the page (API: send X-CSRF-Token from GET /api/v1/session)"
    return json_error(403, message) if is_api(request) else web.Response(status=403, text=message)


csrf_middleware = web_security.csrf_middleware(lambda request: request[SESSION].csrf, _csrf_refused)


async def users_ctx(app: web.Application) -> AsyncIterator[None]:
    """The accounts, then the logged-in sessions kept across the restart (those whose account's
    password changed meanwhile are dropped)."""
    users = app[USERS]
    await users.load()
    restored = await app[SESSIONS].restore(lambda role, password: password == users.fingerprint(role))
    log.info("web sessions restored", sessions=restored)
    yield


async def sessions_ctx(app: web.Application) -> AsyncIterator[None]:
    """Expired sessions and old login-limiter keys are swept every minute, so memory stays flat
    however many visitors come."""

    async def sweep() -> None:
        while True:
            await asyncio.sleep(60)
            await app[SESSIONS].sweep()
            app[LIMITER].sweep()

    task = asyncio.create_task(sweep())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def live_ctx(app: web.Application) -> AsyncIterator[None]:
    app[LIVE].start()
    yield
    app[LIVE].stop()


async def close_live_streams(app: web.Application) -> None:
    app[LIVE].close()


def create_app(cfg: Config, deps: WebDeps) -> web.Application:
    """The local web page and its JSON API. Serve with ``web.AppRunner`` + ``web.TCPSite``
    on ``cfg.web.host``/``cfg.web.port``; the caller owns ``deps``' lifetimes."""

    try:
        late_after = parse_clock(cfg.web.prices_late_after, "web.prices_late_after")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    app = web.Application(middlewares=[errors_middleware, headers_middleware, session_middleware, csrf_middleware])
    app[CFG] = cfg
    app[DEPS] = deps
    app[TZ] = ZoneInfo(cfg.device.timezone)
    app[LATE_AFTER] = late_after
    app[STARTED] = time.time()
    app[USERS] = Users.for_config(cfg)
    app[SESSIONS] = Sessions(cfg.web.session_lifetime_s, deps.store)
    app[LIMITER] = LoginLimiter(cfg.web.login_max_failures, cfg.web.login_window_s)
    app[LIVE] = LiveHub(deps.telemetry)
    app[TEMPLATES] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    app.cleanup_ctx.append(users_ctx)
    app.cleanup_ctx.append(sessions_ctx)
    app.cleanup_ctx.append(live_ctx)
    app.on_shutdown.append(close_live_streams)
    app.router.add_static("/static", STATIC_DIR, name="static", append_version=True)
    views.setup(app)
    api.setup(app)
    metrics.setup(app)
    return app
