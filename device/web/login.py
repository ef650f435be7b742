"""Login and password change, shared by the login page and ``/api/v1/login``.

Failures count per client address and per account (so neither one guessing machine nor many
machines guessing one account get far); a locked caller gets 429 with the wait in seconds.
"""

from __future__ import annotations

import math

from aiohttp import web

from device.store import Store
from device.web.actions import ActionError
from device.home.accounts import ROLES, AuthError
from device.web.access import login_session
from device.web.auth import Session
from device.web.keys import DEPS, LIMITER, SESSION, SESSIONS, USERS


async def _event(request: web.Request, level: str, message: str, role: str) -> None:
    await request.app[DEPS].store.call(
        Store.add_event, level, "login", message, {"role": role, "remote": request.remote}
    )


async def attempt_login(request: web.Request, role: object, password: object) -> Session:
    if role not in ROLES:
        raise ActionError(f"account: got {role!r}, allowed: {', '.join(ROLES)}", "account")
    if not isinstance(password, str) or not password:
        raise ActionError("password: required", "password")
    limiter = request.app[LIMITER]
    keys = [f"addr:{request.remote}", f"account:{role}"]
    wait = limiter.retry_after(keys)
    if wait > 0:
        raise ActionError(f"too many failed logins; try again in {math.ceil(wait)} s", status=429)
    account = await request.app[USERS].check(str(role), password)
    if account is None:
        limiter.failed(keys)
        await _event(request, "warning", f"failed login as {role}", str(role))
        raise ActionError("wrong account or password", "password", 401)
    limiter.succeeded(keys)
    await _event(request, "info", f"{role} logged in", str(role))
    return login_session(request, account.role, account.must_change)


async def change_password(request: web.Request, old: object, new: object, repeat: object) -> None:
    session = request[SESSION]
    if session.role is None:
        raise ActionError("login required", status=401)
    try:
        await request.app[USERS].change_password(session.role, str(old or ""), str(new or ""), str(repeat or ""))
    except AuthError as exc:
        raise ActionError(str(exc), str(exc).split(":", 1)[0]) from None
    session.must_change = False
    request.app[SESSIONS].drop_role(session.role, keep=session)
    await _event(request, "info", f"{session.role} changed the password", session.role)
