"""Fold the per-writer job-count deltas into one row per queue and status."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forge_nb.runtime.maintenance.base import MaintenanceTask

if TYPE_CHECKING:
    from forge_nb.storage.base import Storage


class CountFolding(MaintenanceTask):
    """Keeps `counts()` one small read at any table size (the deltas do not pile up)."""

    name = "count folding"

    async def run(self, storage: Storage, now: float) -> float | None:
        await storage.fold_counts()
        return None
