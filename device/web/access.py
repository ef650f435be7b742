"""Who may call a handler, and the per-request helpers handlers share: the visitor's locale, JSON
errors, the session cookie and the switch from an anonymous to a logged-in session."""

from __future__ import annotations

import time

from aiohttp import web

from device.web import i18n
from device.web.auth import Session
from device.web.keys import CFG, COOKIE, FRESH_SESSION, LANG_COOKIE, SESSION, SESSIONS, TZ, USERS


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def locale(request: web.Request) -> i18n.Locale:
    lang = i18n.pick_language(
        request.app[CFG].web.language, request.cookies.get(LANG_COOKIE), request.headers.get("Accept-Language", "")
    )
    return i18n.Locale(lang, request.app[TZ])


def json_error(status: int, message: str, field: str | None = None, **extra: object) -> web.Response:
    body: dict[str, object] = {"error": message, **extra}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status)


def guard(request: web.Request, role: str = "homeowner", public: bool = False) -> Session:
    """Let the request through, or answer 401/403 (API) / redirect to login or password (pages).

    ``role``: ``homeowner`` (either account) or ``installer``. ``public``: readable without login
    when ``web.public_overview`` is on.
    """
    session = request[SESSION]
    if session.role is None:
        if public and request.app[CFG].web.public_overview:
            return session
        if is_api(request):
            raise web.HTTPUnauthorized(text='{"error": "login required: POST /api/v1/login"}', content_type="application/json")
        raise web.HTTPSeeOther(f"/login?next={request.rel_url.path}")
    if session.must_change:
        if is_api(request):
            raise web.HTTPForbidden(
                text='{"error": "password change required: POST /api/v1/password"}', content_type="application/json"
            )
        raise web.HTTPSeeOther("/password")
    if role == "installer" and not session.is_installer:
        if is_api(request):
            raise web.HTTPForbidden(text='{"error": "installer role required"}', content_type="application/json")
        raise web.HTTPForbidden(text=locale(request).t("forbidden"))
    return session


def set_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    if not request[FRESH_SESSION] or response.prepared:
        return
    session = request[SESSION]
    response.set_cookie(
        COOKIE, session.id, httponly=True, samesite="Strict", path="/",
        max_age=max(1, int(session.expires - time.time())),
    )


async def login_session(request: web.Request, role: str, must_change: bool) -> Session:
    """Replace the anonymous session by a new one (new id: no session fixation), kept in the store."""
    session = await request.app[SESSIONS].new(role, must_change, request.app[USERS].fingerprint(role))
    request[SESSION] = session
    request[FRESH_SESSION] = True
    return session
