"""A latency histogram for ``health``: per-bucket counts and the sum (what ``/metrics`` turns
into a Prometheus histogram) plus recent-window percentiles.

Buckets (Prometheus style, upper bounds in seconds) show the long-run shape and never grow;
p50/p99 come from the most recent samples, so they describe the line as it is now.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Any

BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class LatencyHistogram:
    def __init__(self, window: int = 1024) -> None:
        self.counts = [0] * (len(BUCKETS_S) + 1)
        self.total = 0
        self.sum_s = 0.0
        self.max_s = 0.0
        self.recent: deque[float] = deque(maxlen=window)

    def add(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS_S, seconds)] += 1
        self.total += 1
        self.sum_s += seconds
        self.max_s = max(self.max_s, seconds)
        self.recent.append(seconds)

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) of the recent window, nearest rank; None when empty."""
        if not self.recent:
            return None
        ordered = sorted(self.recent)
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]

    def summary(self) -> dict[str, Any]:
        p50, p99 = self.percentile(0.5), self.percentile(0.99)
        return {
            "count": self.total,
            "sum": round(self.sum_s, 6),
            "mean": round(self.sum_s / self.total, 4) if self.total else None,
            "p50": None if p50 is None else round(p50, 4),
            "p99": None if p99 is None else round(p99, 4),
            "max": round(self.max_s, 4) if self.total else None,
            "buckets": {f"le_{b:g}": c for b, c in zip((*BUCKETS_S, float("inf")), self.counts, strict=True)},
        }
