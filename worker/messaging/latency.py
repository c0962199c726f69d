"""How long messages from other workers took to arrive: a small histogram for the metrics."""

from __future__ import annotations

import bisect
from typing import Any

# Upper bounds, in seconds, of the histogram's buckets (Prometheus' "le").
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LatencyHistogram:
    """Counts delivery delays into BUCKETS; sender and receiver clocks are the hosts' own."""

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.count += 1
        self.sum += seconds

    def figures(self) -> dict[str, Any]:
        """Cumulative bucket counts by upper bound (as strings, JSON-safe), sum and count."""
        cumulative, running = {}, 0
        for bound, n in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            running += n
            cumulative["+Inf" if bound == float("inf") else repr(bound)] = running
        return {"buckets": cumulative, "sum": self.sum, "count": self.count}
