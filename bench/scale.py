"""Multi-process scaling and worker memory under a deep backlog (not CI).

    python bench/scale.py                                   # both backends
    python bench/scale.py --backends sqlite --jobs 40000 --backlog 1000000

1. Scaling: ``--jobs`` no-op jobs drained by 1 and then by ``--processes`` `forge-nb worker`
   processes. Workers start with the queue paused, then it is resumed; the time is from the
   first job's start to the last one's finish (the jobs' own timestamps), so process
   start-up and the 1 s config tick are not counted. Prints jobs/s, the ratio, and the CPU
   the workers, the Postgres server and this driver used while the jobs ran (cores busy:
   CPU seconds per second of the drain), which shows whether the machine ran out of cores.
2. Memory: one worker drains a backlog of ``--backlog`` jobs; its RSS is sampled every
   second. Flat means the worker does not grow with the backlog (claims are bounded).

Each run checks every job ended ``done`` with one attempt (nothing lost, nothing twice).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import throwaway_postgres  # noqa: E402

import forge_nb as fnb  # noqa: E402

KIND = "scale.noop"
WORKERS_PER_PROCESS = 50

# -- the job module the worker processes load (``--app scale:app``) ---------------------------

app = fnb.App()


@app.job(kind=KIND)
async def noop() -> None:
    """Does nothing: the benchmark measures the queue, not the job."""


# -- driver -------------------------------------------------------------------------------------


def start_workers(url: str, queue: str, n: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    procs = []
    for i in range(n):
        log = open(log_dir / f"worker-{i}.log", "ab")  # noqa: SIM115
        cmd = [sys.executable, "-m", "forge_nb.cli", "worker", "--db", url]
        cmd += ["--app", "scale:app", "--queues", queue]
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


async def seed(driver: fnb.App, queue: str, n: int) -> None:
    for start in range(0, n, 20_000):
        await driver.enqueue_many(
            [fnb.EnqueueRequest(KIND, queue=queue) for _ in range(min(20_000, n - start))]
        )


async def check_exactly_once(driver: fnb.App, queue: str, n: int, since: float) -> None:
    """All done, and the metrics saw exactly ``n`` runs finalized (none twice)."""
    counts = (await driver.counts())[queue]
    assert counts["done"] == n and sum(counts.values()) == n, counts
    started = sum(p["started"] for p in await driver.metrics(queue=queue, since=since - 60))
    assert started == n, f"{started} runs finalized for {n} jobs"


async def wait_done(driver: fnb.App, queue: str, n: int, timeout: float = 900) -> None:
    """Return once ``n`` jobs are done (polling counts every 50 ms)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if (await driver.counts()).get(queue, {}).get("done", 0) >= n:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{n} jobs not done in {timeout} s")


async def busy_seconds(driver: fnb.App, queue: str, n: int) -> float:
    """First start to last finish: the workers' own clock, free of polling and tick delays."""
    frame = await driver.jobs_frame(queue=queue, limit=n)
    return float((frame["finished_at"].max() - frame["started_at"].min()).total_seconds())


def cpu_seconds(procs: list[psutil.Process]) -> float:
    """User + system CPU seconds used so far by ``procs`` (gone ones count 0)."""
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def postgres_servers() -> list[psutil.Process]:
    """The running Postgres server processes (the throwaway server's backends included)."""
    found = []
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in ("postgres", "postmaster"):
            found.append(proc)
    return found


async def drain_with(url: str, queue: str, processes: int, n: int, log_dir: Path) -> float:
    """jobs/s of ``processes`` workers draining ``n`` jobs (prints the cores each side used)."""
    async with fnb.App(url) as driver:
        await driver.ensure_queue(queue, workers=WORKERS_PER_PROCESS)
        await driver.pause_queue(queue)
        await seed(driver, queue, n)
        began = time.time()
        procs = start_workers(url, queue, processes, log_dir)
        try:
            while (
                len({p.host_id for p in await driver.processes() if p.queue == queue}) < processes
            ):
                await asyncio.sleep(0.1)
            sides = {
                "workers": [psutil.Process(p.pid) for p in procs],
                "postgres": postgres_servers() if url.startswith("postgres") else [],
                "driver": [psutil.Process()],
            }
            before = {side: cpu_seconds(ps) for side, ps in sides.items()}
            wall = time.perf_counter()
            await driver.resume_queue(queue)
            await wait_done(driver, queue, n)
            wall = time.perf_counter() - wall
            used = {side: cpu_seconds(ps) - before[side] for side, ps in sides.items()}
        finally:
            stop_workers(procs)  # graceful: each flushes its metrics
        await check_exactly_once(driver, queue, n, began)
        rate = n / await busy_seconds(driver, queue, n)
        cores = ", ".join(f"{side} {cpu / wall:.2f}" for side, cpu in used.items() if cpu)
        print(f"  {processes} process(es): {rate:,.0f} jobs/s; cores busy: {cores}", flush=True)
        return rate


async def rss_under_backlog(
    url: str, queue: str, backlog: int, seconds: int, log_dir: Path
) -> list[float]:
    """The worker's RSS (MB) once a second while it drains a deep backlog."""
    async with fnb.App(url) as driver:
        await driver.ensure_queue(queue, workers=WORKERS_PER_PROCESS)
        t = time.perf_counter()
        await seed(driver, queue, backlog)
        print(f"  seeded {backlog:,} pending jobs in {time.perf_counter() - t:.0f} s", flush=True)
        [proc] = start_workers(url, queue, 1, log_dir)
        samples = []
        try:
            worker = psutil.Process(proc.pid)
            for _ in range(seconds):
                await asyncio.sleep(1)
                samples.append(worker.memory_info().rss / 1e6)
            left = (await driver.counts())[queue]["pending"]
            print(f"  {backlog - left:,} of {backlog:,} done after {seconds} s", flush=True)
        finally:
            stop_workers([proc])
        return samples


async def run_backend(
    name: str, url_for: Callable[[str], str], args: argparse.Namespace, log_dir: Path
) -> None:
    """Both scenarios on one backend; ``url_for(key)`` gives each its database."""
    one = statistics.median(
        [
            await drain_with(url_for(f"one{i}"), f"one{i}", 1, args.jobs, log_dir)
            for i in range(args.repeat)
        ]
    )
    many = statistics.median(
        [
            await drain_with(url_for(f"many{i}"), f"many{i}", args.processes, args.jobs, log_dir)
            for i in range(args.repeat)
        ]
    )
    print(
        f"{name}: 1 process {one:,.0f} jobs/s; {args.processes} processes {many:,.0f} jobs/s "
        f"({many / one:.2f}x)",
        flush=True,
    )
    if args.backlog:
        rss = await rss_under_backlog(
            url_for("rss"), "rss", args.backlog, args.rss_seconds, log_dir
        )
        print(
            f"{name}: worker RSS with {args.backlog:,} pending: after 5 s {rss[4]:.0f} MB, "
            f"max {max(rss):.0f} MB, at {len(rss)} s {rss[-1]:.0f} MB",
            flush=True,
        )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--jobs", type=int, default=40_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--backlog", type=int, default=1_000_000, help="0: skip the RSS run")
    parser.add_argument("--rss-seconds", type=int, default=60)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="forge_nb_scale_"))
    try:
        if "sqlite" in args.backends:
            await run_backend("SQLite", lambda key: f"sqlite:///{tmp}/{key}.db", args, tmp)
        if "postgres" in args.backends:
            with throwaway_postgres() as dsn:  # one database, a queue per scenario
                await run_backend("Postgres", lambda key: dsn, args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
