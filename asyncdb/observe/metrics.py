"""``db.metrics()``: counters and a latency histogram per collection and operation.

Cheap enough to stay on (``connect(url, metrics=False)`` turns it off): one dict lookup, a few
integer additions and a bisect into fixed buckets per operation, no lock (one event loop); a
point read by key looks its counters up by the collection's name alone.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

# Upper bounds of the latency buckets in milliseconds (the last bucket is everything above).
BUCKETS_MS: tuple[float, ...] = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
    10000.0,
)
_BOUNDS_S = tuple(b / 1000 for b in BUCKETS_MS)
PENDING_MAX = 512  # point reads held in OperationStats.pending before they are counted


class OperationStats:
    """One (collection, operation): counts, errors, latency buckets, documents, cache."""

    __slots__ = (
        "buckets",
        "cache_hits",
        "cache_misses",
        "count",
        "docs_read",
        "docs_returned",
        "errors",
        "max_s",
        "pending",
        "pending_missed",
        "slow",
        "total_s",
    )

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.total_s = 0.0
        self.max_s = 0.0
        self.buckets = [0] * (len(BUCKETS_MS) + 1)
        self.docs_read = 0
        self.docs_returned = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.slow = 0
        self.pending: list[float] = []  # point reads not counted yet (fold): found a doc
        self.pending_missed: list[float] = []  # ... and found none

    def record(self, seconds: float, failed: bool) -> None:
        self.count += 1
        if failed:
            self.errors += 1
        self.total_s += seconds
        if seconds > self.max_s:
            self.max_s = seconds
        self.buckets[bisect_left(_BOUNDS_S, seconds)] += 1

    def add(self, seconds: float, returned: int, read: int, hits: int, misses: int) -> None:
        """One successful operation (the hot path of ``db.metrics()``)."""
        self.count += 1
        self.total_s += seconds
        if seconds > self.max_s:
            self.max_s = seconds
        self.buckets[bisect_left(_BOUNDS_S, seconds)] += 1
        if returned or read or hits or misses:
            # A point read by key reads exactly what it returns (no residual), unless cached.
            self.docs_read += read if read or hits else returned
            self.docs_returned += returned
            self.cache_hits += hits
            self.cache_misses += misses

    def fold(self) -> None:
        """Count the point reads held in :attr:`pending` (the seconds of each read that found
        its document) and :attr:`pending_missed` (of each that found none): one
        ``list.append`` per read on the hot path; here, every ``PENDING_MAX`` reads and before
        a snapshot, each list sorted and cut at the bucket bounds (no loop per read)."""
        found, missed = self.pending, self.pending_missed
        self.pending, self.pending_missed = [], []
        buckets = self.buckets
        last = len(_BOUNDS_S)
        for values in (found, missed):
            if not values:
                continue
            values.sort()
            n = len(values)
            low = 0
            for i, bound in enumerate(_BOUNDS_S):  # bucket i: bounds[i-1] < seconds <= bounds[i]
                high = bisect_right(values, bound, low)
                buckets[i] += high - low
                low = high
                if low == n:
                    break
            buckets[last] += n - low
            self.count += n
            self.total_s += sum(values)
            if values[-1] > self.max_s:
                self.max_s = values[-1]
        self.docs_read += len(found)
        self.docs_returned += len(found)

    def percentile_ms(self, q: float) -> float:
        """The upper bound of the bucket holding the ``q`` quantile (the maximum for the last)."""
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.buckets):
            seen += n
            if seen >= rank and n:
                return BUCKETS_MS[i] if i < len(BUCKETS_MS) else self.max_s * 1000
        return self.max_s * 1000

    def snapshot(self) -> dict[str, Any]:
        if self.pending or self.pending_missed:
            self.fold()
        return {
            "count": self.count,
            "errors": self.errors,
            "latency_ms": {
                "mean": 1000 * self.total_s / self.count if self.count else 0.0,
                "max": 1000 * self.max_s,
                "p50": self.percentile_ms(0.50),
                "p95": self.percentile_ms(0.95),
                "p99": self.percentile_ms(0.99),
                "buckets_ms": list(BUCKETS_MS),
                "counts": list(self.buckets),
            },
            "docs_read": self.docs_read,
            "docs_returned": self.docs_returned,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "slow": self.slow,
        }


class Metrics:
    """The registry of one database: ``stats(collection, op)`` hands out the counters."""

    def __init__(self) -> None:
        self._ops: dict[tuple[str, str], OperationStats] = {}
        # The "find_one" counters by collection name: a point read's one lookup, no key tuple.
        self.point_reads: dict[str, OperationStats] = {}
        self.audit_events = 0
        self.audit_failures = 0

    def stats(self, collection: str, op: str) -> OperationStats:
        key = (collection, op)
        stats = self._ops.get(key)
        if stats is None:
            stats = self._ops[key] = OperationStats()
        return stats

    def point_read_stats(self, collection: str) -> OperationStats:
        """``stats(collection, "find_one")``, remembered in :attr:`point_reads`."""
        stats = self.point_reads[collection] = self.stats(collection, "find_one")
        return stats

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for (collection, op), stats in sorted(self._ops.items()):
            out.setdefault(collection, {})[op] = stats.snapshot()
        return out


__all__ = ["BUCKETS_MS", "PENDING_MAX", "Metrics", "OperationStats"]
