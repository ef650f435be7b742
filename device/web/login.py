"""Login and password change, shared by the login page and ``/api/v1/login``.

Password guesses (logins and the old password of a change) count per client address and per
account, from the moment they start (so neither one guessing machine, nor many machines guessing
one account, nor many parallel requests get far); a locked caller gets 429 with the wait in seconds.
"""

from __future__ import annotations

import math

from aiohttp import web

from device.store import Store
from device.web.inputs import ActionError
from device.home.accounts import ROLES, AuthError, check_new_password
from device.web.access import login_session
from device.web.auth import Session
from device.web.keys import DEPS, LIMITER, SESSION, SESSIONS, USERS


async def _event(request: web.Request, level: str, message: str, role: str) -> None:
    await request.app[DEPS].store.call(
        Store.add_event, level, "login", message, {"role": role, "remote": request.remote}
    )


def _guess_keys(request: web.Request, role: str) -> list[str]:
    """A login and a password change both guess the account's password: one budget for both."""
    return [f"addr:{request.remote}", f"account:{role}"]


def _count_guess(request: web.Request, keys: list[str]) -> None:
    wait = request.app[LIMITER].attempt(keys)
    if wait > 0:
        raise ActionError(f"too many failed logins; try again in {math.ceil(wait)} s", status=429)


def _text(field: str, value: object) -> str:
    """A password field must be a string: a list or number would otherwise be stored as its repr."""
    if not isinstance(value, str):
        raise ActionError(f"{field}: got {type(value).__name__}, expected a string", field)
    return value


async def attempt_login(request: web.Request, role: object, password: object) -> Session:
    if role not in ROLES:
        raise ActionError(f"account: got {role!r}, allowed: {', '.join(ROLES)}", "account")
    if not isinstance(password, str) or not password:
        raise ActionError("password: required, a string", "password")
    keys = _guess_keys(request, str(role))
    _count_guess(request, keys)
    account = await request.app[USERS].check(str(role), password)
    if account is None:
        await _event(request, "warning", f"failed login as {role}", str(role))
        raise ActionError("wrong account or password", "password", 401)
    request.app[LIMITER].succeeded(keys)
    await _event(request, "info", f"{role} logged in", str(role))
    return await login_session(request, account.role, account.must_change)


async def change_password(request: web.Request, old: object, new: object, repeat: object) -> None:
    session = request[SESSION]
    if session.role is None:
        raise ActionError("login required", status=401)
    old_text, new_text = _text("old_password", old), _text("new_password", new)
    repeat_text = _text("repeat_password", repeat)
    keys = _guess_keys(request, session.role)
    try:
        check_new_password(old_text, new_text, repeat_text)  # before counting: a short choice guesses nothing
        _count_guess(request, keys)
        await request.app[USERS].change_password(session.role, old_text, new_text, repeat_text)
    except AuthError as exc:
        raise ActionError(str(exc), str(exc).split(":", 1)[0]) from None
    request.app[LIMITER].succeeded(keys)
    session.must_change = False
    session.password = request.app[USERS].fingerprint(session.role)
    await request.app[SESSIONS].save(session)
    await request.app[SESSIONS].drop_role(session.role, keep=session)
    await _event(request, "info", f"{session.role} changed the password", session.role)
