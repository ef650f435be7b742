"""``POST /v1/audit``: the fleet tool (``nattery-fleet``) records what an operator did through
Balena (configuration set, release pinned, device identified, service restarted). The caller
authenticates as an operator; the entry names that operator and the address the call came from.

Body: ``{"action": one of ACTIONS, "target": text, "outcome": "ok" or "failed: …", "detail": {…}}``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from cloud_sync import audit
from cloud_sync.operator_web.keys import Links
from cloud_sync.registry import AuthError

ACTIONS = ("config_set", "pin", "identify", "restart")
MAX_BODY = 16 * 1024


def add_routes(app: web.Application, links: Links) -> None:
    async def record(request: web.Request) -> web.Response:
        who = await request.app[links.auth].check(request.headers.get("Authorization"), request.remote or "")
        if who.kind != "op":
            raise AuthError(403, "recording an operator action needs an operator credential")
        try:
            entry = _entry(await request.content.read(MAX_BODY + 1))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        await audit.record(request.app[links.db], audit.Actor(f"op:{who.name}", request.remote or ""), **entry)
        return web.json_response({"recorded": True}, status=201)

    app.router.add_post("/v1/audit", record)


def _entry(body: bytes) -> dict[str, Any]:
    """The entry a request body describes; ValueError naming the field otherwise."""
    if len(body) > MAX_BODY:
        raise ValueError(f"body: more than {MAX_BODY} bytes")
    try:
        data = json.loads(body)
    except ValueError:
        raise ValueError("body: expected a JSON object") from None
    if not isinstance(data, dict):
        raise ValueError(f"body: got {type(data).__name__}, expected a JSON object")
    unknown = sorted(set(data) - {"action", "target", "outcome", "detail"})
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field; allowed: action, target, outcome, detail")
    action, target, outcome, detail = data.get("action"), data.get("target"), data.get("outcome", "ok"), data.get("detail")
    if action not in ACTIONS:
        raise ValueError(f"action: got {action!r:.60}, allowed: {', '.join(ACTIONS)}")
    if not isinstance(target, str) or not target:
        raise ValueError(f"target: got {target!r:.60}, expected a non-empty text")
    if not isinstance(outcome, str) or not (outcome == "ok" or outcome.startswith("failed")):
        raise ValueError(f"outcome: got {outcome!r:.60}, expected 'ok' or 'failed: <reason>'")
    if detail is not None and not isinstance(detail, dict):
        raise ValueError(f"detail: got {type(detail).__name__}, expected a JSON object")
    return {"action": action, "target": target, "outcome": outcome, "detail": detail}
