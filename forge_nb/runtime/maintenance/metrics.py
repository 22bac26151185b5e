"""Per-minute metrics: roll closed minutes up for long ranges, drop minutes past 7 days."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forge_nb.runtime import rollup
from forge_nb.runtime.maintenance.base import StorageStep

if TYPE_CHECKING:
    from forge_nb.storage.base import Storage

METRICS_RETENTION_S = 7 * 86_400


async def purge_old_metrics(storage: Storage, now: float) -> None:
    await storage.purge_metrics(int((now - METRICS_RETENTION_S) // 60))


async def roll_up_metrics(storage: Storage, now: float) -> int:
    """Closed minutes into 5-minute and hourly buckets; returns how many it wrote."""
    return await rollup.roll_up(storage, now, METRICS_RETENTION_S // 60)


class MetricsPurge(StorageStep):
    name = "metrics purge"

    async def step(self, storage: Storage, now: float) -> None:
        await purge_old_metrics(storage, now)


class MetricsRollUp(StorageStep):
    name = "metrics roll-up"

    async def step(self, storage: Storage, now: float) -> None:
        await roll_up_metrics(storage, now)
