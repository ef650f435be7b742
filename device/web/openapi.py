"""OpenAPI 3.1 description of ``/api/v1`` (served at ``/api/openapi.json``).

Written by hand, next to the handlers' table in :mod:`device.web.api`; a test checks that every
route there is described here and nothing else, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}
_NUMBER_OR_NULL = {"type": ["number", "null"]}


def _op(summary: str, role: str, body: dict[str, Any] | None = None, ok: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "description": f"Role: {role}. State changes need the X-CSRF-Token header (GET /api/v1/session).",
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": ok or {"type": "object"}}}},
            "default": {"description": "Error", "content": {"application/json": {"schema": _ERROR}}},
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    return op


def _obj(required: list[str] | None = None, **props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or []}


_NAME = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]

PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/session": {"get": _op("Current session: role, CSRF token, language", "anyone",
                                   ok=_obj(role={"type": ["string", "null"]}, must_change={"type": "boolean"},
                                           csrf={"type": "string"}, language={"type": "string"}))},
    "/api/v1/login": {"post": _op("Log in (429 after too many failures)", "anyone", _obj(
        ["account", "password"], account={"enum": ["homeowner", "installer"]}, password={"type": "string"}))},
    "/api/v1/logout": {"post": _op("Log out", "anyone")},
    "/api/v1/password": {"post": _op("Change the password (required after the first login)", "logged in", _obj(
        ["old_password", "new_password", "repeat_password"], old_password={"type": "string"},
        new_password={"type": "string", "minLength": 8}, repeat_password={"type": "string"}))},
    "/api/v1/overview": {"get": _op(
        "Live power flow (W; battery_w > 0 discharge, grid_w > 0 import), SoC, mode, data age",
        "homeowner (or anyone with web.public_overview)",
        ok=_obj(ts=_NUMBER_OR_NULL, now={"type": "number"}, online={"type": ["boolean", "null"]},
                soc_pct=_NUMBER_OR_NULL, pv_w=_NUMBER_OR_NULL, load_w=_NUMBER_OR_NULL,
                battery_w=_NUMBER_OR_NULL, grid_w=_NUMBER_OR_NULL, planner_mode={"type": "string"}))},
    "/api/v1/prices": {"get": _op(
        "Prices today and tomorrow (EUR/MWh; forecast=true where not yet known), tomorrow's state "
        "(known/pending/late) and the plan (battery_w, soc_pct per slot)", "homeowner")},
    "/api/v1/savings": {"get": _op("Net cost and savings (EUR) today, this month, this year", "homeowner")},
    "/api/v1/history": {"get": _op(
        "Energy (Wh) and money (EUR) per hour/day/month of a local period with totals; query period="
        "day|week|month|year (default month), date=YYYY-MM-DD (default today); others are a 400",
        "homeowner")},
    "/api/v1/settings": {
        "get": _op("Mode, reserve, tariff, manual override, power limits", "homeowner"),
        "patch": _op("Change mode/reserve/tariff: {section: {key: value}}", "homeowner", _obj(
            planner=_obj(mode={"type": "string"}), battery=_obj(reserve_pct={"type": "number"}),
            tariff={"type": "object"})),
    },
    "/api/v1/manual": {
        "post": _op("Charge or discharge now until a time (HH:MM local or ISO-8601)", "homeowner", _obj(
            ["action", "power_w", "until"], action={"enum": ["charge", "discharge"]},
            power_w={"type": "integer", "minimum": 1}, until={"type": "string"})),
        "delete": _op("End manual operation", "homeowner"),
    },
    "/api/v1/registers": {"get": _op("Every register of the map with live value, raw value and unit", "installer")},
    "/api/v1/registers/{name}/read": {"post": _op("Read one register now", "installer", params=_NAME)},
    "/api/v1/registers/{name}": {"put": _op("Write one register (confirm must be true)", "installer", _obj(
        ["value", "confirm"], value={"type": "number"}, confirm={"const": True}), params=_NAME)},
    "/api/v1/health": {"get": _op("Bridge queue, errors, watchdog, sync lag, price fetch", "installer")},
    "/api/v1/events": {"get": _op("Recent events, newest first", "installer", params=[
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}])},
}


def spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "nattery local API", "version": "1",
                 "description": "Units: W, Wh, %, EUR, EUR/MWh; times epoch seconds (UTC). "
                                "Session cookie auth (POST /api/v1/login)."},
        "paths": PATHS,
        "components": {"schemas": {"Error": _obj(
            ["error"], error={"type": "string"}, field={"type": "string", "description": "the input at fault"})}},
    }
