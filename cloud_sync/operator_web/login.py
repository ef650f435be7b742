"""Operator login and logout. An operator logs in with their credential (``op.<name>.<secret>``,
what ``nattery-cloud operator add`` printed), checked by the API's own authenticator: the same
scrypt check, the same limits on failed attempts per address and per name (429 past them), a
revoked operator refused. Every attempt, failed or not, and every logout goes to the audit log."""

from __future__ import annotations

from aiohttp import web

from cloud_sync import audit
from cloud_sync.operator_web.keys import FRESH_SESSION, SESSION, authenticator, db, sessions
from cloud_sync.operator_web.render import render
from cloud_sync.registry import AuthError

MAX_CREDENTIAL = 300  # op. + a 64-character name + . + the 43-character secret, with room to spare


def claimed(credential: str) -> str:
    """Who a credential says it is (not verified): ``op:<name>``, or ``unknown``."""
    kind, _, rest = credential.partition(".")
    name = rest.rpartition(".")[0]
    return f"{kind}:{name}" if kind in ("op", "dev") and name else "unknown"


async def log_in(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    credential = form.get("credential")
    if not isinstance(credential, str) or not credential.strip():
        return render(request, "login.html", status=400, error="credential: required (op.<name>.<secret>)")
    credential = credential.strip()
    source = request.remote or ""
    if len(credential) > MAX_CREDENTIAL:
        await audit.record(db(request), audit.Actor("unknown", source), "login",
                           outcome=f"refused: a credential of {len(credential)} characters")
        return render(request, "login.html", status=400,
                      error=f"credential: {len(credential)} characters, allowed: up to {MAX_CREDENTIAL}")
    try:
        who = await authenticator(request).check(f"Bearer {credential}", source)
    except AuthError as exc:
        await audit.record(db(request), audit.Actor(claimed(credential), source), "login", outcome=f"refused: {exc}")
        return render(request, "login.html", status=exc.status, error=str(exc))
    if who.kind != "op":
        reason = "a device credential cannot log in to the operator page"
        await audit.record(db(request), audit.Actor(f"dev:{who.name}", source), "login", outcome=f"refused: {reason}")
        return render(request, "login.html", status=403, error=reason)
    request[SESSION] = await sessions(request).start(who.name)
    request[FRESH_SESSION] = True
    await audit.record(db(request), audit.Actor(f"op:{who.name}", source), "login")
    raise web.HTTPSeeOther("/ops/")


async def log_out(request: web.Request) -> web.StreamResponse:
    session = request[SESSION]
    if session.operator is not None:
        await sessions(request).end(session)
        await audit.record(db(request), audit.Actor(f"op:{session.operator}", request.remote or ""), "logout")
    raise web.HTTPSeeOther("/ops/login")
