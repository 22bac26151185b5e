"""Leader election through the leases table; the leader fires cron, sweeps, rolls metrics
up and folds the job counts."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from forge_nb.runtime.cron import fire_due

if TYPE_CHECKING:
    from forge_nb.runtime.runtime import QueueHandle

log = logging.getLogger("forge_nb.leader")

LEADER_LEASE = "forge_nb.leader"
#: How often the leader sweeps retention and old metrics and rolls metrics up.
HOUSEKEEPING_INTERVAL_S = 60.0
#: Shortest pause between two leader steps (a busy per-second schedule).
MIN_STEP_S = 0.05


class Leader:
    """Tries to hold the leader lease; while held, does the cluster's singleton work."""

    def __init__(self, handle: QueueHandle) -> None:
        self.handle = handle
        self.is_leader = False
        self._last_housekeeping = 0.0

    async def step(self) -> float:
        """Renew or take the lease, do due work, return seconds until the next step."""
        app = self.handle.app
        storage = self.handle.storage
        now = time.time()
        held = await storage.acquire_lease(LEADER_LEASE, self.handle.host_id, app.lease_ttl, now)
        if held != self.is_leader:
            log.info("%s leadership (%s)", "took" if held else "lost", self.handle.host_id)
            self.is_leader = held
        renew_in = app.lease_ttl / 3
        if not held:
            return renew_in
        await fire_due(storage, await storage.schedules(), now)
        if now - self._last_housekeeping >= HOUSEKEEPING_INTERVAL_S:
            self._last_housekeeping = now
            await app.sweep_retention()
            await app.roll_up_metrics()
            await storage.fold_counts()
        upcoming = [
            s.next_fire_at
            for s in await storage.schedules()
            if s.enabled and s.next_fire_at is not None
        ]
        if not upcoming:
            return renew_in
        return min(renew_in, max(MIN_STEP_S, min(upcoming) - time.time()))

    async def resign(self) -> None:
        """Give the lease up on shutdown so another process takes over at once."""
        if self.is_leader:
            await self.handle.storage.release_lease(LEADER_LEASE, self.handle.host_id)
            self.is_leader = False
