"""What a maintenance task is: a name, an interval, and ``run``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forge_nb.storage.base import Storage


class MaintenanceTask:
    """One piece of the leader's periodic work.

    ``interval_s`` is how often it runs (``None``: at every leader step, which comes at
    least every third of the lease TTL). ``run`` may return a number of seconds to be
    woken sooner than that (cron's next fire); ``None`` keeps the interval.
    """

    name: str = ""
    interval_s: float | None = 60.0

    async def run(self, storage: Storage, now: float) -> float | None:
        raise NotImplementedError


class StorageStep(MaintenanceTask):
    """A task that runs one step at its interval and never asks to be woken sooner."""

    async def run(self, storage: Storage, now: float) -> float | None:
        await self.step(storage, now)
        return None

    async def step(self, storage: Storage, now: float) -> None:
        """The work itself."""
        raise NotImplementedError
