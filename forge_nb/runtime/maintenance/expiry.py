"""End jobs that were not started in time (``expires_in``), in bounded steps."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forge_nb.runtime.maintenance.base import MaintenanceTask

if TYPE_CHECKING:
    from forge_nb.storage.base import Storage

#: Jobs one step ends at most.
EXPIRY_STEP = 1000
#: How soon a step that ended a full batch comes back for the rest.
AGAIN_S = 0.05


class JobExpiry(MaintenanceTask):
    """The claim never starts an expired job; this ends them ``dead`` with ``expired`` so
    they leave the claim's way and show as dead."""

    name = "job expiry"
    interval_s = 1.0

    async def run(self, storage: Storage, now: float) -> float | None:
        ended = await storage.expire_jobs(now, EXPIRY_STEP)
        return AGAIN_S if ended >= EXPIRY_STEP else None
