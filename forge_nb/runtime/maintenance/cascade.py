"""End the waiting dependents of dead (or deleted) jobs, in bounded steps."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forge_nb.runtime.maintenance.base import MaintenanceTask

if TYPE_CHECKING:
    from forge_nb.storage.base import Storage

#: Jobs one step ends at most: a cascade of a million waits in steps this big, not one
#: transaction holding the database.
CASCADE_STEP = 1000
#: How soon a step that ended a full batch comes back for the rest.
AGAIN_S = 0.05


class DependencyCascade(MaintenanceTask):
    """A job's death queues its dependents' (the database triggers do it in the same
    transaction); this ends them ``dead`` with ``dependency <id> dead``, level by level."""

    name = "dependency cascade"
    interval_s = 1.0

    async def run(self, storage: Storage, now: float) -> float | None:
        ended = await storage.cascade_dead(now, CASCADE_STEP)
        return AGAIN_S if ended >= CASCADE_STEP else None  # more to do: come back soon
