"""Fold the per-writer job-count deltas into one row per queue and status."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forge_nb.runtime.maintenance.base import StorageStep

if TYPE_CHECKING:
    from forge_nb.storage.base import Storage


class CountFolding(StorageStep):
    """Keeps `counts()` one small read at any table size (the deltas do not pile up)."""

    name = "count folding"

    async def step(self, storage: Storage, now: float) -> None:
        await storage.fold_counts()
