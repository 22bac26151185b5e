"""`App`'s actions on every job matching a filter (the dashboard's "all matching" buttons
and the bulk API routes). A mixin of `App`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from forge_nb.storage.records import JobFilter, Status

if TYPE_CHECKING:
    from forge_nb.runtime.queue_handle import QueueHandle
    from forge_nb.storage.base import Storage


class Bulk:
    """Retry, delete (and cancel, run now) many jobs by filter."""

    if TYPE_CHECKING:
        _handle: QueueHandle | None

        async def storage(self) -> Storage: ...

        async def _check_queue(self, name: str) -> None: ...

        def _notify(self, queue: str) -> None: ...

    async def retry_all(
        self,
        status: Status = "dead",
        queue: str | None = None,
        kind: str | None = None,
        search: str | None = None,
        tag: str | None = None,
    ) -> int:
        """Retry every dead (or failed) job matching the filter; returns how many."""
        if queue is not None:
            await self._check_queue(queue)
        n = await (await self.storage()).retry_many(
            JobFilter(status, queue, kind, search, tag=tag), time.time()
        )
        for name in [queue] if queue else list(self._handle.pools if self._handle else []):
            self._notify(name)
        return n

    async def delete_all(
        self,
        status: Status | None = None,
        queue: str | None = None,
        kind: str | None = None,
        search: str | None = None,
        tag: str | None = None,
    ) -> int:
        """Delete every non-running job matching the filter."""
        return await (await self.storage()).delete_many(
            JobFilter(status, queue, kind, search, tag=tag)
        )
