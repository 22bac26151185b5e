"""Per-key concurrency: what ``concurrency_key=…, key_limit=1`` costs (issue 20's target),
on SQLite and Postgres.

    python bench/key_limits.py                  # both backends (a throwaway Postgres, fsync on)
    python bench/key_limits.py --backends sqlite --jobs 10000 --repeat 3

One process, 50 workers, no-op jobs. In the same run, interleaved, per backend:

- ``unlimited``: N pending jobs drained (claimed, run, finalized), seconds.
- ``100 keys, limit 1``: the same N jobs spread over 100 keys (enqueued round-robin), each
  key at most one running job at a time, drained, seconds. Target: a drain rate >= 0.5x
  ``unlimited`` (the time ratio <= 2).
- ``… key by key``: the same, enqueued key after key (all of key 0 first). Each key's jobs
  beyond its limit are held out of the claimable set and promoted as places free, so the
  claim never walks past a busy key's backlog (before migration 16 it did: 0.07x-0.18x).

Each figure is the median over ``--repeat`` runs; the ratio is of the medians. Also timed:
the ``enqueue_many`` calls that load each drain's jobs (10,000 a call), as jobs a second.
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
KEYS = 100


async def drain(url: str, n: int, mode: str) -> tuple[float, float]:
    """Seconds to drain ``n`` no-op jobs: ``plain``, ``keyed`` (round-robin) or ``blocks``;
    and seconds to enqueue them."""
    app = await fresh_app(url)
    storage = await app.storage()
    if storage.backend == "postgres":  # key counts of an earlier (interrupted) run: start at 0
        async with storage._storage._pool.acquire() as conn:  # type: ignore[attr-defined]
            await conn.execute("TRUNCATE forge_nb_key_slots")
    try:
        finished = asyncio.Event()
        count = 0

        async def noop(ctx: fnb.JobCtx, key: int = 0) -> None:
            nonlocal count
            count += 1
            if count == n:
                finished.set()

        if mode == "plain":
            work = app.job(kind="noop")(noop)
        else:
            work = app.job(kind="noop", concurrency_key="key", key_limit=1)(noop)
        await app.ensure_queue("default", workers=WORKERS)
        per_key = -(-n // KEYS)
        if mode == "blocks":
            keys = [i // per_key for i in range(n)]
        else:
            keys = [i % KEYS for i in range(n)]
        start = time.perf_counter()
        for offset in range(0, n, 10_000):
            await work.enqueue_many([(k,) for k in keys[offset : offset + 10_000]])
        enqueued = time.perf_counter() - start
        start = time.perf_counter()
        handle = await app.start()
        await asyncio.wait_for(finished.wait(), 900)
        await handle.finalizer.drain()
        elapsed = time.perf_counter() - start
        await handle.shutdown(5)
        counts = await app.counts()
        assert sum(c["done"] for c in counts.values()) == n, counts
        return elapsed, enqueued
    finally:
        await app.close()


async def run_backend(name: str, url_for: Any, n: int, repeat: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {"plain": [], "keyed": [], "blocks": []}
    loads: dict[str, list[float]] = {mode: [] for mode in times}
    for _ in range(repeat):
        for mode in times:
            drained, enqueued = await drain(url_for(mode), n, mode)
            times[mode].append(drained)
            loads[mode].append(enqueued)
    result: dict[str, Any] = {"backend": name}
    for mode, values in times.items():
        result[mode] = statistics.median(values)
        result[f"{mode}_enqueue"] = statistics.median(loads[mode])
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", help="use this Postgres instead of starting one")
    args = parser.parse_args()
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="forge_nb_bench_keys_"))
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
    n = args.jobs
    print(
        f"\n| backend | unlimited: {n:,} jobs | {KEYS} keys, limit 1 | rate vs unlimited "
        f"(target >= 0.5x) | key by key | rate vs unlimited |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['backend']} | {r['plain']:.2f} s ({n / r['plain']:,.0f}/s) | "
            f"{r['keyed']:.2f} s ({n / r['keyed']:,.0f}/s) | {r['plain'] / r['keyed']:.2f}x | "
            f"{r['blocks']:.2f} s | {r['plain'] / r['blocks']:.2f}x |"
        )
    print("\n| backend | enqueue_many, plain | keyed, round-robin | keyed, key by key |")
    print("|---|---|---|---|")
    for r in results:
        rates = [f"{n / r[f'{m}_enqueue']:,.0f}/s" for m in ("plain", "keyed", "blocks")]
        print(f"| {r['backend']} | " + " | ".join(rates) + " |")
    print(f"\nmedians of {args.repeat} runs, {WORKERS} workers, one process, no-op jobs")


if __name__ == "__main__":
    asyncio.run(main())
