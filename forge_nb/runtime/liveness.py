"""Who is alive: this process's heartbeat, the reaper of the dead, and the database's health.

Each process proves it lives by heartbeating its slot rows; on the same beat it picks up
cross-process cancels and reaps the jobs of processes whose heartbeat went stale, so no
job is lost when a process dies. The database's own outages are logged once each way.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from forge_nb.runtime.worker import reaped_summary

if TYPE_CHECKING:
    from forge_nb.runtime.queue_handle import QueueHandle

log = logging.getLogger("forge_nb.runtime")


async def heartbeat(handle: QueueHandle) -> None:
    """Prove we live, act on cross-process cancels, reap the dead."""
    current: dict[str, str | None] = {}
    for pool in handle.pools.values():
        current.update(pool.current_jobs())
    beat = time.time()
    await handle.storage.heartbeat(handle.host_id, beat, current)
    for job_id in await handle.storage.cancel_requests(handle.host_id):
        handle.cancel_local(job_id)
    # Judged at our own beat: a loop blocked while the beat was written (a blocking call
    # in an async handler) must not find this very process stale and take its jobs back.
    await reap(handle, judged_at=beat)


async def reap(
    handle: QueueHandle, host_ids: list[str] | None = None, judged_at: float | None = None
) -> None:
    """Take back the running jobs of processes silent at ``judged_at`` (default: now), and
    of ``host_ids`` at once."""
    now = time.time() if judged_at is None else judged_at
    reaped = await handle.storage.reap(now, now - handle.app.stale_after, host_ids or [])
    if reaped:
        log.warning(reaped_summary(reaped))
        for job in reaped:
            if job.queue in handle.pools:
                handle.pools[job.queue].wake()


async def reclaim_dead_neighbours(handle: QueueHandle) -> None:
    """Processes of this host whose pid is gone died without a goodbye: reap them now
    (a restarted kernel or worker takes its predecessor's jobs back at once)."""
    dead = {
        p.host_id
        for p in await handle.storage.processes()
        if p.hostname == handle.hostname and p.pid != handle.pid and not pid_alive(p.pid)
    }
    if dead:
        await reap(handle, sorted(dead))


def pid_alive(pid: int) -> bool:
    """Whether a process of this host with ``pid`` exists (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DatabaseHealth:
    """Logs one line when the database becomes unreachable and one when it is back."""

    def __init__(self, safe_url: str) -> None:
        self.safe_url = safe_url
        self.down_since: float | None = None

    def failed(self, what: str, exc: Exception) -> None:
        """An operation failed; say so once per outage."""
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("database %s unavailable (%s: %s); retrying", self.safe_url, what, exc)

    def ok(self) -> None:
        """An operation succeeded; close an outage if there was one."""
        if self.down_since is not None:
            log.warning(
                "database %s reachable again after %.1f s",
                self.safe_url,
                time.monotonic() - self.down_since,
            )
            self.down_since = None
