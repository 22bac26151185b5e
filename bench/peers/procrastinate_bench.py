"""procrastinate on Postgres: the same four scenarios as bench/run.py, no-op jobs, one process.

    python bench/peers/procrastinate_bench.py --dsn postgresql://.../empty_db --jobs 10000

Uses procrastinate's documented async API: App + PsycopgConnector, `Task.defer_async`
(one at a time), `Task.batch_defer_async` (bulk), `App.run_worker_async(wait=False)` for
the drain and a waiting worker (LISTEN/NOTIFY, the default) for latency. The worker's
`concurrency` is --workers, like forge-nb's queue workers; everything else is the
library default (connector pool, polling intervals, jobs kept after completion).
Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from common import (
    batches,
    check_count,
    check_exactly_once,
    emit,
    log,
    parse_args,
    percentile,
)
from procrastinate import App, JobContext, PsycopgConnector

# The "App is instantiated in the main module" advice does not apply to a one-file bench.
logging.getLogger("procrastinate").setLevel(logging.ERROR)

TABLES = "procrastinate_jobs, procrastinate_events, procrastinate_workers"


def make_app(dsn: str) -> tuple[App, list[int], dict[int, float]]:
    """An App with one no-op task recording which job ids ran (and when they started)."""
    app = App(connector=PsycopgConnector(conninfo=dsn))
    executed: list[int] = []
    started: dict[int, float] = {}

    @app.task(name="noop", pass_context=True)
    async def noop(context: JobContext, i: int | None = None) -> None:
        job_id = context.job.id
        assert job_id is not None
        started.setdefault(job_id, time.perf_counter())
        executed.append(job_id)

    return app, executed, started


async def reset(app: App) -> None:
    await app.connector.execute_query_async(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")


async def status_counts(app: App) -> dict[str, int]:
    rows = await app.connector.execute_query_all_async(
        "SELECT status::text AS status, count(*) AS n FROM procrastinate_jobs GROUP BY status"
    )
    return {r["status"]: r["n"] for r in rows}


async def enqueue_one(dsn: str, n: int) -> float:
    app, _, _ = make_app(dsn)
    async with app.open_async():
        await reset(app)
        task: Any = app.tasks["noop"]
        start = time.perf_counter()
        for i in range(n):
            await task.defer_async(i=i)
        elapsed = time.perf_counter() - start
        check_count(sum((await status_counts(app)).values()), n, "procrastinate enqueue one")
    return n / elapsed


async def enqueue_bulk(dsn: str, n: int) -> float:
    app, _, _ = make_app(dsn)
    async with app.open_async():
        await reset(app)
        task: Any = app.tasks["noop"]
        start = time.perf_counter()
        for chunk in batches(n):
            await task.batch_defer_async(*({"i": i} for i in chunk))
        elapsed = time.perf_counter() - start
        check_count(sum((await status_counts(app)).values()), n, "procrastinate enqueue bulk")
    return n / elapsed


async def drain(dsn: str, n: int, workers: int) -> float:
    app, executed, _ = make_app(dsn)
    async with app.open_async():
        await reset(app)
        task: Any = app.tasks["noop"]
        ids: list[int] = []
        for chunk in batches(n):
            ids += await task.batch_defer_async(*({"i": i} for i in chunk))
        start = time.perf_counter()
        await app.run_worker_async(wait=False, concurrency=workers, install_signal_handlers=False)
        elapsed = time.perf_counter() - start
        check_exactly_once(ids, executed, "procrastinate drain")
        check_count((await status_counts(app)).get("succeeded", 0), n, "procrastinate drain")
    return n / elapsed


async def latency(dsn: str, n: int, workers: int) -> tuple[float, float]:
    app, executed, started = make_app(dsn)
    async with app.open_async():
        await reset(app)
        task: Any = app.tasks["noop"]
        runner = asyncio.create_task(
            app.run_worker_async(concurrency=workers, install_signal_handlers=False)
        )
        await asyncio.sleep(0.5)  # listener up before the first defer
        enqueued: dict[int, float] = {}
        for _ in range(n):
            t0 = time.perf_counter()
            enqueued[await task.defer_async()] = t0
            await asyncio.sleep(0.005)
        deadline = time.monotonic() + 60
        while len(started) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a duplicate run would show up here
        runner.cancel()  # documented graceful stop of run_worker_async
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(runner, 30)
        check_exactly_once(enqueued, executed, "procrastinate latency")
        lat = [(started[j] - t0) * 1000 for j, t0 in enqueued.items()]
    return percentile(lat, 0.5), percentile(lat, 0.99)


async def main() -> None:
    args = parse_args(__doc__ or "", needs_dsn=True)
    app, _, _ = make_app(args.dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
    log("procrastinate: enqueue one")
    one = await enqueue_one(args.dsn, args.enqueue_one)
    log("procrastinate: enqueue bulk")
    bulk = await enqueue_bulk(args.dsn, args.jobs)
    log("procrastinate: drain")
    drained = await drain(args.dsn, args.jobs, args.workers)
    log("procrastinate: latency")
    p50, p99 = await latency(args.dsn, args.latency_jobs, args.workers)
    emit(
        "procrastinate",
        ["procrastinate", "psycopg", "psycopg-pool"],
        {
            "enqueue_one": one,
            "enqueue_bulk": bulk,
            "drain": drained,
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
            "settings": f"PsycopgConnector default pool, worker concurrency={args.workers}",
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
