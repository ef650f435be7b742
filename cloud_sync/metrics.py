"""The aggregator's Prometheus metrics (``GET /metrics``, operator credential).

Per instance: uploads by stream and outcome, rows stored, upload latency (request arrival to
answer). Fleet-wide, read from the database on each scrape: devices registered and online, and
per device its last upload and newest reading (what ``device_silent`` and ``sync_lag`` need),
and the EDI interchanges the gateway received by source and outcome (accepted, or rejected by
its CONTRL or its APERAK): the database's totals, the same whichever instance is scraped.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

UPLOAD_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class FleetCollector(Collector):
    """Devices registered and online, and per device when it last uploaded and how new its
    newest reading is, as the current scrape read them from the database."""

    def __init__(self) -> None:
        self.registered: int | None = None
        self.online: int | None = None
        self.devices: list[tuple[str, float | None, float | None]] = []
        self.edi_files: list[tuple[str, str, int]] = []

    def collect(self) -> Iterator[Metric]:
        if self.registered is not None and self.online is not None:
            yield GaugeMetricFamily("nattery_aggregator_devices", "devices registered (not revoked)", self.registered)
            yield GaugeMetricFamily("nattery_aggregator_devices_online",
                                    "devices that uploaded within the online window", self.online)
        seen = GaugeMetricFamily("nattery_aggregator_device_last_seen_timestamp_seconds",
                                 "when the device last uploaded", labels=["device"])
        newest = GaugeMetricFamily("nattery_aggregator_device_newest_reading_timestamp_seconds",
                                   "time of the device's newest reading held", labels=["device"])
        for device, last_seen, newest_ts in self.devices:
            if last_seen is not None:
                seen.add_metric([device], last_seen)
            if newest_ts is not None:
                newest.add_metric([device], newest_ts)
        yield seen
        yield newest
        edi_files = CounterMetricFamily("nattery_aggregator_edi_files", "EDI interchanges received, by source "
                                        "(device, partner) and outcome", labels=["source", "outcome"])
        for source, outcome, count in self.edi_files:
            edi_files.add_metric([source, outcome], count)
        yield edi_files


class AggregatorMetrics:
    """One instance's registry; the handlers count into it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.uploads = Counter("nattery_aggregator_uploads", "batches answered, by stream and outcome",
                               ["stream", "status"], registry=self.registry)
        self.rows = Counter("nattery_aggregator_rows", "items stored from uploads, by stream", ["stream"],
                            registry=self.registry)
        self.upload_seconds = Histogram("nattery_aggregator_upload_seconds", "time to answer an upload",
                                        buckets=UPLOAD_BUCKETS_S, registry=self.registry)
        self.fleet = FleetCollector()
        self.registry.register(self.fleet)
