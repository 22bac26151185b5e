"""Per-minute metrics aggregated in memory and flushed as one row per (minute, queue).

Histograms are sparse log-scale buckets of latency so rows from any set of
processes and minutes add up, and percentiles come out of the sum.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from forge_nb.storage.records import METRIC_COUNTERS, MetricRow

#: Bucket i holds latencies in [GROWTH^i, GROWTH^(i+1)) microseconds (~10 % wide).
GROWTH = 1.1
_LOG_GROWTH = math.log(GROWTH)


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a latency."""
    micros = max(seconds * 1e6, 1.0)
    return int(math.log(micros) / _LOG_GROWTH)


def bucket_upper_seconds(bucket: int) -> float:
    """Upper bound of a bucket, in seconds (what a percentile reports)."""
    return GROWTH ** (bucket + 1) / 1e6


def merge_histograms(hists: Iterable[Mapping[int, int]]) -> dict[int, int]:
    """Add histograms up."""
    out: dict[int, int] = {}
    for hist in hists:
        for bucket, count in hist.items():
            out[bucket] = out.get(bucket, 0) + count
    return out


def percentile(hist: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0..1) of a histogram in seconds, None when empty."""
    total = sum(hist.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return bucket_upper_seconds(bucket)
    return bucket_upper_seconds(max(hist))


#: Finish event → the counter it adds to.
OUTCOME_COUNTERS = {
    "done": "completed",
    "failed": "failed",
    "dead": "dead",
    "cancelled": "dead",
    "throttled": "throttled",
}
#: Events that end a job (their latency goes into the histograms).
TERMINAL_EVENTS = frozenset({"done", "dead", "cancelled"})


@dataclass
class _Cell:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(METRIC_COUNTERS, 0))
    processing: dict[int, int] = field(default_factory=dict)
    e2e: dict[int, int] = field(default_factory=dict)


class MetricsRecorder:
    """This process's counters for the current minutes; `dirty_rows` gives what to flush."""

    def __init__(self, host_id: str) -> None:
        self.host_id = host_id
        self._cells: dict[tuple[int, str], _Cell] = {}
        self._dirty: set[tuple[int, str]] = set()

    def _cell(self, queue: str, at: float) -> _Cell:
        key = (int(at // 60), queue)
        self._dirty.add(key)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = _Cell()
        return cell

    def record_outcome(
        self, queue: str, event: str, at: float, processing_s: float, e2e_s: float
    ) -> None:
        """One finalized run: ``started`` plus its outcome counter, and latency if it ended."""
        cell = self._cell(queue, at)
        counts = cell.counts
        counts["started"] += 1
        counter = OUTCOME_COUNTERS.get(event)
        if counter is not None:
            counts[counter] += 1
        if event == "failed":
            counts["retried"] += 1
        if event in TERMINAL_EVENTS:
            p, e = bucket_of(processing_s), bucket_of(e2e_s)
            cell.processing[p] = cell.processing.get(p, 0) + 1
            cell.e2e[e] = cell.e2e.get(e, 0) + 1

    def dirty_rows(self, now: float) -> list[MetricRow]:
        """Rows changed since the last call (absolute totals); forgets minutes that ended."""
        rows = [
            MetricRow(
                minute,
                queue,
                self.host_id,
                **self._cells[(minute, queue)].counts,
                processing_hist=dict(self._cells[(minute, queue)].processing),
                e2e_hist=dict(self._cells[(minute, queue)].e2e),
            )
            for minute, queue in sorted(self._dirty)
        ]
        self._dirty.clear()
        current = int(now // 60)
        for key in [k for k in self._cells if k[0] < current - 1]:
            del self._cells[key]
        return rows

    def restore(self, rows: Iterable[MetricRow]) -> None:
        """Mark rows dirty again after a failed flush."""
        for row in rows:
            self._dirty.add((row.minute, row.queue))
