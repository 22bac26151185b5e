"""Jobs for the multi-process tests, run by `forge-nb worker --app workerapp:app`.

Side effects go to files under $FORGE_NB_TEST_DIR so tests can count them per job.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import forge_nb as fnb

app = fnb.App()
OUT = Path(os.environ.get("FORGE_NB_TEST_DIR", "."))


def _mark(name: str, job_id: str) -> None:
    with open(OUT / f"{name}.{os.getpid()}", "a") as f:
        f.write(job_id + "\n")


@app.job(queue="default")
async def record(ctx: fnb.JobCtx, n: int) -> int:
    """Note that this job ran, in this process."""
    _mark("ran", ctx.job_id)
    return os.getpid()


@app.job(queue="default")
async def nap(ctx: fnb.JobCtx, seconds: float) -> int:
    """Sleep (cancellable), note start and end."""
    _mark("started", ctx.job_id)
    await asyncio.sleep(seconds)
    _mark("finished", ctx.job_id)
    return os.getpid()


@app.job(queue="default")
def sync_nap(ctx: fnb.JobCtx, seconds: float) -> int:
    """A sync job that checks its cancel token while it sleeps."""
    _mark("started", ctx.job_id)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not ctx.cancel.is_cancelled():
        time.sleep(0.02)
    _mark("finished", ctx.job_id)
    return os.getpid()


@app.job(queue="default", max_attempts=2)
async def poison(ctx: fnb.JobCtx) -> None:
    """Kill the worker process running it, every time."""
    _mark("started", ctx.job_id)
    os._exit(9)


@app.job(queue="default")
async def tick(ctx: fnb.JobCtx) -> int:
    """Fired by a cron schedule: note which process ran it."""
    _mark("tick", ctx.job_id)
    return os.getpid()


@app.job(queue="default")
async def take_token(ctx: fnb.JobCtx) -> None:
    """Take one token of the shared bucket and note when."""
    await ctx.rate_limit.acquire("shared")
    with open(OUT / f"token.{os.getpid()}", "a") as f:
        f.write(f"{time.time()}\n")


@app.job(queue="default", max_attempts=1)
async def maybe_fail(ctx: fnb.JobCtx, fail: bool) -> None:
    """Succeed or end dead, for metrics totals."""
    if fail:
        raise RuntimeError("asked to fail")


@app.job(queue="default")
async def stall_first(ctx: fnb.JobCtx) -> int:
    """Hang on the first attempt (until the worker is killed); finish at once on a retry."""
    _mark("started", ctx.job_id)
    if ctx.attempt == 1:
        await asyncio.sleep(3600)
    return os.getpid()


@app.job(queue="default", concurrency_key="customer", key_limit=1)
async def keyed_nap(ctx: fnb.JobCtx, customer: str, seconds: float) -> int:
    """One run per customer at a time, cluster-wide: note the run's interval."""
    start = time.time()
    await asyncio.sleep(seconds)
    with open(OUT / f"interval.{os.getpid()}", "a") as f:
        f.write(f"{customer} {start} {time.time()}\n")
    return os.getpid()


@app.job(queue="default")
async def user_token(ctx: fnb.JobCtx, user: str) -> bool:
    """Try to take one token of the user's bucket (made from a template); note the answer."""
    taken = await ctx.rate_limit.acquire(f"user:{user}", wait=False)
    await asyncio.sleep(0.05)  # long enough that one process cannot take every job
    with open(OUT / f"user_token.{os.getpid()}", "a") as f:
        f.write(f"{user} {int(taken)}\n")
    return taken
