"""`App`'s cluster-wide schedules and budgets: cron, leases, rate limits, retention and
roll-ups. A mixin of `App` (kept apart so app.py holds jobs, workers and admin)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from forge_nb.runtime import cron as cron_module
from forge_nb.runtime.context import RateLimiter
from forge_nb.runtime.maintenance.metrics import purge_old_metrics, roll_up_metrics
from forge_nb.runtime.maintenance.retention import purge_expired_jobs
from forge_nb.runtime.refs import EnqueueRequest, JobRef
from forge_nb.storage.records import Lease, RateLimit, RateLimitTemplate, Schedule
from forge_nb.storage.validation import check_name

if TYPE_CHECKING:
    from forge_nb.runtime.handlers import HandlerRegistry
    from forge_nb.runtime.routing import Router
    from forge_nb.storage.base import Storage


class Scheduling:
    """`App`'s cron schedules, leases, token buckets and retention."""

    if TYPE_CHECKING:
        handlers: HandlerRegistry
        router: Router

        async def storage(self) -> Storage: ...

        async def enqueue(self, *args: Any, **kwargs: Any) -> JobRef: ...

    # -- cron --------------------------------------------------------------------------------
    async def ensure_schedule(
        self,
        name: str,
        cron: str,
        kind: str,
        payload: dict[str, Any] | None = None,
        queue: str | None = None,
        enabled: bool = True,
        tz: str = "UTC",
    ) -> Schedule:
        """Create or update a cron schedule (idempotent). 5 fields, or 6 with seconds first."""
        check_name(name, "schedule name")
        check_name(kind, "kind")
        expression = cron_module.check_cron(cron)
        cron_module.check_tz(tz)
        payload = dict(payload or {})
        handler = self.handlers.get(kind)
        if handler is not None and handler.check_payload is not None:
            handler.check_payload(payload)
        queue = queue or (handler.queue if handler else None) or self.router.route(kind)
        schedule = Schedule(
            name=name,
            cron=expression,
            kind=kind,
            payload=payload,
            queue=queue,
            enabled=bool(enabled),
            tz=tz,
            next_fire_at=cron_module.next_fire(expression, tz, time.time()),
        )
        return await (await self.storage()).upsert_schedule(schedule)

    async def schedules(self) -> list[Schedule]:
        """Every schedule with its last and next fire (epoch seconds)."""
        return await (await self.storage()).schedules()

    async def schedule(self, name: str) -> Schedule:
        """One schedule by name; LookupError if unknown."""
        for found in await self.schedules():
            if found.name == name:
                return found
        raise LookupError(f"unknown schedule {name!r}")

    async def set_schedule_enabled(self, name: str, enabled: bool) -> Schedule:
        """Turn a schedule on or off."""
        if not await (await self.storage()).set_schedule_enabled(name, bool(enabled)):
            raise LookupError(f"unknown schedule {name!r}")
        return await self.schedule(name)

    async def run_schedule_now(self, name: str) -> JobRef:
        """Enqueue a schedule's job now, outside its timetable (the next fire is unchanged)."""
        found = await self.schedule(name)
        return await self.enqueue(
            EnqueueRequest(kind=found.kind, payload=found.payload, queue=found.queue)
        )

    async def leases(self) -> list[Lease]:
        """Who leads (lease ``forge_nb.leader``) and until when."""
        return await (await self.storage()).leases()

    # -- rate limits ---------------------------------------------------------------------------
    async def ensure_rate_limit(
        self,
        scope: str,
        capacity: float,
        refill_per_second: float,
        *,
        template: bool | None = None,
    ) -> RateLimit:
        """Create or resize a cluster-wide token bucket (idempotent). A scope with ``*``
        (``"stripe:*"``) is a template: ``acquire("stripe:42")`` makes that scope's bucket
        from the longest matching one (``template=True`` insists on a ``*``)."""
        return await (await self.storage()).ensure_rate_limit(
            scope, capacity, refill_per_second, time.time(), template=template
        )

    async def rate_limits(self) -> list[RateLimit]:
        """Every bucket made by name (buckets made from templates: `busiest_rate_limits`)."""
        return await (await self.storage()).rate_limits()

    async def rate_limit_templates(self) -> list[RateLimitTemplate]:
        """Every rate-limit template."""
        return await (await self.storage()).rate_limit_templates()

    async def busiest_rate_limits(self, limit: int = 20) -> list[RateLimit]:
        """The live buckets made from templates that were used last (idle ones are swept)."""
        return await (await self.storage()).busiest_rate_limits(limit)

    async def rate_limiter(self) -> RateLimiter:
        """The same limiter handlers get as ``ctx.rate_limit``, for use outside jobs."""
        return RateLimiter(await self.storage())

    # -- retention -------------------------------------------------------------------------------
    async def sweep_retention(self, batch: int = 1000) -> int:
        """Delete done/dead jobs past their queue's window, and metrics older than 7 days.

        Runs in bounded batches (short write transactions); the leader does it every
        minute (`forge_nb.runtime.maintenance`). Returns how many jobs were removed.
        """
        storage = await self.storage()
        now = time.time()
        removed = await purge_expired_jobs(storage, now, batch)
        await purge_old_metrics(storage, now)
        return removed

    async def roll_up_metrics(self) -> int:
        """Add closed minutes up into 5-minute and hourly roll-ups (the leader's job).

        Idempotent and safe to call from anywhere; returns how many buckets it wrote.
        """
        return await roll_up_metrics(await self.storage(), time.time())
