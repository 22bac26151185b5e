"""Inspection queries with 1,000,000 jobs: what the dashboard and API ask for, timed.

    python bench/queries.py                      # both backends, 1,000,000 jobs
    python bench/queries.py --backends sqlite --jobs 200000

Seeds mixed statuses over 20 queues and 50 kinds, plus 7 days of per-minute
metrics from one worker host and the enqueue counter (about 400,000 metric rows),
rolls the metrics up as the leader does, then reports the median of 5 runs of
each query in ms. Long ranges are read the way the dashboard reads them:
24 h in 5-minute buckets, 7 d in hourly ones.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from run import throwaway_postgres  # noqa: E402

import forge_nb as fnb  # noqa: E402
from forge_nb.storage.records import MetricRow, ProcessRecord  # noqa: E402

QUEUES = [f"queue-{i:02d}" for i in range(20)]
KINDS = tuple(f"kind.{i:02d}" for i in range(50))
# Per 100 jobs: 60 done, 20 pending, 8 dead, 7 failed, 5 running.
STATUS_SQL = (
    "CASE WHEN id % 100 < 60 THEN 'done' WHEN id % 100 < 80 THEN 'pending' "
    "WHEN id % 100 < 88 THEN 'dead' WHEN id % 100 < 95 THEN 'failed' ELSE 'running' END"
)


async def seed(app: fnb.App, n: int) -> None:
    storage = await app.storage()
    batch = 20_000
    start = time.perf_counter()
    for offset in range(0, n, batch):
        await app.enqueue_many(
            [
                fnb.EnqueueRequest(
                    kind=KINDS[i % len(KINDS)],
                    queue=QUEUES[i % len(QUEUES)],
                    payload={"customer": f"c-{i}", "amount": i % 997, "note": "seeded row"},
                )
                for i in range(offset, min(n, offset + batch))
            ]
        )
    raw: Any = storage._storage  # type: ignore[attr-defined]
    sql = (
        f"UPDATE forge_nb_jobs SET status = {STATUS_SQL}, finished_at = created_at + 1, "
        "last_error = CASE WHEN id % 100 >= 80 THEN 'boom: upstream said no' END"
    )
    if storage.backend == "sqlite":
        await raw._write(lambda c: c.execute(sql))
    else:
        async with raw._pool.acquire() as conn:
            await conn.execute(sql)
            # The seed just rewrote every row: 1,000,000 dead versions that autovacuum
            # would clear within a minute. Clear them now, so pages and searches are
            # timed on the table a running system has, not on the seed's leftovers.
            await conn.execute("VACUUM ANALYZE forge_nb_jobs")
    now = time.time()
    rows = [
        MetricRow(minute, queue, "*", enqueued=10)
        if host == "*"
        else MetricRow(
            minute,
            queue,
            host,
            started=10,
            completed=9,
            failed=1,
            processing_hist={40 + minute % 7: 5, 60: 4},
            e2e_hist={70 + minute % 11: 9},
        )
        for minute in range(int((now - 7 * 86400) // 60), int(now // 60) + 1)
        for queue in QUEUES
        for host in ("*", "worker-1")
    ]
    for i in range(0, len(rows), 5000):
        await storage.write_metrics(rows[i : i + 5000])
    print(
        f"  seeded {n:,} jobs and {len(rows):,} metric rows in {time.perf_counter() - start:.0f} s"
    )
    start = time.perf_counter()
    buckets = await app.roll_up_metrics()
    print(f"  first roll-up of 7 days: {buckets:,} buckets in {time.perf_counter() - start:.1f} s")
    if storage.backend == "postgres":  # statistics for the fresh metric tables, as autovacuum would
        async with raw._pool.acquire() as conn:
            await conn.execute("ANALYZE")


async def timed(fn: Callable[[], Awaitable[Any]], runs: int = 5) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def measure(url: str, n: int, only: str | None = None) -> dict[str, float]:
    async with fnb.App(url) as app:
        await seed(app, n)
        day, week = time.time() - 86400, time.time() - 7 * 86400
        page = await app.jobs_page(limit=50)
        queries: dict[str, Callable[[], Awaitable[Any]]] = {
            "counts (queue × status)": app.counts,
            "jobs page 1": lambda: app.jobs_page(limit=50),
            "jobs page 2 (cursor)": lambda: app.jobs_page(limit=50, cursor=page.next_cursor),
            "jobs by status=dead": lambda: app.jobs_page(status="dead", limit=50),
            "jobs by status=done": lambda: app.jobs_page(status="done", limit=50),
            "jobs by queue": lambda: app.jobs_page(queue="queue-07", limit=50),
            "jobs by kind": lambda: app.jobs_page(kind="kind.33", limit=50),
            "jobs by queue+status": lambda: app.jobs_page(
                queue="queue-07", status="failed", limit=50
            ),
            "payload search (common)": lambda: app.jobs_page(search="seeded", limit=50),
            "payload search (rare)": lambda: app.jobs_page(search="c-123456", limit=50),
            "scheduled/retries (failed)": lambda: app.jobs_page(status="failed", limit=50),
            "job detail + history": lambda: app.job_history(page.jobs[0].id),
            "metrics 1 h per minute, all queues": lambda: app.metric_rows(since=time.time() - 3600),
            "metrics 6 h per minute, counters": lambda: app.metric_rows(
                since=time.time() - 6 * 3600, histograms=False
            ),
            "metrics 24 h, 5-min buckets, counters": lambda: app.metric_rows(
                since=day, step=5, histograms=False
            ),
            "metrics 24 h, 5-min buckets, one queue": lambda: app.metric_rows(
                "queue-07", since=day, step=5
            ),
            "metrics 7 d, hourly, counters": lambda: app.metric_rows(
                since=week, step=60, histograms=False
            ),
            "metrics 7 d, hourly, one queue": lambda: app.metric_rows(
                "queue-07", since=week, step=60
            ),
            "latency p50/p95/p99 over 7 d, all queues": lambda: app.latency(since=week),
            "processes + queues": lambda: asyncio.gather(app.processes(), app.queues()),
            "kinds no live worker runs: none live (100 pairs flagged)": app.stranded_kinds,
            "kinds no live worker runs: every kind live (none flagged)": lambda: live_everywhere(
                app
            ),
        }
        if only:
            queries = {k: v for k, v in queries.items() if only in k}
        return {name: await timed(fn) for name, fn in queries.items()}


async def live_everywhere(app: fnb.App) -> Any:
    """`stranded_kinds` with one live worker slot per queue that runs every kind."""
    storage = await app.storage()
    if not any(p.host_id == "bench-live" for p in await storage.processes()):
        now = datetime.now(UTC)
        beat = now + timedelta(days=1)  # live throughout, with no heartbeat write timed
        await storage.register_processes(
            [
                ProcessRecord(
                    f"{q}-0-bench-live", "bench-live", "bench", 1, q, None, beat, now, kinds=KINDS
                )
                for q in QUEUES
            ]
        )
    found = await app.stranded_kinds()
    assert found == [], found
    return found


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--only", help="time only the queries whose name contains this")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="forge_nb_q_"))
    try:
        if "sqlite" in args.backends:
            print("SQLite:")
            results["SQLite"] = await measure(f"sqlite:///{tmp}/q.db", args.jobs, args.only)
        if "postgres" in args.backends:
            print("Postgres:")
            with throwaway_postgres() as dsn:
                results["Postgres"] = await measure(dsn, args.jobs, args.only)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    names = list(next(iter(results.values())))
    print(f"\n| query ({args.jobs:,} jobs, median of 5) | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{r[name]:.1f} ms" for r in results.values()) + " |")


if __name__ == "__main__":
    asyncio.run(main())
