"""Delete ``done`` and ``dead`` jobs older than their queue's retention window."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from forge_nb.runtime.maintenance.base import StorageStep

if TYPE_CHECKING:
    from forge_nb.storage.base import Storage

#: Jobs deleted per statement: short write transactions, claims get in between.
PURGE_BATCH = 1000


async def purge_expired_jobs(storage: Storage, now: float, batch: int = PURGE_BATCH) -> int:
    """Delete every queue's finished jobs past its window, in batches; returns how many."""
    removed = 0
    for config in await storage.queues():
        for status, window in (
            ("done", config.retain_done_seconds),
            ("dead", config.retain_dead_seconds),
        ):
            while True:
                n = await storage.purge(config.name, status, now - window, batch)  # type: ignore[arg-type]
                removed += n
                if n < batch:
                    break
                await asyncio.sleep(0)  # let claims in between batches
    return removed


class JobRetention(StorageStep):
    name = "retention"

    async def step(self, storage: Storage, now: float) -> None:
        await purge_expired_jobs(storage, now)
