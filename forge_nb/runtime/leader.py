"""Leader election through the leases table; the leader runs the maintenance tasks
(`forge_nb.runtime.maintenance`: cron, the dependency cascade, retention, metrics roll-up
and purge, count folding)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from forge_nb.errors import StorageError
from forge_nb.runtime.maintenance import MaintenanceTask, default_tasks

if TYPE_CHECKING:
    from forge_nb.runtime.queue_handle import QueueHandle

log = logging.getLogger("forge_nb.leader")

LEADER_LEASE = "forge_nb.leader"
#: Shortest pause between two leader steps (a busy per-second schedule).
MIN_STEP_S = 0.05


class Leader:
    """Tries to hold the leader lease; while held, runs each maintenance task when due."""

    def __init__(self, handle: QueueHandle, tasks: list[MaintenanceTask] | None = None) -> None:
        self.handle = handle
        self.is_leader = False
        self.tasks = default_tasks() if tasks is None else tasks
        #: When each task (by position) is due next; 0 = at the first step as leader.
        self._due = [0.0] * len(self.tasks)

    async def step(self) -> float:
        """Renew or take the lease, run the due tasks, return seconds until the next step."""
        app = self.handle.app
        storage = self.handle.storage
        now = time.time()
        held = await storage.acquire_lease(LEADER_LEASE, self.handle.host_id, app.lease_ttl, now)
        if held != self.is_leader:
            log.info("%s leadership (%s)", "took" if held else "lost", self.handle.host_id)
            self.is_leader = held
            self._due = [0.0] * len(self.tasks)  # a new leader catches up at once
        renew_in = app.lease_ttl / 3
        if not held:
            return renew_in
        for index, task in enumerate(self.tasks):
            if task.interval_s is not None and now < self._due[index]:
                continue
            sooner = await self._run(task, now)
            wait = task.interval_s if task.interval_s is not None else renew_in
            if sooner is not None:
                wait = min(wait, sooner)
            self._due[index] = now + wait
        until_due = min(self._due, default=now + renew_in) - time.time()
        return min(renew_in, max(MIN_STEP_S, until_due))

    async def _run(self, task: MaintenanceTask, now: float) -> float | None:
        """One task's run. A bug in it is logged and the others still run; a database
        error ends the step (the caller reports it and retries; the task stays due)."""
        try:
            return await task.run(self.handle.storage, now)
        except StorageError:
            raise
        except Exception:
            log.exception("maintenance task %r crashed; next try in its interval", task.name)
            return None

    async def resign(self) -> None:
        """Give the lease up on shutdown so another process takes over at once."""
        if self.is_leader:
            await self.handle.storage.release_lease(LEADER_LEASE, self.handle.host_id)
            self.is_leader = False
