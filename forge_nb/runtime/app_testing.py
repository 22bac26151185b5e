"""`App`'s test helpers: ``drain`` and inline mode (SPEC §9.4). A mixin of `App`."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, cast

from forge_nb.runtime import drain as draining

if TYPE_CHECKING:
    from forge_nb.runtime.app import App
    from forge_nb.storage.records import NewJob


class Testing:
    """Run jobs here and now, for tests: `drain`, and ``App(inline=True)``."""

    #: Run each job inside its ``enqueue`` call (``App(inline=True)``).
    inline: bool = False

    async def drain(
        self, queues: Collection[str] | None = None, timeout: float | None = None
    ) -> dict[str, int]:
        """Run every job ready now in this process until none is ready (pinned).

        Returns counts by outcome: ``{"done": 3, "failed": 1, "dead": 0, "throttled": 0,
        "cancelled": 0}``. No worker needs to be started. See `forge_nb.runtime.drain`.
        """
        return await draining.drain(cast("App", self), queues, timeout)

    async def _run_inline(self, new_jobs: list[NewJob]) -> None:
        """Inline mode: run what was just enqueued (and what it enqueues) before returning."""
        await draining.drain(cast("App", self), sorted({job.queue for job in new_jobs}))
