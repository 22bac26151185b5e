"""What the queue widget shows, read from the App in a few bounded queries.

Each refresh costs the same whatever the backlog: one counts query, one
queue-config query, one page of running jobs (capped), and a metrics read and
the "no live worker runs it" flags every few seconds. The results are plain
JSON-ready dicts for the synced traits.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from forge_nb.storage.records import STATUSES, JobRecord

if TYPE_CHECKING:
    from forge_nb.runtime.app import App

#: How many count-delta samples the live sparkline keeps (one per refresh).
DELTA_SAMPLES = 60
#: How far back the per-minute sparkline looks, and how often it is re-read.
METRICS_WINDOW_MIN = 30
METRICS_REFRESH_S = 5.0
#: Per-minute history needed before the sparkline switches from live deltas to metrics.
METRICS_MIN_BUCKETS = 3
#: Longest text of a result or error sent to the browser.
MAX_TEXT = 4000
#: How often the kinds no live worker runs are re-read (a skip scan of the claim index).
STRANDED_REFRESH_S = 5.0


def finished(counts: Mapping[Any, int]) -> int:
    """Jobs in a final state: what the throughput sparkline counts."""
    return int(counts.get("done", 0)) + int(counts.get("dead", 0))


class DeltaThroughput:
    """Jobs finished per second per queue, from successive count snapshots.

    Works with any backend and no metrics: each refresh adds one sample.
    Retention and retries make totals shrink; those samples count as 0.
    """

    def __init__(self, samples: int = DELTA_SAMPLES) -> None:
        self._samples = samples
        self._last: dict[str, tuple[float, int]] = {}
        self._rates: dict[str, deque[float]] = {}

    def observe(self, counts: Mapping[str, Mapping[Any, int]], now: float) -> None:
        """Add one sample per queue."""
        for queue, per_status in counts.items():
            total = finished(per_status)
            previous = self._last.get(queue)
            self._last[queue] = (now, total)
            if previous is None:
                continue
            elapsed = now - previous[0]
            if elapsed <= 0:
                continue
            rate = max(0, total - previous[1]) / elapsed
            self._rates.setdefault(queue, deque(maxlen=self._samples)).append(round(rate, 2))

    def series(self, queue: str) -> list[float]:
        """The samples, oldest first."""
        return list(self._rates.get(queue, ()))


class MetricsThroughput:
    """Jobs finished per minute per queue over the last half hour, from ``app.metrics``."""

    def __init__(self) -> None:
        self._fetched_at = float("-inf")
        self._series: dict[str, list[float]] = {}

    async def update(self, app: App, now: float) -> None:
        """Re-read the metrics when the last read is older than `METRICS_REFRESH_S`."""
        if now - self._fetched_at < METRICS_REFRESH_S:
            return
        self._fetched_at = now
        rows = await app.metrics(since=now - METRICS_WINDOW_MIN * 60, until=now)
        per_queue: dict[str, dict[int, int]] = {}
        for row in rows:
            minute = int(row["minute"].timestamp() // 60)
            bucket = per_queue.setdefault(str(row["queue"]), {})
            bucket[minute] = bucket.get(minute, 0) + int(row["completed"]) + int(row["dead"])
        current = int(now // 60)
        self._series = {}
        for queue, buckets in per_queue.items():
            first = max(min(buckets), current - METRICS_WINDOW_MIN + 1)
            self._series[queue] = [float(buckets.get(m, 0)) for m in range(first, current + 1)]

    def series(self, queue: str) -> list[float] | None:
        """Per-minute values when there is enough history, else None."""
        values = self._series.get(queue)
        if values is None or len(values) < METRICS_MIN_BUCKETS:
            return None
        return values


@dataclass
class Snapshot:
    """One refresh's worth of widget state."""

    queues: list[dict[str, Any]]
    running: list[dict[str, Any]]
    running_total: int
    #: Kinds with waiting jobs that no live worker runs (`StrandedKind.to_dict` each).
    stranded: list[dict[str, Any]] = field(default_factory=list)


class SnapshotReader:
    """Reads `Snapshot`s for one widget, keeping the sparkline history between reads."""

    def __init__(self, app: App, max_running: int) -> None:
        self.app = app
        self.max_running = max_running
        self.deltas = DeltaThroughput()
        self.minutes = MetricsThroughput()
        self.metrics_error: str | None = None
        self._stranded: list[dict[str, Any]] = []
        self._stranded_at = float("-inf")

    async def read(self) -> Snapshot:
        """Query the App once and build the widget state."""
        app = self.app
        now = time.time()
        counts = await app.counts()
        configs = {q.name: q for q in await app.queues()}
        running = await app.jobs(status="running", limit=self.max_running)
        self.deltas.observe(counts, now)
        try:
            await self.minutes.update(app, now)
            self.metrics_error = None
        except Exception as exc:  # metrics are a nicety: keep the live deltas going
            self.metrics_error = str(exc)
        rows = []
        for name in sorted(set(counts) | set(configs)):
            config = configs.get(name)
            per_status = counts.get(name, {})
            per_minute = self.minutes.series(name)
            if per_minute is not None:
                spark = {
                    "spark": per_minute,
                    "spark_unit": "/min",
                    "spark_label": f"jobs finished per minute, last {METRICS_WINDOW_MIN} min",
                }
            else:
                spark = {
                    "spark": self.deltas.series(name),
                    "spark_unit": "/s",
                    "spark_label": "jobs finished per second, live",
                }
            rows.append(
                {
                    "name": name,
                    "paused": bool(config.paused) if config else False,
                    "workers": config.workers if config else None,
                    "counts": {s: int(per_status.get(s, 0)) for s in STATUSES},
                    **spark,
                }
            )
        running_total = sum(int(c.get("running", 0)) for c in counts.values())
        if now - self._stranded_at >= STRANDED_REFRESH_S:
            self._stranded = [flag.to_dict() for flag in await app.stranded_kinds()]
            self._stranded_at = now
        return Snapshot(
            queues=rows,
            running=[running_row(job) for job in running],
            running_total=max(running_total, len(running)),
            stranded=self._stranded,
        )


def running_row(job: JobRecord) -> dict[str, Any]:
    """One running job as the widget lists it."""
    return {
        "id": job.id,
        "kind": job.kind,
        "queue": job.queue,
        "progress": job.progress,
        "message": job.progress_message or "",
        "cancel_requested": job.cancel_requested_at is not None,
        "started_at": job.started_at.timestamp() if job.started_at else None,
    }


def result_text(value: Any) -> str:
    """A job result as readable text for the browser (JSON, truncated)."""
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return truncate(text)


def truncate(text: str, limit: int = MAX_TEXT) -> str:
    """At most ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… ({len(text) - limit} more characters)"
