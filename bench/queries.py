"""Inspection queries with 1,000,000 jobs: what the dashboard and API ask for, timed.

    python bench/queries.py                      # both backends, 1,000,000 jobs
    python bench/queries.py --backends sqlite --jobs 200000

Seeds mixed statuses over 20 queues and 50 kinds (plus 7 days of per-minute
metrics), then reports the median of 5 runs of each query in ms.
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from run import throwaway_postgres  # noqa: E402

import forge_nb as fnb  # noqa: E402
from forge_nb.storage.records import MetricRow  # noqa: E402

QUEUES = [f"queue-{i:02d}" for i in range(20)]
KINDS = [f"kind.{i:02d}" for i in range(50)]
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
            await conn.execute("ANALYZE forge_nb_jobs")
    now = time.time()
    rows = [
        MetricRow(
            minute,
            queue,
            "bench",
            enqueued=10,
            started=10,
            completed=9,
            failed=1,
            processing_hist={40: 5, 60: 4},
            e2e_hist={70: 9},
        )
        for minute in range(int((now - 7 * 86400) // 60), int(now // 60) + 1, 5)
        for queue in QUEUES
    ]
    for i in range(0, len(rows), 5000):
        await storage.write_metrics(rows[i : i + 5000])
    print(
        f"  seeded {n:,} jobs and {len(rows):,} metric rows in {time.perf_counter() - start:.0f} s"
    )


async def timed(fn: Callable[[], Awaitable[Any]], runs: int = 5) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def measure(url: str, n: int) -> dict[str, float]:
    async with fnb.App(url) as app:
        await seed(app, n)
        day, week = time.time() - 86400, time.time() - 7 * 86400
        page = await app.jobs_page(limit=50)
        queries: dict[str, Callable[[], Awaitable[Any]]] = {
            "counts (queue × status)": app.counts,
            "jobs page 1": lambda: app.jobs_page(limit=50),
            "jobs page 2 (cursor)": lambda: app.jobs_page(limit=50, cursor=page.next_cursor),
            "jobs by status=dead": lambda: app.jobs_page(status="dead", limit=50),
            "jobs by queue": lambda: app.jobs_page(queue="queue-07", limit=50),
            "jobs by kind": lambda: app.jobs_page(kind="kind.33", limit=50),
            "jobs by queue+status": lambda: app.jobs_page(
                queue="queue-07", status="failed", limit=50
            ),
            "payload search (common)": lambda: app.jobs_page(search="seeded", limit=50),
            "payload search (rare)": lambda: app.jobs_page(search="c-123456", limit=50),
            "scheduled/retries (failed)": lambda: app.jobs_page(status="failed", limit=50),
            "job detail + history": lambda: app.job_history(page.jobs[0].id),
            "metrics 24 h": lambda: app.metrics(since=day),
            "metrics 7 d": lambda: app.metrics(since=week),
            "processes + queues": lambda: asyncio.gather(app.processes(), app.queues()),
        }
        return {name: await timed(fn) for name, fn in queries.items()}


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="forge_nb_q_"))
    try:
        if "sqlite" in args.backends:
            print("SQLite:")
            results["SQLite"] = await measure(f"sqlite:///{tmp}/q.db", args.jobs)
        if "postgres" in args.backends:
            print("Postgres:")
            with throwaway_postgres() as dsn:
                results["Postgres"] = await measure(dsn, args.jobs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    names = list(next(iter(results.values())))
    print(f"\n| query ({args.jobs:,} jobs, median of 5) | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{r[name]:.1f} ms" for r in results.values()) + " |")


if __name__ == "__main__":
    asyncio.run(main())
