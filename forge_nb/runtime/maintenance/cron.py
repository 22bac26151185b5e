"""Fire the cron schedules that are due (one fire per tick across the cluster)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from forge_nb.runtime.cron import fire_due
from forge_nb.runtime.maintenance.base import MaintenanceTask

if TYPE_CHECKING:
    from forge_nb.storage.base import Storage


class CronFiring(MaintenanceTask):
    """At every leader step (a new schedule is seen within one), and at each next fire."""

    name = "cron"
    interval_s = None

    async def run(self, storage: Storage, now: float) -> float | None:
        await fire_due(storage, await storage.schedules(), now)
        upcoming = [
            s.next_fire_at
            for s in await storage.schedules()
            if s.enabled and s.next_fire_at is not None
        ]
        return min(upcoming) - time.time() if upcoming else None
