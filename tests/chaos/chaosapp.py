"""Jobs for the chaos tests, run by `forge-nb worker --app chaosapp:app`.

Every side effect is a line ``<job id> <attempt>`` appended to ``<name>.<pid>``
under $FORGE_NB_TEST_DIR (opened and closed per write, so a ``kill -9`` loses
nothing already written), so a test can count how often each job really ran
and in which process.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import forge_nb as fnb

app = fnb.App()
OUT = Path(os.environ.get("FORGE_NB_TEST_DIR", "."))


def mark(name: str, ctx: fnb.JobCtx) -> None:
    """Append ``job_id attempt`` to this process's ``name`` file."""
    with open(OUT / f"{name}.{os.getpid()}", "a") as f:
        f.write(f"{ctx.job_id} {ctx.attempt}\n")


# -- crash and restart runs ------------------------------------------------------------------


@app.job(queue="default", max_attempts=25)
async def work(ctx: fnb.JobCtx, n: int) -> dict[str, int]:
    """A short job with a side effect: note the run, nap a few ms, return who finished it.

    The nap (15 ms on average) keeps 20,000 jobs draining for several kill intervals:
    with no-op jobs the drain ends before the second kill.
    """
    mark("ran", ctx)
    await asyncio.sleep(random.random() * 0.03)
    return {"pid": os.getpid(), "attempt": ctx.attempt, "n": n}


@app.job(queue="default", max_attempts=25)
async def fan_in(ctx: fnb.JobCtx) -> dict[str, int]:
    """The one job waiting for a whole fan-out: note the run, sum what its dependencies
    returned (their ``n``), say how many results it saw."""
    mark("fan_in", ctx)
    results = ctx.dependency_results
    return {"results": len(results), "sum": sum(r["n"] for r in results.values())}


@app.job(queue="default")
async def tick(ctx: fnb.JobCtx) -> int:
    """Fired by a cron schedule: note which process ran it."""
    mark("tick", ctx)
    return os.getpid()


# -- handler misbehaviour --------------------------------------------------------------------


@app.job(queue="default", max_attempts=1)
async def blocks_loop(ctx: fnb.JobCtx) -> str:
    """Sync code wrongly declared async: blocks the worker's event loop for 2 s."""
    mark("blocks_loop", ctx)
    time.sleep(2)
    return "finally"


@app.job(queue="default", max_attempts=1, timeout=1)
async def never_returns(ctx: fnb.JobCtx) -> None:
    """Awaits forever; the per-kind timeout must end it."""
    mark("never_returns", ctx)
    await asyncio.Event().wait()


@app.job(queue="default", max_attempts=1, timeout=1)
def never_returns_sync(ctx: fnb.JobCtx) -> None:
    """A thread that sleeps far longer than its timeout (threads cannot be interrupted)."""
    mark("never_returns_sync", ctx)
    time.sleep(float(os.environ.get("CHAOS_SYNC_HANG_S", "30")))


@app.job(queue="default", max_attempts=1)
async def raises_system_exit(ctx: fnb.JobCtx) -> None:
    """A handler that calls sys.exit()."""
    mark("raises", ctx)
    raise SystemExit(3)


@app.job(queue="default", max_attempts=1)
async def raises_keyboard_interrupt(ctx: fnb.JobCtx) -> None:
    """A handler that raises KeyboardInterrupt itself."""
    mark("raises", ctx)
    raise KeyboardInterrupt("from a handler")


class Meltdown(BaseException):
    """A custom BaseException (not an Exception)."""


@app.job(queue="default", max_attempts=1)
async def raises_base_exception(ctx: fnb.JobCtx) -> None:
    """A handler that raises a custom BaseException subclass."""
    mark("raises", ctx)
    raise Meltdown("reactor core breach")


@app.job(queue="default", max_attempts=1)
def raises_system_exit_sync(ctx: fnb.JobCtx) -> None:
    """The same as `raises_system_exit`, from the worker thread."""
    mark("raises", ctx)
    raise SystemExit("bye from a thread")


@app.job(queue="default", max_attempts=1)
async def returns_object(ctx: fnb.JobCtx) -> object:
    """A result that is not JSON."""
    return object()


@app.job(queue="default", max_attempts=1)
async def returns_nan(ctx: fnb.JobCtx) -> float:
    """NaN is not strict JSON."""
    return float("nan")


@app.job(queue="default", max_attempts=1)
async def ok(ctx: fnb.JobCtx) -> str:
    """Proves the worker still works."""
    return "ok"


# -- process executor --------------------------------------------------------------------


@app.job(queue="default", executor="process", max_attempts=5)
def crunch_in_child(ctx: fnb.JobCtx, seconds: float) -> dict[str, int]:
    """Pure-Python CPU work in a process-executor child (``seconds`` on the first attempt,
    a moment on retries); notes the run (file named by the child's pid) and returns the
    worker that ran it (the child's parent)."""
    mark("proc_started", ctx)
    deadline = time.monotonic() + (seconds if ctx.attempt == 1 else 0.1)
    while time.monotonic() < deadline:
        sum(range(1000))
    return {"worker": os.getppid(), "attempt": ctx.attempt}
