"""Flow control's single-statement operations (SPEC §9.3), written once for both dialects:
`SqlCore` inherits them and supplies how a statement runs."""

from __future__ import annotations

from typing import Any

from forge_nb.storage import rows
from forge_nb.storage.flow_rules import check_template, template_for
from forge_nb.storage.records import RateLimit, RateLimitTemplate


class FlowCore:
    """Expiry sweeps and rate-limit templates over named statements."""

    async def _select(self, name: str, *params: Any) -> list[Any]:
        raise NotImplementedError

    async def _change(self, name: str, *params: Any) -> list[Any]:
        raise NotImplementedError

    async def expire_jobs(self, now: float, limit: int = 1000) -> int:
        """End up to ``limit`` jobs not started by their ``expires_at``: dead, "expired"."""
        return len(await self._change("expire_jobs", now, limit))

    # -- rate-limit templates ------------------------------------------------------------
    async def _ensure_template(
        self, pattern: str, capacity: float, refill_per_second: float, now: float
    ) -> RateLimit:
        """Create or change a template; its live buckets take the new settings."""
        check_template(pattern)
        await self._change("ensure_rate_limit_template", pattern, capacity, refill_per_second)
        await self._change("retune_template_buckets", pattern, capacity, refill_per_second)
        return RateLimit(pattern, capacity, refill_per_second, capacity, now, template=pattern)

    async def _bucket_from_template(self, scope: str, now: float) -> bool:
        """Make ``scope``'s bucket from the longest matching template; False when none
        matches (the scope stays unknown)."""
        templates = {r[0]: r for r in await self._select("rate_limit_templates")}
        pattern = template_for(scope, list(templates))
        if pattern is None:
            return False
        _, capacity, refill = templates[pattern]
        await self._change("make_templated_bucket", scope, capacity, refill, now, pattern)
        return True

    async def rate_limit_templates(self) -> list[RateLimitTemplate]:
        """Every template, by pattern."""
        return [RateLimitTemplate(*r) for r in await self._select("rate_limit_templates")]

    async def busiest_rate_limits(self, limit: int = 20) -> list[RateLimit]:
        """The live buckets made from templates that were used last."""
        return [rows.rate_limit(r) for r in await self._select("busiest_template_buckets", limit)]

    async def sweep_rate_limits(self, now: float, idle_before: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` template buckets unused since ``idle_before`` and full
        again (a bucket made anew starts full: nothing is lost); how many went."""
        return len(await self._change("sweep_template_buckets", now, idle_before, limit))

    # -- global_limit: a queue's slots shared by its live processes ------------------------
    async def plan_queue_slots(
        self, queue: str, host_id: str, limit: int, live_after: float
    ) -> tuple[int, int, int]:
        """Make the queue's slot rows match ``limit``, free those of dead processes, and say
        (this process's fair share, slots it holds, of which under the limit). Shares: the
        limit split evenly over the live processes working the queue, the remainder to the
        first ones by host id."""
        await self._change("ensure_queue_slots", queue, limit)
        await self._change("drop_extra_queue_slots", queue, limit)
        await self._change("free_dead_queue_slots", queue, live_after)
        hosts = sorted(
            {r[0] for r in await self._select("live_queue_hosts", queue, live_after)} | {host_id}
        )
        index = hosts.index(host_id)
        share = limit // len(hosts) + (1 if index < limit % len(hosts) else 0)
        held, usable = await self.held_queue_slots(queue, host_id, limit)
        return share, held, usable

    async def held_queue_slots(self, queue: str, host_id: str, limit: int) -> tuple[int, int]:
        """(slots of ``queue`` the process holds, of which under ``limit``)."""
        [(held, usable)] = await self._select("held_queue_slots", queue, host_id, limit)
        return int(held), int(usable)

    async def release_queue_slots(self, queue: str, host_id: str, n: int) -> None:
        """Give back ``n`` of the process's slots of ``queue`` (the highest first)."""
        if n > 0:
            await self._change("release_queue_slots", queue, host_id, n)

    async def take_queue_slots(self, queue: str, host_id: str, n: int, limit: int) -> int:
        """Take up to ``n`` free slots of ``queue`` under ``limit``; how many were taken."""
        if n <= 0:
            return 0
        return len(await self._change("take_queue_slots", queue, host_id, n, limit))
