"""The aggregator's Prometheus metrics (``GET /metrics``, operator credential).

Per instance: uploads by stream and outcome, rows stored, upload latency (request arrival to
answer). Fleet-wide, read from the database on each scrape: devices registered and online.
EDI exchanges are not counted yet: the aggregator has no market gateway (see the README).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

UPLOAD_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class FleetCollector(Collector):
    """Devices registered and online, as the last scrape read them from the database."""

    def __init__(self) -> None:
        self.registered: int | None = None
        self.online: int | None = None

    def collect(self) -> Iterator[Metric]:
        if self.registered is not None and self.online is not None:
            yield GaugeMetricFamily("nattery_aggregator_devices", "devices registered (not revoked)", self.registered)
            yield GaugeMetricFamily("nattery_aggregator_devices_online",
                                    "devices that uploaded within the online window", self.online)


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
