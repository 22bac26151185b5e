"""Throughput and latency of forge-nb on SQLite and Postgres, one process, no-op jobs.

    python bench/run.py                  # both backends (starts a throwaway Postgres, fsync on)
    python bench/run.py --backends sqlite --jobs 20000
    python bench/run.py --pg-url postgresql://user@host/db
    python bench/run.py --compare --jobs 10000 --repeat 3   # with the peers: bench/compare.py

Scenarios (each checks every job ran exactly once):
- enqueue one at a time (awaited), jobs/s
- enqueue_many in batches of 10,000, jobs/s
- drain: N pending no-op jobs claimed, run and finalized by one process, jobs/s
- enqueue→start latency p50/p99, job enqueued in the worker's own process
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import forge_nb as fnb  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def fresh_app(url: str, **kwargs: Any) -> fnb.App:
    app = fnb.App(url, **kwargs)
    storage = await app.storage()
    if storage.backend == "postgres":  # start from an empty schema each scenario
        raw = storage._storage  # type: ignore[attr-defined]
        async with raw._pool.acquire() as conn:
            await conn.execute(
                "TRUNCATE forge_nb_jobs, forge_nb_job_events, forge_nb_metrics, "
                "forge_nb_processes, forge_nb_queues RESTART IDENTITY CASCADE"
            )
    return app


def new_sqlite_url(tmp: Path, name: str) -> str:
    path = tmp / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


async def check_all_done(app: fnb.App, n: int) -> None:
    counts = await app.counts()
    done = sum(c["done"] for c in counts.values())
    total = sum(sum(c.values()) for c in counts.values())
    if done != n or total != n:
        raise SystemExit(f"exactly-once check failed: {done} done of {total} (expected {n})")
    page = await app.jobs(status="done", limit=1000)
    if any(j.attempts != 1 for j in page):
        raise SystemExit("a job ran more than once")


async def bench_enqueue_one(url: str, n: int) -> float:
    app = await fresh_app(url)
    try:
        request = fnb.EnqueueRequest(kind="noop", payload={"i": 0})
        start = time.perf_counter()
        for _ in range(n):
            await app.enqueue(request)
        elapsed = time.perf_counter() - start
        total = sum(sum(c.values()) for c in (await app.counts()).values())
        assert total == n, total
        return n / elapsed
    finally:
        await app.close()


async def bench_enqueue_many(url: str, n: int, batch: int = 10_000) -> float:
    app = await fresh_app(url)
    try:
        requests = [fnb.EnqueueRequest(kind="noop", payload={"i": i}) for i in range(batch)]
        start = time.perf_counter()
        for _ in range(n // batch):
            await app.enqueue_many(requests)
        elapsed = time.perf_counter() - start
        total = sum(sum(c.values()) for c in (await app.counts()).values())
        assert total == (n // batch) * batch, total  # the kept counts are exact
        return (n // batch) * batch / elapsed
    finally:
        await app.close()


async def bench_drain(url: str, n: int, workers: int) -> float:
    app = await fresh_app(url)
    try:
        finished = asyncio.Event()
        count = 0

        @app.job(kind="noop")
        async def noop(ctx: fnb.JobCtx, i: int) -> None:
            nonlocal count
            count += 1
            if count == n:
                finished.set()

        await app.ensure_queue("default", workers=workers)
        for offset in range(0, n, 10_000):
            await app.enqueue_many(
                [
                    fnb.EnqueueRequest(kind="noop", payload={"i": i})
                    for i in range(offset, min(n, offset + 10_000))
                ]
            )
        start = time.perf_counter()
        handle = await app.start()
        await asyncio.wait_for(finished.wait(), 600)
        await handle.finalizer.drain()
        elapsed = time.perf_counter() - start
        await handle.shutdown(5)
        await check_all_done(app, n)
        return n / elapsed
    finally:
        await app.close()


async def bench_latency(url: str, n: int) -> tuple[float, float]:
    app = await fresh_app(url, poll_interval=1.0)
    try:
        started: dict[str, float] = {}
        enqueued: dict[str, float] = {}

        @app.job(kind="stamp")
        async def stamp(ctx: fnb.JobCtx) -> None:
            started[ctx.job_id] = time.perf_counter()

        await app.ensure_queue("default", workers=10)
        await app.start()
        await asyncio.sleep(0.3)
        for _ in range(n):
            t0 = time.perf_counter()
            ref = await app.enqueue(fnb.EnqueueRequest(kind="stamp"))
            enqueued[ref.id] = t0
            await asyncio.sleep(0.005)
        await app.handle.finalizer.drain()
        await asyncio.sleep(0.3)
        lat = [(started[i] - enqueued[i]) * 1000 for i in enqueued if i in started]
        assert len(lat) == n, f"{len(lat)} of {n} started"
        return percentile(lat, 0.5), percentile(lat, 0.99)
    finally:
        await app.close()


PRODUCER = """
import asyncio, sys, time
import forge_nb as fnb
async def main(url, n):
    async with fnb.App(url) as app:
        for _ in range(n):
            await app.enqueue(fnb.EnqueueRequest(kind="stamp"))
            await asyncio.sleep(0.005)
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def bench_latency_cross_process(url: str, n: int) -> tuple[float, float]:
    """Jobs enqueued by another process: wall-clock created_at → handler start."""
    app = await fresh_app(url, poll_interval=1.0)
    try:
        started: dict[str, float] = {}

        @app.job(kind="stamp")
        async def stamp(ctx: fnb.JobCtx) -> None:
            started[ctx.job_id] = time.time()

        await app.ensure_queue("default", workers=10)
        await app.start()
        await asyncio.sleep(0.3)
        producer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PRODUCER, url, str(n), cwd=str(REPO)
        )
        await producer.wait()
        await asyncio.sleep(0.5)
        await app.handle.finalizer.drain()
        lat = []
        for job_id, at in started.items():
            job = await app.job(job_id)
            lat.append((at - job.created_at.timestamp()) * 1000)
        assert len(lat) == n, f"{len(lat)} of {n} started"
        return percentile(lat, 0.5), percentile(lat, 0.99)
    finally:
        await app.close()


@contextmanager
def throwaway_postgres():
    tmp = tempfile.mkdtemp(prefix="forge_nb_bench_pg_")
    out = subprocess.run(
        ["bash", str(REPO / "scripts/postgres.sh"), "start", tmp],
        capture_output=True,
        text=True,
        check=True,
    )
    try:
        yield out.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(REPO / "scripts/postgres.sh"), "stop", tmp], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


async def run_backend(name: str, url_for: Any, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"backend": name}
    runs: dict[str, list[float]] = {"enqueue_one": [], "enqueue_many": [], "drain": []}
    lat: list[tuple[float, float]] = []
    cross: list[tuple[float, float]] = []
    for _ in range(args.repeat):
        runs["enqueue_one"].append(await bench_enqueue_one(url_for("one"), args.enqueue_one))
        runs["enqueue_many"].append(await bench_enqueue_many(url_for("many"), args.jobs))
        runs["drain"].append(await bench_drain(url_for("drain"), args.jobs, args.workers))
        lat.append(await bench_latency(url_for("latency"), args.latency_jobs))
        cross.append(await bench_latency_cross_process(url_for("cross"), args.latency_jobs))
    for key, values in runs.items():
        result[key] = statistics.median(values)
    result["latency_p50_ms"] = statistics.median(p50 for p50, _ in lat)
    result["latency_p99_ms"] = statistics.median(p99 for _, p99 in lat)
    result["cross_p50_ms"] = statistics.median(p50 for p50, _ in cross)
    result["cross_p99_ms"] = statistics.median(p99 for _, p99 in cross)
    return result


def print_table(results: list[dict[str, Any]]) -> None:
    print()
    print(
        "| backend | enqueue one (awaited) | enqueue_many | drain | enqueue→start p50 / p99, "
        "same process | same, from another process |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['backend']} | {r['enqueue_one']:,.0f}/s | {r['enqueue_many']:,.0f}/s | "
            f"{r['drain']:,.0f} jobs/s | {r['latency_p50_ms']:.2f} ms / {r['latency_p99_ms']:.2f} ms | "
            f"{r['cross_p50_ms']:.2f} ms / {r['cross_p99_ms']:.2f} ms |"
        )


def compare_command(args: argparse.Namespace) -> list[str]:
    """bench/compare.py with this run's sizes (its own defaults for the rest)."""
    command = [sys.executable, str(REPO / "bench" / "compare.py"), "--repeat", str(args.repeat)]
    command += ["--jobs", str(args.jobs), "--enqueue-one", str(args.enqueue_one)]
    command += ["--latency-jobs", str(args.latency_jobs), "--workers", str(args.workers)]
    if args.pg_url:
        command += ["--pg-url", args.pg_url]
    if args.venv:
        command += ["--venv", args.venv]
    return command


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--enqueue-one", type=int, default=3_000)
    parser.add_argument("--latency-jobs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario (median reported)")
    parser.add_argument("--pg-url", help="use this Postgres instead of starting one")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="run bench/compare.py instead: the same scenarios for forge-nb and for pgqueuer, "
        "procrastinate and huey (installed into a throwaway venv), in one run, with ratios",
    )
    parser.add_argument("--venv", help="with --compare: the peers' venv to create or reuse")
    args = parser.parse_args()
    if args.compare:
        raise SystemExit(subprocess.call(compare_command(args)))
    backends = args.backends.split(",")
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="forge_nb_bench_"))
    try:
        if "sqlite" in backends:
            results.append(
                await run_backend("SQLite", lambda name: new_sqlite_url(tmp, name), args)
            )
            print_table(results)
        if "postgres" in backends:
            if args.pg_url:
                results.append(await run_backend("Postgres", lambda name: args.pg_url, args))
            else:
                with throwaway_postgres() as dsn:
                    results.append(await run_backend("Postgres", lambda name: dsn, args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(results)
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"forge-nb {fnb.__version__}; {args.jobs:,} no-op jobs, {args.workers} workers, one process"
    )
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"run-{int(time.time())}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
