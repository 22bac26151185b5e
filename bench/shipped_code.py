"""Shipped code: what the first job of a new code version costs on a ``--shipped-code`` worker.

    python bench/shipped_code.py                      # SQLite file in a temp dir
    python bench/shipped_code.py --db postgresql://…  # a Postgres database (tables created)
    python bench/shipped_code.py --rounds 20

One ``forge-nb worker --db URL --shipped-code`` subprocess (no module of the job). Each round
ships a new version of one kind (a closure over the round number: new bytes, new content
hash), enqueues a job of it, waits, then enqueues a second job of the same version (code
already loaded) and waits. Per job, from the database's own timestamps:

- ``run`` = finished_at - started_at: on the worker, from the claim to the stored outcome.
  For the first job of a version it includes fetching the code row, checking the signature
  and the Python version, and unpickling; for the second, a cache hit.
- ``e2e`` = finished_at - created_at: also the wait for the worker's next claim (poll).

and, in this process, the enqueue call (the first one of a version publishes the code row
first). "Extra" is first minus second, medians over the rounds. Target: <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import forge_nb as fnb  # noqa: E402

KIND = "bench.shipped"


def make(round_no: int) -> Any:
    """A job function whose code differs per round (its closure holds the round)."""

    def shipped(x: int) -> int:
        return x + round_no

    return shipped


async def timed_job(app: fnb.App, job: Any, x: int) -> tuple[float, float, float]:
    """(enqueue call s, run s, e2e s) of one job."""
    start = time.perf_counter()
    ref = await job.enqueue(x)
    enqueue_s = time.perf_counter() - start
    await ref.wait(timeout=60)
    record = await app.job(ref.id)
    assert record is not None and record.finished_at and record.started_at
    run_s = (record.finished_at - record.started_at).total_seconds()
    e2e_s = (record.finished_at - record.created_at).total_seconds()
    return enqueue_s, run_s, e2e_s


async def bench(url: str, rounds: int, poll: float, workdir: Path) -> None:
    env = {**os.environ, "FORGE_NB_LOG_LEVEL": os.environ.get("BENCH_LOG", "WARNING")}
    env.pop("PYTHONPATH", None)
    async with fnb.App(url, ship_code=True, poll_interval=poll) as app:
        await app.ensure_queue("default", workers=2)
        worker = subprocess.Popen(
            [sys.executable, "-m", "forge_nb.cli", "worker", "--db", url, "--shipped-code",
             "--poll-interval", str(poll)],
            cwd=workdir,
            env=env,
        )  # fmt: skip
        try:
            warm = app.job(kind=KIND, queue="default")(make(-1))
            await (await warm.enqueue(0)).wait(timeout=60)  # worker up, kind known
            assert worker.poll() is None, "the worker exited"
            first: list[tuple[float, float, float]] = []
            again: list[tuple[float, float, float]] = []
            for i in range(rounds):
                job = app.job(kind=KIND, queue="default")(make(i))  # a new version
                first.append(await timed_job(app, job, i))
                again.append(await timed_job(app, job, i))
        finally:
            worker.terminate()
            worker.wait(30)
    print(
        f"\nfirst job of a new shipped version vs the next job of it: {rounds} rounds, "
        f"{url.split(':', 1)[0]}, worker poll {poll} s, load average {os.getloadavg()[0]:.1f}"
    )
    ms = 1000.0
    for name, index in (("enqueue call", 0), ("run (claim->outcome)", 1), ("e2e", 2)):
        a = statistics.median(r[index] for r in first) * ms
        b = statistics.median(r[index] for r in again) * ms
        print(f"  {name:22} first {a:7.1f} ms   next {b:7.1f} ms   extra {a - b:+7.1f} ms")
    extra = [(f[0] + f[1]) - (g[0] + g[1]) for f, g in zip(first, again, strict=True)]
    print(
        f"  extra per new version (enqueue + run), median {statistics.median(extra) * ms:.1f} ms, "
        f"max {max(extra) * ms:.1f} ms (target <= 50 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", help="database URL (default: a SQLite file in a temp dir)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--poll", type=float, default=0.05, help="worker poll interval (s)")
    args = parser.parse_args()
    os.environ.setdefault("FORGE_NB_CODE_KEY", secrets.token_hex(32))
    with tempfile.TemporaryDirectory(prefix="fnb-bench-ship-") as tmp:
        url = args.db or f"sqlite:///{tmp}/ship.db"
        workdir = Path(tmp) / "worker"
        workdir.mkdir()
        asyncio.run(bench(url, args.rounds, args.poll, workdir))


if __name__ == "__main__":
    main()
