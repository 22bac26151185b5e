"""What the charts and tables are fed, without a browser: series, merging, escaping, backoff."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime

from bokeh.models import ColumnDataSource

import forge_nb as fnb
from forge_nb.dashboard.charts import merge_series
from forge_nb.dashboard.data import SnapshotSource, metric_series, status_totals
from forge_nb.dashboard.pages.inspector import render_job
from forge_nb.dashboard.pages.queues import delay_schedule
from forge_nb.runtime.metrics import bucket_of
from forge_nb.storage.records import JobEvent, JobRecord, MetricRow, QueueConfig

MINUTE = 60


def row(minute: int, queue: str, host: str, completed: int, latencies: list[float]) -> MetricRow:
    hist: dict[int, int] = {}
    for seconds in latencies:
        hist[bucket_of(seconds)] = hist.get(bucket_of(seconds), 0) + 1
    return MetricRow(minute, queue, host, completed=completed, processing_hist=hist, e2e_hist=hist)


def test_series_add_queues_and_hosts_and_fill_empty_minutes() -> None:
    start = 1_000 * MINUTE
    rows = [
        row(1_000, "a", "h1", 3, [0.1, 0.1, 0.1]),
        row(1_000, "b", "h2", 1, [10.0]),
        row(1_002, "a", "h1", 2, [0.2, 0.2]),
    ]
    series = metric_series(rows, start, start + 2 * MINUTE + 5)
    assert series["t"] == [start * 1000.0, (start + 60) * 1000.0, (start + 120) * 1000.0]
    assert series["completed"] == [4.0, 0.0, 2.0]
    # Percentiles come from the merged histogram of both queues and hosts.
    assert series["processing_p50"][0] < 0.2 < 9.0 < series["processing_p99"][0]
    assert math.isnan(series["processing_p50"][1])  # no runs: no latency (the line breaks)
    only_b = metric_series(rows, start, start + 2 * MINUTE, queue="b")
    assert only_b["completed"] == [1.0, 0.0, 0.0]


def test_wide_buckets_report_jobs_per_minute() -> None:
    start = 2_000 * 5 * MINUTE
    rows = [row(start // MINUTE + i, "q", "h", 10, []) for i in range(5)]
    series = metric_series(rows, start, start + 4 * MINUTE, bucket_s=5 * MINUTE)
    assert series["completed"] == [10.0]  # 50 jobs in 5 minutes


def test_merge_patches_changed_buckets_and_streams_new_ones() -> None:
    source = ColumnDataSource({"t": [], "n": []})
    merge_series(source, {"t": [1.0, 2.0, 3.0], "n": [1.0, 2.0, 3.0]}, rollover=4)
    merge_series(source, {"t": [2.0, 3.0, 4.0], "n": [2.0, 5.0, 6.0]}, rollover=4)
    assert source.data == {"t": [1.0, 2.0, 3.0, 4.0], "n": [1.0, 2.0, 5.0, 6.0]}
    merge_series(source, {"t": [5.0], "n": [7.0]}, rollover=4)  # rollover keeps the newest 4
    assert source.data == {"t": [2.0, 3.0, 4.0, 5.0], "n": [2.0, 5.0, 6.0, 7.0]}
    merge_series(source, {"t": [0.0, 1.0], "n": [9.0, 9.0]}, rollover=4)  # an earlier window
    assert source.data == {"t": [0.0, 1.0], "n": [9.0, 9.0]}
    assigned = ColumnDataSource({"t": [1.0], "n": [1.0]})
    merge_series(assigned, {"t": [1.0, 2.0], "n": [3.0, 4.0]}, rollover=4, stream=False)
    assert assigned.data == {"t": [1.0, 2.0], "n": [3.0, 4.0]}


def test_backoff_preview_matches_the_runtime_formula() -> None:
    config = QueueConfig("q", backoff_base_seconds=2.0, backoff_max_seconds=50.0)
    assert delay_schedule(config, 6) == [2.0, 4.0, 8.0, 16.0, 32.0, 50.0]


def test_inspector_escapes_everything_from_the_job() -> None:
    evil = '<img src=x onerror="window.__xss=1">'
    now = datetime.now(UTC)
    job = JobRecord(
        id="7",
        kind="k<b>",
        queue="q<i>",
        status="dead",
        priority=0,
        attempts=1,
        max_attempts=1,
        payload={"note": evil},
        result=None,
        last_error=f"top: {evil}",
        last_traceback=f"Traceback: {evil}",
        progress=None,
        progress_message=None,
        unique_key=None,
        created_at=now,
        scheduled_at=now,
        started_at=now,
        finished_at=now,
        claimed_by=None,
        cancel_requested_at=None,
    )
    html = render_job(job, [JobEvent("7", time.time(), "dead", 1, evil)], time.time())
    assert "<img" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;img src=x onerror=" in html
    assert "the worker&#x27;s own handler" in html or "own handler" in html


def test_the_code_version_shows_in_the_inspector_and_the_jobs_table() -> None:
    """Shipped code (issue 16): each job's code version, in the inspector and the table."""
    from dataclasses import replace

    from forge_nb.dashboard.pages.jobs import BASE_COLUMNS, job_row, job_row_columns

    now = datetime.now(UTC)
    job = JobRecord(
        "8", "k", "q", "pending", 0, 0, 3, {}, None, None, None, None, None, None,
        now, now, None, None, None, None, code_version="0123456789abcdef",
    )  # fmt: skip
    assert "0123456789abcdef" in render_job(job, [], time.time())
    assert "code" in BASE_COLUMNS and "code" in job_row_columns()
    assert job_row(job, time.time())["code"] == "0123456789abcdef"
    assert job_row(replace(job, code_version=None), time.time())["code"] == ""


def test_status_totals() -> None:
    counts = {"a": {"done": 2, "dead": 1}, "b": {"done": 3}}
    assert status_totals(counts) == {"done": 5, "dead": 1}


async def test_concurrent_sessions_share_one_read(tmp_path: object) -> None:
    app = fnb.App(f"sqlite:///{tmp_path}/jobs.db")
    source = SnapshotSource(app, ttl=5.0)
    calls = 0

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return calls

    answers = await asyncio.gather(*(source.cached(("k",), fetch) for _ in range(5)))
    assert answers == [1] * 5
    assert await source.cached(("k",), fetch) == 1  # still fresh
    source.invalidate("k")
    assert await source.cached(("k",), fetch) == 2
    await app.close()


async def test_long_ranges_read_rollups_with_latency_only_where_asked(tmp_path: object) -> None:
    """The 7 d chart reads hourly roll-ups; counts match the minutes, histograms are skipped."""
    now = time.time()
    current = int(now // 60)
    minutes = [
        row(m, q, h, completed=2, latencies=[0.01 * (m % 5 + 1)])
        for m in range(current - 3 * 60, current + 1)
        for q in ("a", "b")
        for h in ("h1", "h2")
    ]
    async with fnb.App(f"sqlite:///{tmp_path}/m.db") as app:
        await (await app.storage()).write_metrics(minutes)
        assert await app.roll_up_metrics() > 0
        source = SnapshotSource(app)
        since = now - 7 * 86400
        hourly = await source.metric_rows(since, step=60, histograms_from=math.inf)
        assert sum(r.completed for r in hourly) == sum(r.completed for r in minutes)
        assert {r.minute % 60 for r in hourly} == {0}, "hour buckets"
        assert all(r.processing_hist == {} for r in hourly), "counters only"
        one = await source.metric_rows(since, "a", step=60)
        assert {r.queue for r in one} == {"a"}
        assert sum(sum(r.processing_hist.values()) for r in one) == 2 * (3 * 60 + 1)
        split = await source.metric_rows(now - 3600, step=5, histograms_from=now - 600)
        with_hist = [r for r in split if r.processing_hist]
        assert with_hist and min(r.minute for r in with_hist) * 60 >= now - 900
        assert sum(r.completed for r in split) == sum(
            r.completed for r in minutes if r.minute >= int((now - 3600) // 300) * 5
        )
