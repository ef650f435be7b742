"""The installer's health cards: each part's figures as a short summary a person can read.

The raw figures (histogram buckets, timestamps, every counter) stay one click away as JSON; the
summary puts the state first and says errors by kind, latencies in ms and ages ("12 s ago")
instead of Unix or ISO timestamps, "yes"/"no" instead of ``True``/``False``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from device.web.i18n import Locale

#: Keys whose value says how a part is doing: shown first.
STATE_KEYS = ("state", "online", "inverter_online", "mode", "status")
#: A mapping with these is a latency histogram (seconds): shown as one line in ms.
HISTOGRAM_KEYS = frozenset({"p50", "p99", "max"})


def summary(health: Mapping[str, Any], now: float, L: Locale) -> dict[str, list[tuple[str, str]]]:
    """Per part: ``(label, text)`` rows, the state first."""
    return {name: _first_the_state(_rows(values, now, L)) for name, values in health.items()
            if isinstance(values, Mapping)}


def _first_the_state(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted(rows, key=lambda row: row[0].rsplit(".", 1)[-1] not in STATE_KEYS)


def _rows(data: Mapping[str, Any], now: float, L: Locale, prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in data.items():
        label = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if value.keys() >= HISTOGRAM_KEYS:
                rows.append((label.removesuffix("_s"), _latency(value, L)))
            elif key == "errors" or key.endswith("_errors"):
                rows.append((label, _by_kind(value, L)))
            else:
                rows += _rows(value, now, L, f"{label}.")
        else:
            rows.append(_row(label, key, value, now, L))
    return rows


def _row(label: str, key: str, value: Any, now: float, L: Locale) -> tuple[str, str]:
    if value is None:
        return label.removesuffix("_s"), "–"
    if isinstance(value, bool):
        return label, L.t("yes") if value else L.t("no")
    moment = _moment(key, value)
    if moment is not None:
        return label, _age(now - moment, L)
    if isinstance(value, (int, float)) and key.endswith("_s"):
        return label.removesuffix("_s"), _duration(value)
    if isinstance(value, (int, float)):
        return label, L.number(value, 0 if float(value).is_integer() else 2)
    if isinstance(value, (list, tuple)):
        return label, ", ".join(str(item) for item in value) or "–"
    return label, str(value)


def _moment(key: str, value: Any) -> float | None:
    """The Unix time a figure stands for: an ISO timestamp, or a number named ``ts``/``*_ts``/``*_at``."""
    if isinstance(value, str) and len(value) >= 16 and value[4:5] == "-" and value[10:11] == "T":
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    if isinstance(value, (int, float)) and (key == "ts" or key.endswith(("_ts", "_at"))) and value > 1e9:
        return float(value)
    return None


def _duration(seconds: float) -> str:
    s = abs(seconds)
    if s < 120:
        return f"{s:.0f} s" if s >= 10 or float(s).is_integer() else f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172_800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86_400:.1f} d"


def _age(seconds: float, L: Locale) -> str:
    return L.t("age_ago", age=_duration(seconds)) if seconds >= 0 else L.t("age_in", age=_duration(seconds))


def _latency(histogram: Mapping[str, Any], L: Locale) -> str:
    parts = [f"{name} {L.number(float(histogram[name]) * 1000)} ms" for name in ("p50", "p99", "max")
             if isinstance(histogram.get(name), (int, float))]
    count = histogram.get("count")
    return " · ".join(parts) + (f" ({L.number(count)}×)" if isinstance(count, (int, float)) else "") if parts else "–"


def _by_kind(errors: Mapping[str, Any], L: Locale) -> str:
    counted = sorted(((kind, n) for kind, n in errors.items() if n), key=lambda item: (-_count(item[1]), item[0]))
    return ", ".join(f"{kind} {n}" for kind, n in counted) or L.t("none")


def _count(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0
