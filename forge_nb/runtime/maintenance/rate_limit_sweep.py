"""Sweep idle buckets made from rate-limit templates (one per user can be millions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forge_nb.runtime.maintenance.base import MaintenanceTask

if TYPE_CHECKING:
    from forge_nb.storage.base import Storage

#: A template bucket unused this long (and full again) goes.
IDLE_S = 300.0
#: Buckets one step deletes at most.
SWEEP_STEP = 1000
AGAIN_S = 0.05


class RateLimitSweep(MaintenanceTask):
    """Delete template buckets nobody used for `IDLE_S` that have refilled: a bucket made
    anew starts full, so nothing a caller could notice is lost."""

    name = "rate-limit sweep"
    interval_s = 60.0

    async def run(self, storage: Storage, now: float) -> float | None:
        swept = await storage.sweep_rate_limits(now, now - IDLE_S, SWEEP_STEP)
        return AGAIN_S if swept >= SWEEP_STEP else None
