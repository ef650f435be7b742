"""The device's Prometheus metrics, read from the current health on every scrape.

:class:`HealthCollector` keeps no state of its own: each ``collect()`` turns the health sources
(the bridge's retained ``health`` as :class:`~device.web.bridge_link.BridgeLink` holds it, the
app's prices, planning, sync and jobs) and a few figures of the machine (:class:`SystemFigures`:
disk, bytes written, the price forecast's error over the last day) into metric families. Names
follow Prometheus' conventions: base units (seconds, bytes), ``_total`` for counters,
``nattery_`` first. A figure a source does not report (no cloud configured, the bridge not heard
yet) is left out rather than reported as 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from common.alerts import RULE_NAMES
from common.numbers import finite_float
from common.utc import parse_utc

MODBUS_STATES = ("ok", "defective", "disconnected")


@dataclass(frozen=True)
class SystemFigures:
    """What the app measures on a scrape beside the health sources (``None``: not known)."""

    disk_free_bytes: int | None = None
    disk_size_bytes: int | None = None
    written_bytes: int | None = None  # this process' storage writes (/proc/self/io write_bytes)
    forecast_mae_eur_mwh: float | None = None  # price forecast vs cleared prices, last 24 h
    forecast_slots: int = 0


def number(value: object) -> float | None:
    """``value`` as a finite float (booleans as 0/1); ``None`` for anything else."""
    return float(value) if isinstance(value, bool) else finite_float(value)


def timestamp(value: object) -> float | None:
    """An ISO time or epoch seconds as epoch seconds; ``None`` when absent or unreadable."""
    if isinstance(value, str):
        try:
            return parse_utc(value)
        except ValueError:
            return None
    return number(value)


def _section(health: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    for key in path:
        value = health.get(key)
        health = value if isinstance(value, Mapping) else {}
    return health


class _Families:
    """Collects families, skipping samples whose value is unknown."""

    def __init__(self) -> None:
        self.out: list[Metric] = []

    def gauge(self, name: str, doc: str, value: object, labels: Mapping[str, str] | None = None) -> None:
        self._add(GaugeMetricFamily, name, doc, {(): value} if labels is None else {tuple(labels.items()): value})

    def counter(self, name: str, doc: str, value: object) -> None:
        self._add(CounterMetricFamily, name, doc, {(): value})

    def labelled(self, kind: str, name: str, doc: str, label: str, values: Mapping[str, object]) -> None:
        family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
        self._add(family, name, doc, {((label, str(k)),): v for k, v in values.items()})

    def _add(self, family: type[GaugeMetricFamily] | type[CounterMetricFamily], name: str, doc: str,
             samples: Mapping[tuple[tuple[str, str], ...], object]) -> None:
        known = {labels: n for labels, value in samples.items() if (n := number(value)) is not None}
        if not known:
            return
        names = [k for k, _ in next(iter(known))]
        metric = family(name, doc, labels=names)
        for labels, value in known.items():
            metric.add_metric([v for _, v in labels], value)
        self.out.append(metric)

    def histogram(self, name: str, doc: str, summary: Mapping[str, Any]) -> None:
        """A :class:`device.modbus.latency.LatencyHistogram` summary (per-bucket counts)."""
        buckets = summary.get("buckets")
        count, total = number(summary.get("count")), number(summary.get("sum"))
        if not isinstance(buckets, Mapping) or count is None or total is None:
            return
        bounds = sorted(((float(key.removeprefix("le_")), number(c) or 0.0) for key, c in buckets.items()))
        cumulative, rows = 0.0, []
        for bound, c in bounds:
            cumulative += c
            rows.append(("+Inf" if math.isinf(bound) else repr(bound), cumulative))
        if not rows or rows[-1][0] != "+Inf":
            rows.append(("+Inf", count))
        self.out.append(HistogramMetricFamily(name, doc, buckets=rows, sum_value=total))


class HealthCollector(Collector):
    """The metric families of the current ``health()`` of each source in ``sources`` (keys as in
    :func:`device.app.background_jobs` plus ``bridge``) and of ``system()``."""

    def __init__(self, sources: Mapping[str, Any], system: Callable[[], SystemFigures],
                 extra: Callable[[], list[Metric]] | None = None) -> None:
        self.sources = sources
        self.system = system
        self.extra = extra

    def collect(self) -> Iterator[Metric]:
        f = _Families()
        health = {name: dict(source.health()) for name, source in self.sources.items()}
        _bridge(f, health.get("bridge", {}))
        _prices(f, health.get("prices", {}))
        _planning(f, health.get("planning", {}))
        _sync(f, health.get("sync", {}))
        f.labelled("counter", "nattery_task_restarts_total", "restarts of the app's background jobs", "task",
                   {name: s.get("restarts") for name, s in health.get("tasks", {}).items() if isinstance(s, Mapping)})
        alerts = health.get("alerts")
        if alerts is not None:
            active = {a.get("alert") for a in alerts.get("active", []) if isinstance(a, Mapping)}
            f.labelled("gauge", "nattery_alert_active", "1 while the device's alert is raised (common/alerts.py)",
                       "alert", {name: name in active for name in RULE_NAMES})
        _system(f, self.system())
        yield from f.out
        if self.extra is not None:
            yield from self.extra()


def _bridge(f: _Families, h: Mapping[str, Any]) -> None:
    f.gauge("nattery_bridge_up", "1 while the bridge's status is online", h.get("online"))
    f.gauge("nattery_inverter_reachable", "1 while the bridge reads the inverter", h.get("inverter_online"))
    f.gauge("nattery_bridge_last_poll_timestamp_seconds", "when the bridge last read the inverter",
            timestamp(h.get("last_poll")))
    f.gauge("nattery_bridge_readings_buffered", "readings waiting for the next flush to SQLite", h.get("readings_buffered"))
    f.counter("nattery_bridge_polls_total", "telemetry polls", h.get("polls"))
    f.counter("nattery_bridge_poll_failures_total", "failed telemetry polls", h.get("poll_failures"))
    f.counter("nattery_bridge_readings_written_total", "readings stored by the bridge", h.get("readings_written"))
    f.counter("nattery_bridge_written_bytes_total", "bytes the bridge process caused to be written to storage",
              h.get("written_bytes"))
    m = _section(h, "modbus")
    f.counter("nattery_modbus_transactions_total", "Modbus transactions answered", m.get("transactions"))
    f.counter("nattery_modbus_retries_total", "Modbus retries", m.get("retries"))
    f.counter("nattery_modbus_reconnects_total", "serial port reconnects", m.get("reconnects"))
    f.labelled("counter", "nattery_modbus_errors_total", "Modbus errors by kind", "kind", _section(m, "errors"))
    f.labelled("gauge", "nattery_modbus_queue_depth", "requests waiting for the line, by priority", "priority",
               _section(m, "queue_depth"))
    if isinstance(m.get("state"), str):
        f.labelled("gauge", "nattery_modbus_state", "the link's state (1 for the current one)", "state",
                   {s: m["state"] == s for s in MODBUS_STATES})
    latency = _section(m, "latency")
    f.histogram("nattery_modbus_transaction_seconds", "time on the line per transaction", _section(latency, "transaction_s"))
    f.histogram("nattery_modbus_queue_wait_seconds", "time a request waited for the line", _section(latency, "queue_wait_s"))
    w = _section(h, "watchdog")
    f.counter("nattery_watchdog_trips_total", "times the watchdog fell back to self-consumption", w.get("trips"))
    if isinstance(w.get("mode"), str):
        f.gauge("nattery_watchdog_forced", "1 while a forced mode holds (not self-consumption)",
                w["mode"] != "self_consumption")
    f.gauge("nattery_watchdog_expires_in_seconds", "until the forced mode lapses", w.get("expires_in_s"))


def _prices(f: _Families, h: Mapping[str, Any]) -> None:
    f.gauge("nattery_prices_last_success_timestamp_seconds", "when day-ahead prices were last stored",
            timestamp(h.get("last_success")))
    f.gauge("nattery_prices_stale", "1 when the known prices run out", h.get("stale"))
    if isinstance(h.get("tomorrow"), str):
        f.gauge("nattery_prices_tomorrow_complete", "1 once tomorrow's prices are complete", h["tomorrow"] == "complete")
    f.counter("nattery_prices_requests_failed_total", "failed price requests", h.get("requests_failed"))


def _planning(f: _Families, h: Mapping[str, Any]) -> None:
    p, c = _section(h, "planner"), _section(h, "controller")
    f.counter("nattery_planner_replans_total", "plans made", p.get("replans"))
    compromises = p.get("compromises")
    f.gauge("nattery_planner_compromises", "compromises the current plan had to make",
            len(compromises) if isinstance(compromises, list) else None)
    f.gauge("nattery_planner_clock_synchronised", "0 while the planner refuses an unsynchronised clock",
            p.get("clock_synchronised"))
    f.counter("nattery_controller_commands_total", "commands the controller sent", c.get("commands"))
    f.counter("nattery_controller_failures_total", "commands refused or unanswered", c.get("failures"))
    f.counter("nattery_controller_fallbacks_total", "times the controller fell back to self-consumption",
              c.get("fallbacks"))


def _sync(f: _Families, h: Mapping[str, Any]) -> None:
    if not h:
        return
    f.gauge("nattery_sync_lag_seconds", "age of the oldest item not yet uploaded", h.get("lag_s"))
    f.gauge("nattery_sync_consecutive_failures", "failed sync rounds in a row", h.get("consecutive_failures"))
    f.gauge("nattery_sync_last_success_timestamp_seconds", "when a sync round last succeeded",
            timestamp(h.get("last_success")))
    streams = {k: v for k, v in _section(h, "streams").items() if isinstance(v, Mapping)}
    f.labelled("gauge", "nattery_sync_pending", "items not yet uploaded, by stream", "stream",
               {k: v.get("pending") for k, v in streams.items()})
    f.labelled("counter", "nattery_sync_items_total", "items uploaded, by stream", "stream",
               {k: v.get("items") for k, v in streams.items()})
    f.labelled("counter", "nattery_sync_bytes_total", "compressed bytes uploaded, by stream", "stream",
               {k: v.get("bytes") for k, v in streams.items()})


def _system(f: _Families, s: SystemFigures) -> None:
    f.gauge("nattery_disk_free_bytes", "free bytes on the data volume", s.disk_free_bytes)
    f.gauge("nattery_disk_size_bytes", "size of the data volume", s.disk_size_bytes)
    f.counter("nattery_app_written_bytes_total", "bytes the app process caused to be written to storage",
              s.written_bytes)
    f.gauge("nattery_price_forecast_mae_eur_per_mwh", "mean absolute error of the price forecast over the "
            "last 24 h against cleared prices", s.forecast_mae_eur_mwh)
    f.gauge("nattery_price_forecast_error_slots", "slots the forecast error was measured on", s.forecast_slots)
