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
import contextlib
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

import psutil  # noqa: E402

import forge_nb as fnb  # noqa: E402
from forge_nb.runtime import config_tick  # noqa: E402

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


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) this process and ``pids`` have used so far."""
    total = 0.0
    for pid in [os.getpid(), *pids]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


async def drain(
    url: str,
    n: int,
    executor: str,
    children: int,
    workers: int,
    fn: Callable[..., Any],
    args: Any,
    warm_args: Any = None,
) -> tuple[float, float]:
    """Seconds for one process to run ``n`` pending jobs of ``fn``, and the cores it kept
    busy meanwhile (this process and its children).

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
        warm = await job.options(queue="warm").enqueue_many(
            [(warm_args or args)(i) for i in range(children)]
        )
        for ref in warm:
            await ref.wait(timeout=60)
        for offset in range(0, n, 10_000):
            await job.enqueue_many([args(i) for i in range(offset, min(n, offset + 10_000))])
        pids = app._process_pool.pids() if app._process_pool is not None else []
        start, cpu = time.perf_counter(), cpu_seconds(pids)
        await app.resume_queue("default")
        await config_tick.tick(handle)  # apply the resume now, not at the next tick
        await until_done(app, n)
        await handle.finalizer.drain()
        elapsed = time.perf_counter() - start
        return elapsed, (cpu_seconds(pids) - cpu) / elapsed
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


def run(coro: Callable[[], Coroutine[Any, Any, tuple[float, float]]]) -> tuple[float, float]:
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
        )[0]

    contenders: dict[str, Callable[[], float | None]] = {
        "forge-nb executor='process'": forge("process"),
        "forge-nb executor='thread'": forge("thread"),
        "ProcessPoolExecutor.map, chunksize=1": lambda: ppe_map(n, children, 1),
        "ProcessPoolExecutor.map, chunksize=100": lambda: ppe_map(n, children, 100),
        "Dask LocalCluster client.map": lambda: dask_map(n, children),
    }
    # Interleaved, so that a busy spell of the machine hits every contender alike.
    runs: dict[str, list[float | None]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, measure in contenders.items():
            runs[name].append(measure())
    print(
        f"\ndispatch: {n:,} tiny jobs, {children} children, "
        f"load average {os.getloadavg()[0]:.1f}, median of {repeat}"
    )
    base = statistics.median(v for v in runs["ProcessPoolExecutor.map, chunksize=1"] if v)
    for name, found in runs.items():
        if any(v is None for v in found):
            print(f"  {name:40} (not installed)")
            continue
        seconds = statistics.median(v for v in found if v)
        each = " ".join(f"{n / v:,.0f}" for v in found if v)
        print(
            f"  {name:40} {n / seconds:9,.0f} jobs/s  {seconds:6.2f} s  "
            f"{base / seconds:.2f}x PPE(chunksize=1)  (runs: {each} jobs/s)"
        )


def scaling(args: argparse.Namespace, tmp: Path) -> None:
    start = time.perf_counter()
    spin(1_000_000)
    loops = int(1_000_000 * args.job_seconds / (time.perf_counter() - start))
    counter = iter(range(1_000_000))

    def job(ctx: fnb.JobCtx, loops: int) -> int:
        return spin(loops)

    def measure(executor: str) -> tuple[float, float]:
        url = f"sqlite:///{tmp}/scaling-{next(counter)}.db"
        return run(
            lambda: drain(
                url,
                args.cpu_jobs,
                executor,
                args.children,
                16,
                job,
                lambda i: (loops,),
                lambda i: (1,),
            )
        )

    # Interleaved, so that a busy spell of the machine hits both alike.
    runs: dict[str, list[tuple[float, float]]] = {"thread": [], "process": []}
    for _ in range(args.repeat):
        for executor in runs:
            runs[executor].append(measure(executor))
    print(
        f"\nscaling: {args.cpu_jobs} pure-Python jobs of ~{args.job_seconds} s "
        f"({loops:,} loops), {args.children} children, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}, median of {args.repeat}"
    )
    thread = statistics.median(t for t, _ in runs["thread"])
    for executor, found in runs.items():
        seconds = statistics.median(t for t, _ in found)
        cores = statistics.median(c for _, c in found)
        each = " ".join(f"{t:.2f}" for t, _ in found)
        print(
            f"  {executor} executor {seconds:6.2f} s  {thread / seconds:.2f}x  "
            f"cores busy {cores:.2f}  (runs: {each})"
        )


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
