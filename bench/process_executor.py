"""executor="process": dispatch overhead against ProcessPoolExecutor (and Dask), and CPU scaling.

    python bench/process_executor.py                       # both parts, SQLite
    python bench/process_executor.py --jobs 10000 --repeat 3
    python bench/process_executor.py --part scaling

Dispatch: 10,000 tiny jobs (``n * 2``) drained by one process whose pool has
``--children`` children (default: os.cpu_count()), pool already started (a warm-up
job first), timed from `start()` to the last outcome stored; in the same run
`concurrent.futures.ProcessPoolExecutor.map` on the same function with as many
workers (chunksize 1: one round trip per call, as forge-nb does; and chunksize 100
for reference), and Dask's LocalCluster (``client.map`` + ``gather``, processes,
one thread each) when ``distributed`` is importable (it is not a dependency:
``pip install "dask[distributed]"`` into a separate venv that has forge-nb).
The thread executor drains the same jobs too, for scale.

Scaling: 8 pure-Python jobs of about 0.5 s each (the loop count is calibrated
first), run by the thread executor and by the process executor; wall time from
enqueue to the last outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import forge_nb as fnb  # noqa: E402

FAST = {"heartbeat_interval": 1.0, "poll_interval": 0.05, "tick_interval": 0.5}


def tiny(n: int) -> int:
    """The dispatch benchmark's job: next to no work."""
    return n * 2


def spin(loops: int) -> int:
    """Pure-Python CPU work (holds the GIL throughout)."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


async def until_done(app: fnb.App, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        counts = (await app.counts())["default"]
        if counts["dead"] + counts["failed"]:
            raise SystemExit(f"jobs failed: {await app.jobs(status='dead', limit=3)}")
        if counts["done"] >= n:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"not done in {timeout} s: {counts}")
        await asyncio.sleep(0.005)


async def drain(
    url: str, n: int, executor: str, children: int, workers: int, fn: Callable[..., Any], args: Any
) -> float:
    """Seconds for one process to run ``n`` pending jobs of ``fn``.

    The pool is warmed up first (a job per child on another queue), then the jobs are
    enqueued into the paused queue, and the clock runs from its resume to the last outcome.
    """
    app = fnb.App(url, process_workers=children, **FAST)
    try:
        job = app.job(kind="bench", executor=executor)(fn)
        await app.ensure_queue("default", workers=workers)
        await app.pause_queue("default")
        await app.ensure_queue("warm", workers=children)
        handle = await app.start()
        warm = await job.options(queue="warm").enqueue_many([args(i) for i in range(children)])
        for ref in warm:
            await ref.wait(timeout=60)
        for offset in range(0, n, 10_000):
            await job.enqueue_many([args(i) for i in range(offset, min(n, offset + 10_000))])
        start = time.perf_counter()
        await app.resume_queue("default")
        await handle._tick()  # apply the resume now, not at the next tick
        await until_done(app, n)
        await handle.finalizer.drain()
        return time.perf_counter() - start
    finally:
        await app.close()


def ppe_map(n: int, children: int, chunksize: int) -> float:
    with ProcessPoolExecutor(max_workers=children, mp_context=get_context("spawn")) as pool:
        list(pool.map(tiny, range(children * 4)))  # start every worker
        start = time.perf_counter()
        results = list(pool.map(tiny, range(n), chunksize=chunksize))
        elapsed = time.perf_counter() - start
    assert results[-1] == tiny(n - 1)
    return elapsed


def dask_map(n: int, children: int) -> float | None:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        return None
    with (
        LocalCluster(
            n_workers=children, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.gather(client.map(tiny, range(children * 4), pure=False))
        start = time.perf_counter()
        results = client.gather(client.map(tiny, range(n), pure=False))
        elapsed = time.perf_counter() - start
    assert results[-1] == tiny(n - 1)
    return elapsed


def median_of(repeat: int, measure: Callable[[], float | None]) -> float | None:
    values = [measure() for _ in range(repeat)]
    if any(v is None for v in values):
        return None
    return statistics.median(v for v in values if v is not None)


def run(coro: Callable[[], Coroutine[Any, Any, float]]) -> float:
    return asyncio.run(coro())


def dispatch(args: argparse.Namespace, tmp: Path) -> None:
    n, children, repeat = args.jobs, args.children, args.repeat
    counter = iter(range(1_000_000))

    def url() -> str:
        return f"sqlite:///{tmp}/dispatch-{next(counter)}.db"

    def forge(executor: str) -> Callable[[], float]:
        def job(ctx: fnb.JobCtx, n: int) -> int:
            return tiny(n)

        return lambda: run(
            lambda: drain(url(), n, executor, children, args.workers, job, lambda i: (i,))
        )

    rows: list[tuple[str, float | None]] = [
        ("forge-nb executor='process'", median_of(repeat, forge("process"))),
        ("forge-nb executor='thread'", median_of(repeat, forge("thread"))),
        (
            "ProcessPoolExecutor.map, chunksize=1",
            median_of(repeat, lambda: ppe_map(n, children, 1)),
        ),
        (
            "ProcessPoolExecutor.map, chunksize=100",
            median_of(repeat, lambda: ppe_map(n, children, 100)),
        ),
        ("Dask LocalCluster client.map", median_of(repeat, lambda: dask_map(n, children))),
    ]
    print(f"\ndispatch: {n:,} tiny jobs, {children} children, median of {repeat}")
    base = rows[2][1]
    for name, seconds in rows:
        if seconds is None:
            print(f"  {name:40} (not installed)")
            continue
        ratio = f"{base / seconds:.2f}x PPE(chunksize=1)" if base else ""
        print(f"  {name:40} {n / seconds:9,.0f} jobs/s  {seconds:6.2f} s  {ratio}")


def scaling(args: argparse.Namespace, tmp: Path) -> None:
    start = time.perf_counter()
    spin(1_000_000)
    loops = int(1_000_000 * args.job_seconds / (time.perf_counter() - start))
    counter = iter(range(1_000_000))

    def job(ctx: fnb.JobCtx, loops: int) -> int:
        return spin(loops)

    def measure(executor: str) -> float:
        url = f"sqlite:///{tmp}/scaling-{next(counter)}.db"
        return run(
            lambda: drain(url, args.cpu_jobs, executor, args.children, 16, job, lambda i: (loops,))
        )

    thread = median_of(args.repeat, lambda: measure("thread"))
    process = median_of(args.repeat, lambda: measure("process"))
    assert thread is not None and process is not None
    print(
        f"\nscaling: {args.cpu_jobs} pure-Python jobs of ~{args.job_seconds} s "
        f"({loops:,} loops), {args.children} children, {os.cpu_count()} cores, "
        f"median of {args.repeat}"
    )
    print(f"  thread executor   {thread:6.2f} s")
    print(f"  process executor  {process:6.2f} s   {thread / process:.2f}x")


def main() -> None:
    # The thread runs' CPU-bound jobs hold the GIL, and the benchmark's own enqueues block the
    # loop: the loop watchdog's warnings about both are expected here.
    logging.getLogger("forge_nb.runtime").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("all", "dispatch", "scaling"), default="all")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--children", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workers", type=int, default=16, help="queue worker slots")
    parser.add_argument("--cpu-jobs", type=int, default=8)
    parser.add_argument("--job-seconds", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fnb-bench-proc-") as tmp:
        if args.part in ("all", "dispatch"):
            dispatch(args, Path(tmp))
        if args.part in ("all", "scaling"):
            scaling(args, Path(tmp))


if __name__ == "__main__":
    main()
