"""The tables a Postgres cluster shares besides the jobs: cron schedules, leases, token
buckets, metrics, samples and roll-ups, and retention. A mixin of `PostgresStorage`."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from forge_nb.errors import (
    UnknownRateLimit,
)
from forge_nb.storage import postgres_statements as statements
from forge_nb.storage import rows, rules
from forge_nb.storage.postgres_notify import Notifier
from forge_nb.storage.postgres_statements import RACE_RETRIES, Q
from forge_nb.storage.records import (
    Lease,
    MetricRow,
    NewJob,
    RateLimit,
    Schedule,
    Status,
)
from forge_nb.storage.rows import metric_params, rollup_params
from forge_nb.storage.validation import (
    check_bucket,
    check_name,
    dump_json,
    prepare_jobs,
)

log = logging.getLogger("forge_nb.storage")


class ClusterTables:
    """`PostgresStorage`'s schedules, leases, buckets, metrics and retention."""

    if TYPE_CHECKING:

        async def _fetch(self, sql: str, *args: Any) -> list[Any]: ...

        async def _fetchrow(self, sql: str, *args: Any) -> Any: ...

        async def _fetchval(self, sql: str, *args: Any) -> Any: ...

        async def _execute(self, sql: str, *args: Any) -> None: ...

        def _tx(self) -> contextlib.AbstractAsyncContextManager[Any]: ...

        _notifier: Notifier

    async def upsert_schedule(self, schedule: Schedule) -> Schedule:
        """Create or update by name (last_fire_at of an existing row is kept)."""
        check_name(schedule.name, "schedule name")
        found = await self._fetchrow(
            Q["upsert_schedule"],
            schedule.name,
            schedule.cron,
            schedule.kind,
            dump_json(schedule.payload, what="schedule payload"),
            schedule.queue,
            bool(schedule.enabled),
            schedule.tz,
            schedule.next_fire_at,
        )
        return rows.schedule(found)

    async def schedules(self) -> list[Schedule]:
        """Every schedule."""
        return [rows.schedule(r) for r in await self._fetch(Q["schedules"])]

    async def set_schedule_enabled(self, name: str, enabled: bool) -> bool:
        """Toggle; False if unknown."""
        return await self._fetchval(Q["set_schedule_enabled"], name, bool(enabled)) is not None

    async def record_fire(self, name: str, fired_at: float, next_fire_at: float | None) -> None:
        """Store last and next fire."""
        await self._execute(Q["record_fire"], name, fired_at, next_fire_at)

    async def fire_schedule(
        self,
        name: str,
        expected_next: float,
        fire_at: float,
        next_fire_at: float,
        job: NewJob,
        now: float,
    ) -> bool:
        """Advance the schedule (compare-and-set) and enqueue its job in one transaction."""
        prepared = prepare_jobs([job], now)
        async with self._tx() as conn:
            advanced = await conn.fetchval(
                Q["fire_schedule"], name, expected_next, fire_at, next_fire_at
            )
            if advanced is None:
                return False
            if prepared[0][6] is None:
                await statements.insert_plain(conn, prepared, now)
            else:
                await statements.insert_with_keys(conn, prepared, now)
        self._notifier.send({job.queue})
        return True

    # -- leases --------------------------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        """Take or renew in one statement; False while someone else holds it."""
        found = await self._fetchval(Q["acquire_lease"], name, holder, now + ttl, now)
        return found is not None

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if held."""
        await self._execute(Q["release_lease"], name, holder)

    async def leases(self) -> list[Lease]:
        """Every lease."""
        return [rows.lease(r) for r in await self._fetch(Q["leases"])]

    # -- rate limits ---------------------------------------------------------------------
    async def ensure_rate_limit(
        self, scope: str, capacity: float, refill_per_second: float, now: float
    ) -> RateLimit:
        """Create (full) or update a bucket (its tokens capped at the new capacity)."""
        check_name(scope, "rate limit scope")
        check_bucket(capacity, refill_per_second)
        found = await self._fetchrow(
            Q["ensure_rate_limit"], scope, float(capacity), float(refill_per_second), now
        )
        return rows.rate_limit(found)

    async def take_tokens(self, scope: str, n: float, now: float) -> float:
        """Take ``n`` tokens (one atomic UPDATE) or say how long to wait."""
        if isinstance(n, bool) or not isinstance(n, int | float):
            raise ValueError(f"cannot take {n!r} tokens from {scope!r}: not a number")
        for _ in range(RACE_RETRIES):
            if await self._fetchval(Q["take_tokens"], scope, n, now) is not None:
                return 0.0
            bucket = rules.bucket_of(await self._fetchrow(Q["rate_limit"], scope), scope)
            wait = rules.tokens_wait(bucket, scope, n, now)
            if wait > 0.0:
                return wait
            # The bucket refilled between the two statements: try to take again.
        return 0.001

    async def drain_rate_limit(self, scope: str, hold_until: float, now: float) -> None:
        """Empty the bucket; refilling starts at ``hold_until``."""
        if await self._fetchval(Q["drain_rate_limit"], scope, hold_until) is None:
            raise UnknownRateLimit(f"unknown rate limit scope {scope!r}")

    async def rate_limits(self) -> list[RateLimit]:
        """Every bucket."""
        return [rows.rate_limit(r) for r in await self._fetch(Q["rate_limits"])]

    # -- metrics and retention ---------------------------------------------------------------
    async def write_metrics(self, rows: Sequence[MetricRow]) -> None:
        """Replace per-(minute, queue, host) rows."""
        params = [metric_params(r) for r in rows]
        if params:
            async with self._tx() as conn:
                await conn.executemany(Q["write_metrics"], params)

    async def read_metrics(
        self, since: float, until: float, queue: str | None = None, histograms: bool = True
    ) -> list[MetricRow]:
        """Rows in a minute range."""
        found = await self._fetch(Q["read_metrics"], int(since // 60), int(until // 60), queue)
        return [rows.metric_row(r, histograms) for r in found]

    async def sum_metrics(
        self, step: int, since: float, until: float, queue: str | None = None
    ) -> list[MetricRow]:
        """Counters per bucket and queue, summed over hosts by Postgres."""
        found = await self._fetch(Q["sum_metrics"], step, int(since // 60), int(until // 60), queue)
        return [rows.metric_row(r, False) for r in found]

    async def sum_histograms(
        self, step: int, since: float, until: float, queue: str | None = None
    ) -> tuple[dict[int, int], dict[int, int]]:
        """Both histograms summed by Postgres's jsonb_each_text."""
        name, params = rows.histogram_query(step, since, until, queue)
        return rows.histogram_totals(await self._fetch(Q[name], *params))

    async def write_rollups(self, step: int, rows: Sequence[MetricRow], through: int) -> None:
        """Replace roll-up rows and move the step's mark, in one transaction."""
        params = [rollup_params(step, r) for r in rows]
        async with self._tx() as conn:
            if params:
                await conn.executemany(Q["write_rollup"], params)
            await conn.execute(Q["write_rollup_mark"], step, through)

    async def read_rollups(
        self,
        step: int,
        since: float,
        until: float,
        queue: str | None = None,
        histograms: bool = True,
    ) -> list[MetricRow]:
        """Roll-up rows in a minute range."""
        found = await self._fetch(
            Q["read_rollups"], step, int(since // 60), int(until // 60), queue
        )
        return [rows.metric_row(r, histograms) for r in found]

    async def rollup_marks(self) -> dict[int, int]:
        """Step → first minute not rolled up."""
        return {int(s): int(t) for s, t in await self._fetch(Q["rollup_marks"])}

    async def purge(self, queue: str, status: Status, finished_before: float, limit: int) -> int:
        """Delete a bounded batch of old terminal jobs and their events."""
        if status not in ("done", "dead"):
            raise ValueError(f"only done or dead jobs can be purged, not {status!r}")
        if limit <= 0:
            return 0
        return int(await self._fetchval(Q["purge_jobs"], queue, status, finished_before, limit))

    async def purge_metrics(self, before_minute: int) -> int:
        """Delete old metric and sample rows."""
        return int(await self._fetchval(Q["purge_metrics"], before_minute))

    async def fold_counts(self) -> int:
        """Fold the count rows of closed connections into one row per queue and status."""
        return int(await self._fetchval(Q["fold_job_counts"]))

    # -- samples -------------------------------------------------------------------------
    async def write_samples(self, samples: Sequence[tuple[int, str, str, dict[str, Any]]]) -> None:
        """Insert or replace per-minute samples."""
        params = [(m, h, k, dump_json(d, what="sample")) for m, h, k, d in samples]
        if params:
            async with self._tx() as conn:
                await conn.executemany(Q["write_sample"], params)

    async def read_samples(
        self, kind: str, since: float, until: float
    ) -> list[tuple[int, str, dict[str, Any]]]:
        """Samples of one kind in a range, oldest first."""
        found = await self._fetch(Q["read_samples"], kind, int(since // 60), int(until // 60))
        return [(m, h, json.loads(d)) for m, h, d in found]
