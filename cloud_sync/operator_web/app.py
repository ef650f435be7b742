"""The operator page's sub-application: middlewares and routes.

Middlewares, outermost first: error pages (a 404 or 400 page naming what was wrong, never a
traceback nor the API's JSON), security headers, sessions (every visitor has one, so the login
form carries a CSRF token too) and CSRF (every state-changing request needs the session's token
in the form field ``csrf`` or the ``X-CSRF-Token`` header) — the device page's mechanics from
:mod:`common.web_security`.
"""

from __future__ import annotations

import time

import structlog
from aiohttp import web

from cloud_sync.operator_web import views
from cloud_sync.operator_web.keys import COOKIE, FRESH_SESSION, HERE, LINKS, SESSION, STATE, Links, State, sessions
from cloud_sync.operator_web.render import PageError, error_page
from common import web_security
from common.web_security import Handler, amended, headers_middleware

log = structlog.get_logger(__name__)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except PageError as exc:
        return error_page(request, exc.status, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if isinstance(exc, web.HTTPMethodNotAllowed):
            return error_page(request, 405, f"{request.method} is not allowed on {request.path}")
        return error_page(request, exc.status, exc.reason)
    except Exception:
        log.exception("operator_page_failed", path=request.path)
        return error_page(request, 500, "internal error; the aggregator's log has the details")


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.route.name == "static":
        return await handler(request)
    sid = request.cookies.get(COOKIE)
    session = await sessions(request).lookup(sid)
    request[SESSION] = session
    request[FRESH_SESSION] = session.id != sid
    return await amended(request, handler, set_cookie)


def set_cookie(request: web.Request, response: web.StreamResponse) -> None:
    if not request[FRESH_SESSION] or response.prepared:
        return
    session = request[SESSION]
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="Strict", path="/ops/",
                        max_age=max(1, int(session.expires - time.time())))


def _csrf_refused(request: web.Request) -> web.StreamResponse:
    return error_page(request, 403, "CSRF token missing or wrong: reload the page and try again")


def create(links: Links) -> web.Application:
    app = web.Application(middlewares=[
        errors_middleware, headers_middleware, session_middleware,
        web_security.csrf_middleware(lambda request: request[SESSION].csrf, _csrf_refused),
    ])
    app[LINKS] = links
    app[STATE] = State()
    app.router.add_static("/static", HERE / "static", name="static", append_version=True)
    views.setup(app)
    return app


async def to_front(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/ops/")
