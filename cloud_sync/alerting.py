"""The alert rules of :mod:`common.alerts` at the aggregator, per device, from what it holds.

The aggregator knows when a device last uploaded and how old its newest reading is, so it
evaluates ``device_silent`` and ``sync_lag`` (the rules whose facts it lacks stay unevaluated).
It keeps no alert state: each request evaluates the rows it reads, so every instance behind a
load balancer answers the same, and ``since`` is derived from the data (when the threshold was
crossed), not from when an instance noticed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from common.alerts import RULES, SILENT_S, SYNC_LAG_S, firing
from common.utc import format_utc, parse_utc


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_utc(value)
    except ValueError:
        return None


def device_alerts(device: Mapping[str, Any], now: float) -> list[dict[str, Any]]:
    """The active alerts of one row of :func:`cloud_sync.queries.devices` at ``now``."""
    if device.get("revoked"):
        return []
    heard = _epoch(device.get("last_seen")) or _epoch(device.get("created_at"))
    telemetry = device.get("latest_telemetry")
    newest = telemetry.get("ts") if isinstance(telemetry, Mapping) else None
    facts = {
        "silent_s": None if heard is None else now - heard,
        "sync_lag_s": None if newest is None else now - float(newest),
    }
    since = {
        "device_silent": None if heard is None else heard + SILENT_S,
        "sync_lag": None if newest is None else float(newest) + SYNC_LAG_S,
    }
    fires = firing(facts)
    return [
        {"alert": rule.name, "severity": rule.severity, "summary": rule.summary,
         "since": None if since.get(rule.name) is None else format_utc(since[rule.name])}
        for rule in RULES if fires.get(rule.name)
    ]


def with_alerts(devices: list[dict[str, Any]], now: float | None = None) -> list[dict[str, Any]]:
    """Each row of :func:`cloud_sync.queries.devices` with its active alerts."""
    now = time.time() if now is None else now
    return [{**d, "alerts": device_alerts(d, now)} for d in devices]
