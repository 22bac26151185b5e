"""What an `App` reads and shows: job pages and histories, metrics, latency, per-process
samples, DataFrames, and the notebook views. A mixin of `App` (kept apart so app.py holds
enqueue, workers and admin)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from forge_nb.runtime import rollup, views
from forge_nb.runtime.metrics import percentile
from forge_nb.storage.records import (
    METRIC_COUNTERS,
    JobEvent,
    JobFilter,
    JobPage,
    JobRecord,
    MetricRow,
    Status,
)
from forge_nb.storage.validation import MAX_TIMESTAMP

if TYPE_CHECKING:
    from forge_nb.storage.base import Storage


class Reading:
    """`App`'s read-only views of the database, and its notebook views."""

    if TYPE_CHECKING:

        async def storage(self) -> Storage: ...

        async def _redacted_page(self, page: JobPage, search: str | None = None) -> JobPage: ...

    # -- jobs --------------------------------------------------------------------------------------
    async def jobs(
        self,
        status: Status | None = None,
        queue: str | None = None,
        kind: str | None = None,
        search: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        tag: str | None = None,
    ) -> list[JobRecord]:
        """Jobs newest first (``tag``: only those carrying it); pass the last id as ``cursor``
        for the next page. Up to ``limit`` matches: a payload search reads as many windows
        as it takes.
        """
        found: list[JobRecord] = []
        while True:
            page = await self.jobs_page(
                status, queue, kind, search, limit - len(found), cursor, tag=tag
            )
            found += page.jobs
            if len(found) >= limit or page.next_cursor is None:
                return found
            cursor = page.next_cursor

    async def jobs_page(
        self,
        status: Status | None = None,
        queue: str | None = None,
        kind: str | None = None,
        search: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        scheduled_after: datetime | float | None = None,
        tag: str | None = None,
    ) -> JobPage:
        """One keyset page plus ``next_cursor``, for tables that page.

        Newest first. A payload ``search`` scans a window of 50,000 job ids per page,
        so its page may hold fewer than ``limit`` jobs yet have a ``next_cursor``
        (more windows below): every page stays fast at any table size. With
        ``scheduled_after`` (e.g. now), the pending jobs due after it, soonest first —
        the Scheduled view.
        """
        after = None if scheduled_after is None else epoch_seconds(scheduled_after, 0.0)
        page = await (await self.storage()).list_jobs(
            JobFilter(status, queue, kind, search, after, tag), limit, cursor
        )
        return await self._redacted_page(page, search)

    async def job_history(self, job_id: str) -> list[JobEvent]:
        """A job's timeline: enqueued, each stored event, started and finished."""
        storage = await self.storage()
        job = await storage.get_job(str(job_id))
        if job is None:
            return []
        events = [JobEvent(job.id, job.created_at.timestamp(), "enqueued", 0)]
        events += await storage.job_events(job.id)
        if job.started_at is not None:
            events.append(JobEvent(job.id, job.started_at.timestamp(), "started", job.attempts))
        if job.status == "done" and job.finished_at is not None:
            # Failures, throttles and dead ends are stored events; success is only on the row.
            events.append(JobEvent(job.id, job.finished_at.timestamp(), "done", job.attempts))
        return sorted(events, key=lambda e: e.at)

    # -- metrics -----------------------------------------------------------------------------------
    async def metrics(
        self,
        queue: str | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        *,
        step: int = 1,
    ) -> list[dict[str, Any]]:
        """Per-minute, per-queue counts and latency percentiles (seconds), oldest first.

        ``step=5`` or ``step=60`` gives 5-minute or hourly buckets instead (``minute``
        is then each bucket's start): the cheap way to read days.
        """
        out = []
        for row in await self.metric_rows(queue, since, until, step=step):
            point: dict[str, Any] = {
                "minute": datetime.fromtimestamp(row.minute * 60, UTC),
                "queue": row.queue,
            }
            for counter in METRIC_COUNTERS:
                point[counter] = getattr(row, counter)
            point.update(_percentiles(row.processing_hist, row.e2e_hist))
            out.append(point)
        return out

    async def metric_rows(
        self,
        queue: str | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        *,
        step: int = 1,
        histograms: bool = True,
    ) -> list[MetricRow]:
        """Counters and mergeable latency histograms per (``step``-minute bucket, queue).

        All hosts are added up (``host_id`` is ``'*'``). ``since`` is rounded down
        to a whole bucket. Long ranges read the leader's roll-ups; the minutes
        not rolled up yet are added from per-minute rows, so nothing is missed.
        ``histograms=False`` reads counters only, several times faster.
        """
        start, end = _time_range(since, until)
        storage = await self.storage()
        return await rollup.read_rows(
            storage, int(start // 60), int(end // 60), queue, step, histograms=histograms
        )

    async def latency(
        self,
        queue: str | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
    ) -> dict[str, float | None]:
        """Processing and end-to-end p50/p95/p99 (seconds) over a whole range."""
        start, end = _time_range(since, until)
        storage = await self.storage()
        processing, e2e = await rollup.span_histograms(
            storage, int(start // 60), int(end // 60), queue
        )
        return _percentiles(processing, e2e)

    async def metrics_frame(
        self,
        queue: str | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        *,
        step: int = 1,
    ) -> Any:
        """`metrics` as a pandas DataFrame: one row per minute bucket and queue."""
        import pandas as pd

        columns = ["minute", "queue", *METRIC_COUNTERS, *PERCENTILE_KEYS]
        return pd.DataFrame(await self.metrics(queue, since, until, step=step), columns=columns)

    async def resources(
        self, since: datetime | float | None = None, until: datetime | float | None = None
    ) -> list[dict[str, Any]]:
        """Per-process, per-minute CPU %, RSS, disk bytes read/written, free disk."""
        return await self._samples("resources", since, until)

    async def db_health(
        self, since: datetime | float | None = None, until: datetime | float | None = None
    ) -> list[dict[str, Any]]:
        """Per-process, per-minute database latency percentiles (ms), ops and pool use."""
        return await self._samples("db", since, until)

    async def _samples(
        self, kind: str, since: datetime | float | None, until: datetime | float | None
    ) -> list[dict[str, Any]]:
        start, end = _time_range(since, until)
        found = await (await self.storage()).read_samples(kind, start, end)
        return [
            {"minute": datetime.fromtimestamp(m * 60, UTC), "host_id": h, **data}
            for m, h, data in found
        ]

    # -- notebook helpers ---------------------------------------------------------------------
    async def jobs_frame(
        self,
        status: Status | None = None,
        queue: str | None = None,
        kind: str | None = None,
        search: str | None = None,
        limit: int = 1000,
    ) -> Any:
        """Jobs as a pandas DataFrame (one row per job, newest first)."""
        import pandas as pd

        rows: list[JobRecord] = []
        cursor = None
        while len(rows) < limit:
            page = await (await self.storage()).list_jobs(
                JobFilter(status, queue, kind, search), min(1000, limit - len(rows)), cursor
            )
            rows += page.jobs
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        columns = list(JobRecord.__dataclass_fields__)
        frame = pd.DataFrame([[getattr(r, c) for c in columns] for r in rows], columns=columns)
        return frame.set_index("id")

    # -- views (UI libraries load only here, on use) ----------------------------------------
    def widget(self) -> Any:
        """Live notebook controls for this app (anywidget)."""
        return views.show("widget", self)

    def dashboard(self) -> Any:
        """The Mission Control dashboard, inline in the notebook (works offline)."""
        return views.show("dashboard", self)

    def serve_dashboard(self, port: int = 5006, address: str = "127.0.0.1", **options: Any) -> str:
        """Serve the dashboard from this kernel's loop without blocking; returns its URL.

        Idempotent: re-running replaces the server on that port.
        """
        url: str = views.show("serve_dashboard", self, port=port, address=address, **options)
        return url


DEFAULT_RANGE_S = 3_600
PERCENTILE_KEYS = (
    "processing_p50",
    "processing_p95",
    "processing_p99",
    "e2e_p50",
    "e2e_p95",
    "e2e_p99",
)


def epoch_seconds(value: datetime | float | None, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("times must be timezone-aware (e.g. datetime.now(UTC))")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a datetime or epoch seconds, got {value!r}")
    if not 0 <= value <= MAX_TIMESTAMP:
        raise ValueError(f"time {value!r} is outside 1970..9999")
    return float(value)


def _time_range(
    since: datetime | float | None, until: datetime | float | None
) -> tuple[float, float]:
    end = epoch_seconds(until, time.time())
    start = epoch_seconds(since, end - DEFAULT_RANGE_S)
    if start > end:
        raise ValueError("since must not be after until")
    return start, end


def _percentiles(processing: dict[int, int], e2e: dict[int, int]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for prefix, hist in (("processing", processing), ("e2e", e2e)):
        for q in (50, 95, 99):
            out[f"{prefix}_p{q}"] = percentile(hist, q / 100)
    return out
