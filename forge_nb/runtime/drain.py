"""Test helpers: `drain` (run what is ready, here, until nothing is) and inline mode.

Tests of code that enqueues want the jobs run and finished before they assert, without
starting workers and sleeping. `drain` claims and runs jobs in this process with the
worker's own `Runner` (same ctx, executors, outcomes and history), and writes each
batch's outcomes with the worker's finish statement, so a drained job ends exactly as
if a worker had run it. No background loops start: no heartbeat, no leader, no cron.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Collection
from typing import TYPE_CHECKING

from forge_nb.runtime import joblogs
from forge_nb.runtime.worker import CLAIM_BATCH_MAX, QueuePool, RunningJob, released
from forge_nb.storage.records import Finish, QueueConfig

if TYPE_CHECKING:
    from forge_nb.runtime.app import App
    from forge_nb.runtime.queue_handle import QueueHandle

#: The outcomes `drain` always reports, even at 0 (``released`` only when some were).
OUTCOMES = ("done", "failed", "dead", "throttled", "cancelled")


async def drain(
    app: App, queues: Collection[str] | None = None, timeout: float | None = None
) -> dict[str, int]:
    """Run every job ready now in ``queues`` (None: all) until none is ready; count outcomes.

    Jobs the drained jobs enqueue run too when they are ready now. A failed job's retry
    waits for its backoff, so it is counted once as ``failed`` and not run again here.
    ``timeout``: seconds; when it passes, running jobs are given back to pending (attempt
    refunded) and `TimeoutError` says what was counted so far.
    """
    if isinstance(queues, str):
        queues = [queues]
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
    from forge_nb.runtime.queue_handle import QueueHandle

    storage = await app.storage()
    handle = QueueHandle(app, storage)
    joblogs.install()
    counts: Counter[str] = Counter({o: 0 for o in OUTCOMES})
    running: dict[str, tuple[RunningJob, asyncio.Task[Finish]]] = {}
    try:
        async with asyncio.timeout(timeout):
            await _drain_rounds(handle, queues, counts, running)
    except TimeoutError:
        await _give_back(handle, running, counts)
        raise TimeoutError(
            f"drain did not finish within {timeout} s; outcomes so far: {dict(counts)}"
        ) from None
    finally:
        handle.executor.shutdown(wait=False, cancel_futures=True)
        if app._handle is None:
            await app._close_process_pool()
    return dict(counts)


async def _drain_rounds(
    handle: QueueHandle,
    queues: Collection[str] | None,
    counts: Counter[str],
    running: dict[str, tuple[RunningJob, asyncio.Task[Finish]]],
) -> None:
    """Claim and run batches, queue by queue, until a round claims nothing."""
    storage = handle.storage
    while True:
        configs = {c.name: c for c in await storage.queues()}
        names = sorted(configs) if queues is None else list(queues)
        claimed_any = False
        for name in names:
            pool = QueuePool(handle, configs.get(name) or QueueConfig(name))
            kinds = handle.runnable_kinds()
            size = max(1, min(pool.config.workers, CLAIM_BATCH_MAX))
            jobs = await storage.claim(
                name,
                handle.host_id,
                size,
                time.time(),
                kinds=kinds,
                exclude_versions=handle.excluded_versions(),
            )
            if not jobs:
                continue
            claimed_any = True
            for slot, job in enumerate(jobs):
                rj = pool.running_job(job, slot)
                task = asyncio.ensure_future(handle.runner.execute(pool, rj))
                running[job.id] = (rj, task)
            finishes = await asyncio.gather(*(t for _, t in running.values()))
            batch: list[tuple[Finish, RunningJob | None]] = [
                (f, rj) for f, (rj, _) in zip(finishes, running.values(), strict=True)
            ]
            running.clear()
            await _record(handle, batch, counts)
        if not claimed_any:
            await handle.logs.flush()  # drained: every log is stored when drain returns
            await handle.flush()  # progress and metrics, as a worker's tick would
            return


async def _record(
    handle: QueueHandle, batch: list[tuple[Finish, RunningJob | None]], counts: Counter[str]
) -> None:
    """Write a batch's outcomes as the worker's finalizer does, and count them."""
    finished = set(await handle.storage.finish(handle.host_id, [f for f, _ in batch], time.time()))
    handle.outcomes_recorded(batch, finished)
    for finish, _ in batch:
        if finish.job_id in finished:
            counts[finish.event] += 1


async def _give_back(
    handle: QueueHandle,
    running: dict[str, tuple[RunningJob, asyncio.Task[Finish]]],
    counts: Counter[str],
) -> None:
    """On timeout: stop what runs and return it to pending, attempt refunded."""
    batch: list[tuple[Finish, RunningJob | None]] = []
    for rj, task in running.values():
        rj.releasing = True  # the runner then reports "released" (a thread runs on, unheard)
        task.cancel()
    results = await asyncio.gather(*(t for _, t in running.values()), return_exceptions=True)
    for (rj, _), result in zip(running.values(), results, strict=True):
        if isinstance(result, Finish) and result.event != "released":
            batch.append((result, rj))
        else:
            batch.append((released(rj.job), rj))
    running.clear()
    if batch:
        await _record(handle, batch, counts)
