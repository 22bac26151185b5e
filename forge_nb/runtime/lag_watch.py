"""The loop watchdog: warn when the event loop was blocked, naming what blocked it."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from forge_nb.runtime.stall import RunningJobInfo, StallWatch, describe

if TYPE_CHECKING:
    from forge_nb.runtime.queue_handle import QueueHandle

log = logging.getLogger("forge_nb.runtime")

#: The watchdog's probe period, and the lag it reports.
LAG_PROBE_S = 0.1
LAG_WARN_S = 0.5


async def watch_loop_lag(handle: QueueHandle) -> None:
    """Until shutdown: a probe every `LAG_PROBE_S`; a late one logs its cause (see `stall`)."""
    loop = asyncio.get_running_loop()
    watch = StallWatch(loop, lambda: running_info(handle))
    try:
        while not handle.stopping:
            before = loop.time()
            watch.beat()
            await asyncio.sleep(LAG_PROBE_S)
            lag = loop.time() - before - LAG_PROBE_S
            sample = watch.take()
            if lag >= LAG_WARN_S:
                log.warning(describe(sample, lag))
    finally:
        watch.stop()


def running_info(handle: QueueHandle) -> list[RunningJobInfo]:
    """The running jobs, for the stall watch's thread (a copy: the loop is stuck)."""
    return [
        RunningJobInfo(rj.job.kind, rj.job.id, rj.task, rj.in_thread)
        for pool in list(handle.pools.values())
        for rj in list(pool.running.values())
    ]
