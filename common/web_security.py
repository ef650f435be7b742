"""What both web pages (the device's local page and the aggregator's operator page) do alike:
session ids and their storage keys, the CSRF token of an anonymous visitor, security headers and
the CSRF check on every state-changing request.

Every visitor has a session, anonymous until login, so even the login form carries a CSRF token.
An anonymous session is not stored: its token is an HMAC of the cookie's id under a key, so
requests without a cookie, however many, cost no memory. A logged-in session gets a new random id
(no session fixation); stores keep only the SHA-256 of it (:func:`session_key`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def session_key(session_id: str) -> str:
    """What a store knows a session by: the SHA-256 of its cookie value (never the value)."""
    return hashlib.sha256(session_id.encode(errors="surrogateescape")).hexdigest()


def anonymous_session(key: bytes, session_id: str | None) -> tuple[str, str]:
    """``(id, csrf)`` of an anonymous visitor: for a well-formed ``session_id`` the same pair
    every time (the token is an HMAC of the id under ``key``), else a new id and its token."""
    if session_id is None or not SESSION_ID.fullmatch(session_id):
        session_id = new_session_id()
    digest = hmac.new(key, session_id.encode(), hashlib.sha256).digest()
    return session_id, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """A strict CSP (scripts and styles only from the site), no sniffing, no caching of pages."""
    if response.prepared:
        return
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if "/static/" in request.path:
        response.headers.setdefault("Cache-Control", "public, max-age=31536000, immutable")
    else:
        response.headers.setdefault("Cache-Control", "no-store")


async def amended(request: web.Request, handler: Handler,
                  amend: Callable[[web.Request, web.StreamResponse], None]) -> web.StreamResponse:
    """``handler``'s response to ``request`` after ``amend`` (headers, a cookie); an HTTP exception
    it raises (a redirect, a refusal) is amended too, then raised."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        amend(request, exc)
        raise
    amend(request, response)
    return response


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    return await amended(request, handler, security_headers)


async def submitted_token(request: web.Request) -> str | None:
    """The CSRF token a request carries: the ``X-CSRF-Token`` header, else the form field ``csrf``."""
    token = request.headers.get("X-CSRF-Token")
    if token is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        token = str((await request.post()).get("csrf", ""))
    return token


def csrf_middleware(
    expected: Callable[[web.Request], str], refuse: Callable[[web.Request], web.StreamResponse]
) -> Middleware:
    """A middleware refusing every state-changing request whose token is not ``expected(request)``
    (the session's) with ``refuse(request)``; runs after the session middleware."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in SAFE_METHODS:
            token = await submitted_token(request)
            # bytes, not str: compare_digest refuses non-ASCII text, and a header may hold any
            if not token or not hmac.compare_digest(token.encode(errors="surrogateescape"), expected(request).encode()):
                return refuse(request)
        return await handler(request)

    return check
