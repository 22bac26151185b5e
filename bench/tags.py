"""A tag filter page at 1,000,000 jobs (issue 21: <= 50 ms), both backends.

    python bench/tags.py                          # both backends, 1,000,000 jobs
    python bench/tags.py --backends sqlite --jobs 200000

Every job carries one of 10 tags (100,000 jobs each at 1M) and every 1,000th also the tag
``rare``. Reports the median and the worst of 7 runs, in ms, of: the first page of 50 of a
common tag, the page 50 pages deep (by cursor), a common tag with a queue filter, the first
page of the rare tag, and the same page without any filter for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from run import throwaway_postgres  # noqa: E402

import forge_nb as fnb  # noqa: E402

QUEUES = [f"queue-{i:02d}" for i in range(20)]


async def seed(app: fnb.App, n: int) -> float:
    start = time.perf_counter()
    batch = 20_000
    for offset in range(0, n, batch):
        await app.enqueue_many(
            [
                fnb.EnqueueRequest(
                    kind="k",
                    queue=QUEUES[i % len(QUEUES)],
                    payload={"i": i},
                    tags=[f"t{i % 10}"] + (["rare"] if i % 1000 == 0 else []),
                )
                for i in range(offset, min(n, offset + batch))
            ]
        )
    return time.perf_counter() - start


async def timed(fn: Any, runs: int = 7) -> tuple[float, float]:
    await fn()  # warm
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


async def measure(url: str, n: int) -> dict[str, tuple[float, float]]:
    async with fnb.App(url, queues=[], replace=False) as app:
        print(f"  seeded {n:,} jobs in {await seed(app, n):.1f} s", flush=True)
        cursor = None
        for _ in range(50):
            cursor = (await app.jobs_page(tag="t3", limit=50, cursor=cursor)).next_cursor

        async def first() -> None:
            page = await app.jobs_page(tag="t3", limit=50)
            assert len(page.jobs) == 50 and all("t3" in j.tags for j in page.jobs)

        async def deep() -> None:
            assert len((await app.jobs_page(tag="t3", limit=50, cursor=cursor)).jobs) == 50

        async def with_queue() -> None:
            assert len((await app.jobs_page(tag="t3", queue="queue-03", limit=50)).jobs) == 50

        async def rare() -> None:
            assert len((await app.jobs_page(tag="rare", limit=50)).jobs) == 50

        async def plain() -> None:
            assert len((await app.jobs_page(limit=50)).jobs) == 50

        return {
            "tag, first page": await timed(first),
            "tag, page 51": await timed(deep),
            "tag + queue": await timed(with_queue),
            "rare tag (0.1%)": await timed(rare),
            "no filter": await timed(plain),
        }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--pg-url")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        tmp = tempfile.mkdtemp(prefix="forge_nb_tags_")
        try:
            if backend == "sqlite":
                results = await measure(f"sqlite:///{tmp}/tags.db", args.jobs)
            elif args.pg_url:
                results = await measure(args.pg_url, args.jobs)
            else:
                with throwaway_postgres() as dsn:
                    results = await measure(dsn, args.jobs)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"{backend}, {args.jobs:,} jobs: page of 50, median / worst of 7 (ms)")
        for name, (median, worst) in results.items():
            print(f"  {name:<18} {median:7.2f} / {worst:7.2f}")


if __name__ == "__main__":
    asyncio.run(main())
