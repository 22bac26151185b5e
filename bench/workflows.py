"""Workflows: what dependencies cost (issue 19's targets), on SQLite and Postgres.

    python bench/workflows.py                  # both backends (a throwaway Postgres, fsync on)
    python bench/workflows.py --backends sqlite --jobs 10000 --repeat 3

One process, 50 workers, no-op jobs. In the same run, interleaved, per backend:

- ``plain``: N pending jobs drained (claimed, run, finalized), seconds.
- ``fan-out + fan-in``: the same N jobs plus one job enqueued with ``depends_on`` all N,
  drained until the fan-in is done, seconds. Target: <= 1.15x ``plain``.
- ``enqueue with N depends_on``: one enqueue call of a job depending on N existing jobs,
  seconds. Target: <= 0.5 s for N = 10,000.

Each figure is the median over ``--repeat`` runs; the ratio is of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from run import fresh_app, new_sqlite_url, throwaway_postgres  # noqa: E402

import forge_nb as fnb  # noqa: E402

WORKERS = 50


async def drain(url: str, n: int, fan_in: bool) -> float:
    """Seconds to drain ``n`` no-op jobs (and, with ``fan_in``, one job waiting for all)."""
    app = await fresh_app(url)
    try:
        finished = asyncio.Event()
        target = n + (1 if fan_in else 0)
        count = 0

        async def noop(ctx: fnb.JobCtx, i: int = 0) -> None:
            nonlocal count
            count += 1
            if count == target:
                finished.set()

        work = app.job(kind="noop")(noop)
        await app.ensure_queue("default", workers=WORKERS)
        parts = []
        for offset in range(0, n, 10_000):
            parts += await work.enqueue_many([(i,) for i in range(offset, min(n, offset + 10_000))])
        if fan_in:
            await work.options(depends_on=parts).enqueue()
        start = time.perf_counter()
        handle = await app.start()
        await asyncio.wait_for(finished.wait(), 600)
        await handle.finalizer.drain()
        elapsed = time.perf_counter() - start
        await handle.shutdown(5)
        counts = await app.counts()
        assert sum(c["done"] for c in counts.values()) == target, counts
        return elapsed
    finally:
        await app.close()


async def enqueue_with_dependencies(url: str, n: int) -> float:
    """Seconds for one enqueue of a job that depends on ``n`` existing jobs."""
    app = await fresh_app(url)
    try:
        work = app.job(kind="noop")(lambda ctx, i=0: None)
        parts = await work.enqueue_many([(i,) for i in range(n)])
        start = time.perf_counter()
        ref = await work.options(depends_on=parts).enqueue()
        elapsed = time.perf_counter() - start
        assert await ref.status() == "waiting"
        return elapsed
    finally:
        await app.close()


async def run_backend(name: str, url_for: Any, n: int, repeat: int) -> dict[str, Any]:
    plain, fanned, linked = [], [], []
    for _ in range(repeat):
        plain.append(await drain(url_for("plain"), n, fan_in=False))
        fanned.append(await drain(url_for("fan"), n, fan_in=True))
        linked.append(await enqueue_with_dependencies(url_for("deps"), n))
    result = {
        "backend": name,
        "plain_s": statistics.median(plain),
        "fan_s": statistics.median(fanned),
        "enqueue_deps_s": statistics.median(linked),
    }
    result["ratio"] = result["fan_s"] / result["plain_s"]
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", help="use this Postgres instead of starting one")
    args = parser.parse_args()
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="forge_nb_bench_wf_"))
    if "sqlite" in args.backends:
        results.append(
            await run_backend("SQLite", lambda k: new_sqlite_url(tmp, k), args.jobs, args.repeat)
        )
    if "postgres" in args.backends:
        if args.pg_url:
            results.append(
                await run_backend("Postgres", lambda k: args.pg_url, args.jobs, args.repeat)
            )
        else:
            with throwaway_postgres() as dsn:
                results.append(await run_backend("Postgres", lambda k: dsn, args.jobs, args.repeat))
    n = f"{args.jobs:,}"
    print(
        f"\n| backend | drain {n} | fan-out {n} + fan-in | ratio (target <= 1.15) | "
        f"enqueue with {n} depends_on (target <= 0.5 s) |"
    )
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['backend']} | {r['plain_s']:.2f} s | {r['fan_s']:.2f} s | {r['ratio']:.2f}x | "
            f"{r['enqueue_deps_s'] * 1000:.0f} ms |"
        )
    print(f"\nmedians of {args.repeat} runs, {WORKERS} workers, one process, no-op jobs")


if __name__ == "__main__":
    asyncio.run(main())
