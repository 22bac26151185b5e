"""Cost of per-job log capture (issue 21): a drain of jobs that print one line each, with
capture on and off, and of jobs that print nothing, both backends.

    python bench/job_logs.py                      # both backends, 5,000 jobs, 3 rounds
    python bench/job_logs.py --backends sqlite --jobs 20000 --repeat 5
    python bench/job_logs.py --mode workers       # drained by the worker pool instead

Two ways to drain, as ``--mode`` says: ``drain`` is ``await app.drain()`` (the test helper:
it claims a batch, runs it, writes its outcomes, then claims again, so every statement's
time is on the clock: the worst case for the logs, which ride on the outcome statement);
``workers`` is the worker pool of ``app.start()``, as `bench/run.py`'s drain column, where
claims, runs and outcome writes overlap.

Each round runs the four scenarios back to back (in rotating order), each on a fresh
database (SQLite: a new file; Postgres: a new database on the same server; emptying one
table instead left dead rows that slowed whichever scenario came later): N pending jobs
on one queue with 50 workers. Prints jobs/s per scenario (median of the rounds) and the
ratio capture on / off: the median of each round's own ratio (a round's scenarios run back
to back, so they share the machine's mood, which on a shared machine swings more than the
effect measured). Job output goes to /dev/null (stdout is redirected for the run), so the
terminal costs nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from compare import create_database  # noqa: E402
from run import throwaway_postgres  # noqa: E402

import forge_nb as fnb  # noqa: E402

SCENARIOS = [("one line", True), ("one line", False), ("silent", True), ("silent", False)]


async def drain_rate(url: str, n: int, printing: bool, capture: bool, mode: str) -> float:
    async with fnb.App(url, replace=False, queues=["bench"]) as app:
        app.capture_logs = capture
        await app.ensure_queue("bench", workers=50)
        ran = 0
        all_ran = asyncio.Event()

        @app.job(kind="bench.job", queue="bench")
        async def job(ctx: fnb.JobCtx, i: int) -> None:
            nonlocal ran
            if printing:
                print(f"job {i} did its work")
            ran += 1
            if ran == n:
                all_ran.set()

        for start in range(0, n, 10_000):
            await job.enqueue_many([(i,) for i in range(start, min(n, start + 10_000))])
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            began = time.perf_counter()
            if mode == "drain":
                await app.drain()
                elapsed = time.perf_counter() - began
            else:
                handle = await app.start()
                await asyncio.wait_for(all_ran.wait(), 600)
                await handle.finalizer.drain()  # every outcome written
                elapsed = time.perf_counter() - began
                await handle.shutdown(5)
        done = (await app.counts())["bench"]["done"]
        assert done == n, f"{done} of {n} jobs done"
        return n / elapsed


async def run(
    url_for: Callable[[str], Awaitable[str]], n: int, repeat: int, mode: str
) -> dict[tuple[str, bool], list[float]]:
    rates: dict[tuple[str, bool], list[float]] = {s: [] for s in SCENARIOS}
    for r in range(repeat):
        order = SCENARIOS[r % 4 :] + SCENARIOS[: r % 4]
        for i, (name, capture) in enumerate(order):
            url = await url_for(f"{r}_{i}")
            rates[(name, capture)].append(
                await drain_rate(url, n, name == "one line", capture, mode)
            )
    return rates


def report(backend: str, n: int, mode: str, rates: dict[tuple[str, bool], list[float]]) -> None:
    print(f"{backend}, drain of {n:,} jobs by {mode} (jobs/s, median):")
    for (name, capture), values in rates.items():
        print(
            f"  {name:<9} capture {'on ' if capture else 'off'} {statistics.median(values):10,.0f}"
        )
    for name in ("one line", "silent"):
        ratios = [
            on / off for on, off in zip(rates[(name, True)], rates[(name, False)], strict=True)
        ]
        spread = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"  {name}: capture on / off = {statistics.median(ratios):.2f}x (rounds: {spread})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--mode", choices=("drain", "workers"), default="drain")
    args = parser.parse_args()

    for backend in args.backends.split(","):
        tmp = tempfile.mkdtemp(prefix="forge_nb_logs_")
        try:
            if backend == "sqlite":

                async def sqlite_file(k: str, tmp: str = tmp) -> str:
                    return f"sqlite:///{tmp}/logs-{k}.db"

                rates = await run(sqlite_file, args.jobs, args.repeat, args.mode)
            else:
                with throwaway_postgres() as dsn:

                    async def postgres_database(k: str, dsn: str = dsn) -> str:
                        return await create_database(dsn, f"logs_{k}")

                    rates = await run(postgres_database, args.jobs, args.repeat, args.mode)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        report(backend, args.jobs, args.mode, rates)


if __name__ == "__main__":
    asyncio.run(main())
