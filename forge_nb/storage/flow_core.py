"""Flow control's single-statement operations (SPEC §9.3), written once for both dialects:
`SqlCore` inherits them and supplies how a statement runs."""

from __future__ import annotations

from typing import Any


class FlowCore:
    """Expiry sweeps, concurrency-key slots and rate-limit templates over named statements."""

    async def _select(self, name: str, *params: Any) -> list[Any]:
        raise NotImplementedError

    async def _change(self, name: str, *params: Any) -> list[Any]:
        raise NotImplementedError

    async def expire_jobs(self, now: float, limit: int = 1000) -> int:
        """End up to ``limit`` jobs not started by their ``expires_at``: dead, "expired"."""
        return len(await self._change("expire_jobs", now, limit))
