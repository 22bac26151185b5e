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
#: How far back the per-minute sparkline looks (its fixed width), and how often it is re-read.
METRICS_WINDOW_MIN = 30
METRICS_REFRESH_S = 5.0
#: The live rate shown next to the sparkline: jobs finished over about this many seconds.
RATE_WINDOW_S = 15.0
#: The sparkline's one unit, whatever the values: jobs finished per minute.
SPARK_UNIT = "/min"
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
        #: (previous snapshot's time, this one's, jobs finished in between), for `per_minute`.
        self._recent: dict[str, deque[tuple[float, float, int]]] = {}

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
            delta = max(0, total - previous[1])
            self._rates.setdefault(queue, deque(maxlen=self._samples)).append(
                round(delta / elapsed, 2)
            )
            recent = self._recent.setdefault(queue, deque())
            recent.append((previous[0], now, delta))
            while recent[0][1] <= now - RATE_WINDOW_S:
                recent.popleft()

    def series(self, queue: str) -> list[float]:
        """The samples (jobs per second), oldest first."""
        return list(self._rates.get(queue, ()))

    def per_minute(self, queue: str) -> float | None:
        """Jobs finished per minute over about the last `RATE_WINDOW_S` (None before two
        snapshots)."""
        recent = self._recent.get(queue)
        if not recent:
            return None
        span = recent[-1][1] - recent[0][0]
        return round(sum(n for _, _, n in recent) * 60 / span, 1)


class MetricsThroughput:
    """Jobs finished per minute per queue over the last half hour, from ``app.metrics``.

    Always `METRICS_WINDOW_MIN` values, one per minute (0 where nothing finished), the
    last one the current minute so far: the sparkline keeps one unit and one time axis.
    """

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
            first = current - METRICS_WINDOW_MIN + 1
            self._series[queue] = [float(buckets.get(m, 0)) for m in range(first, current + 1)]
        self.read = True

    read = False  # set once metrics were read: a queue missing then has finished nothing

    def series(self, queue: str) -> list[float] | None:
        """The per-minute values (zeros for a queue with no metrics), None before a read."""
        if not self.read:
            return None
        return self._series.get(queue, [0.0] * METRICS_WINDOW_MIN)


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
            if per_minute is None or self.metrics_error is not None:
                # Metrics unreadable: live samples of the counts, in the same unit.
                per_minute = [round(r * 60, 1) for r in self.deltas.series(name)]
                label = "jobs finished per minute, live samples (metrics unavailable)"
            else:
                label = (
                    f"jobs finished per minute, last {METRICS_WINDOW_MIN} min "
                    "(the last point: this minute so far)"
                )
            spark = {
                "spark": per_minute,
                "spark_unit": SPARK_UNIT,
                "spark_label": label,
                "rate": self.deltas.per_minute(name),
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


def truncate_head(text: str, limit: int = 2 * MAX_TEXT) -> str:
    """At most ``limit`` characters from the end (a traceback's end says most)."""
    if len(text) <= limit:
        return text
    return f"… ({len(text) - limit} earlier characters)\n{text[-limit:]}"
