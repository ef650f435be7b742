"""The one alert rule set, evaluated on the device and at the aggregator.

Each :class:`Rule` is data: a name, a severity, what it means for an operator, and a condition
on *facts* (a flat mapping of neutral figures: ``data_age_s``, ``sync_lag_s`` …). The device
gathers its facts from its health (:mod:`device.alerting`), the aggregator from what it holds of
each device (:mod:`cloud_sync.alerting`); a rule whose facts a side does not have answers
``None`` and is not evaluated there. :class:`AlertBook` turns successive evaluations into the
active list and ``raised``/``cleared`` events. ``monitoring/alert_rules.yaml`` says the same
rules in PromQL over the exported metrics, with the same thresholds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from common.utc import format_utc

Facts = Mapping[str, Any]

DATA_GAP_S = 900.0  # no reading for 15 minutes
SYNC_LAG_S = 3600.0  # the aggregator's newest reading an hour old
SILENT_S = 1800.0  # no upload for 30 minutes
DISK_FREE_MIN = 0.10  # fraction of the data volume
FALLBACK_WINDOW_S = 3600.0  # a controller fallback within the last hour
FORECAST_DRIFT_FACTOR = 1.5  # the last day's error over the last week's
FORECAST_DRIFT_FLOOR_EUR_MWH = 10.0  # below this a day's error is no drift, whatever the week did
FORECAST_MIN_SLOTS = 48  # half a day of compared quarter-hours before judging


def _above(facts: Facts, key: str, limit: float) -> bool | None:
    value = facts.get(key)
    return None if value is None else float(value) > limit


def _forecast_drift(facts: Facts) -> bool | None:
    day, week, slots = facts.get("forecast_mae_day"), facts.get("forecast_mae_week"), facts.get("forecast_slots_day")
    if day is None or week is None or slots is None or slots < FORECAST_MIN_SLOTS:
        return None
    return float(day) > max(FORECAST_DRIFT_FACTOR * float(week), FORECAST_DRIFT_FLOOR_EUR_MWH)


def _prices_late(facts: Facts) -> bool | None:
    late, stale = facts.get("prices_tomorrow_late"), facts.get("prices_stale")
    return None if late is None or stale is None else bool(late or stale)


def _not(key: str) -> Callable[[Facts], bool | None]:
    def condition(facts: Facts) -> bool | None:
        value = facts.get(key)
        return None if value is None else not value
    return condition


def _recent(key: str, window_s: float) -> Callable[[Facts], bool | None]:
    def condition(facts: Facts) -> bool | None:
        ago = facts.get(key)
        return None if ago is None else float(ago) < window_s
    return condition


def _below(key: str, limit: float) -> Callable[[Facts], bool | None]:
    def condition(facts: Facts) -> bool | None:
        value = facts.get(key)
        return None if value is None else float(value) < limit
    return condition


@dataclass(frozen=True)
class Rule:
    name: str
    severity: str  # "warning" | "critical"
    summary: str
    condition: Callable[[Facts], bool | None] = field(compare=False)


RULES: tuple[Rule, ...] = (
    Rule("inverter_unreachable", "critical", "the bridge cannot read the inverter", _not("inverter_reachable")),
    Rule("prices_late", "warning", "tomorrow's day-ahead prices are late, or the known prices ran out",
         _prices_late),
    Rule("data_gap", "warning", f"no reading stored for {DATA_GAP_S:g} s",
         lambda facts: _above(facts, "data_age_s", DATA_GAP_S)),
    Rule("forecast_drift", "warning", "the price forecast's error over the last day is above its usual band",
         _forecast_drift),
    Rule("controller_fallback", "warning", "the controller fell back to self-consumption within the last hour",
         _recent("controller_fallback_ago_s", FALLBACK_WINDOW_S)),
    Rule("sync_lag", "warning", f"uploads to the aggregator are more than {SYNC_LAG_S:g} s behind",
         lambda facts: _above(facts, "sync_lag_s", SYNC_LAG_S)),
    Rule("disk_nearly_full", "critical", f"less than {DISK_FREE_MIN:.0%} of the data volume is free",
         _below("disk_free_fraction", DISK_FREE_MIN)),
    Rule("clock_unsynchronised", "critical", "the clock is not synchronised: the planner plans nothing",
         _not("clock_synchronised")),
    Rule("device_silent", "critical", f"the device has not uploaded for {SILENT_S:g} s",
         lambda facts: _above(facts, "silent_s", SILENT_S)),
)
RULE_NAMES = tuple(rule.name for rule in RULES)


def firing(facts: Facts, rules: tuple[Rule, ...] = RULES) -> dict[str, bool]:
    """Each rule whose facts are known: whether it fires."""
    out = {}
    for rule in rules:
        result = rule.condition(facts)
        if result is not None:
            out[rule.name] = bool(result)
    return out


@dataclass
class AlertBook:
    """The active alerts and the events of their changes; ``evaluate`` at each new set of facts."""

    rules: tuple[Rule, ...] = RULES
    active: dict[str, dict[str, Any]] = field(default_factory=dict)

    def evaluate(self, facts: Facts, now: float) -> list[dict[str, Any]]:
        """Raise what fires, clear what no longer does (a rule with unknown facts keeps its
        state); returns the events, raised before cleared, in rule order."""
        events = []
        states = firing(facts, self.rules)
        for rule in self.rules:
            fires = states.get(rule.name)
            if fires and rule.name not in self.active:
                self.active[rule.name] = alert = {"alert": rule.name, "severity": rule.severity,
                                                  "summary": rule.summary, "since": format_utc(now)}
                events.append({**alert, "state": "raised", "ts": format_utc(now)})
            elif fires is False and rule.name in self.active:
                alert = self.active.pop(rule.name)
                events.append({**alert, "state": "cleared", "ts": format_utc(now)})
        return events

    def listing(self) -> list[dict[str, Any]]:
        """The active alerts in rule order."""
        return [self.active[rule.name] for rule in self.rules if rule.name in self.active]
