"""SQLite backend: one file, WAL, one writer connection per process.

A write transaction is one plain function over the sqlite3 connection:
``BEGIN IMMEDIATE``, the statements, ``COMMIT``. When the write lock is free
it runs right on the event loop (tens of microseconds, no thread hop); when
another process holds the lock, ``BEGIN IMMEDIATE`` fails at once and the same
function runs on aiosqlite's thread instead, waiting there up to the busy
timeout — so the loop never waits on another process. Reads go through a
second (aiosqlite) connection, so dashboard queries never stall the loop or
the claim path (WAL lets them run alongside the writer).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar, cast

import aiosqlite

from forge_nb.config import DatabaseUrl
from forge_nb.errors import (
    StorageError,
    UnknownRateLimit,
)
from forge_nb.storage import rows
from forge_nb.storage import sqlite_statements as statements
from forge_nb.storage import sqlite_transactions as transactions
from forge_nb.storage.kinds import claim_arms
from forge_nb.storage.records import (
    ClaimedJob,
    EnqueueResult,
    Finish,
    JobEvent,
    JobFilter,
    JobPage,
    JobRecord,
    Lease,
    MetricRow,
    NewJob,
    ProcessRecord,
    QueueConfig,
    RateLimit,
    ReapedJob,
    Schedule,
    ShippedCode,
    Status,
    StrandedKind,
)
from forge_nb.storage.rows import metric_params, rollup_params
from forge_nb.storage.sqlite_statements import BUSY_TIMEOUT_S, Q
from forge_nb.storage.validation import (
    check_bucket,
    check_name,
    check_queue_knobs,
    dump_json,
    prepare_jobs,
    retryable_statuses,
)

#: Most arms of one claim statement (SQLite allows 500 SELECTs in one compound): beyond,
#: the claim filters by a JSON list of kinds instead (correct, but it sorts).
MAX_ARMS = 500
log = logging.getLogger("forge_nb.storage")
T = TypeVar("T")
#: Pauses between non-blocking retries of a busy write before it waits on the thread.
BUSY_RETRY_PAUSES_S = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016)
MAX_PAGE = 1000
#: How often other processes' commits are looked for (cross-process wake-up latency).
WATCH_INTERVAL_S = 0.01


class SqliteStorage:
    """`Storage` on one SQLite file (the embedded default)."""

    backend = "sqlite"

    def __init__(self, url: DatabaseUrl) -> None:
        assert url.path is not None
        self.path = url.path
        self.safe_url = url.safe
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._on_change: Callable[[str | None], None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._checkpointer: transactions.Checkpointer | None = None
        #: Queue rows known to exist (queue rows are never deleted): enqueue skips creating them.
        self._known_queues: set[str] = set()

    # -- plumbing -------------------------------------------------------------------
    async def _connect(self, busy_timeout_s: float) -> aiosqlite.Connection:
        # check_same_thread=False: the writer also runs on the loop thread, never concurrently
        # with its aiosqlite thread (every write holds `_write_lock`).
        pending = aiosqlite.connect(
            self.path, isolation_level=None, timeout=busy_timeout_s, check_same_thread=False
        )
        # A daemon thread: an App nobody closed must not keep the process from exiting.
        pending._thread.daemon = True
        conn = await pending
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        return conn

    async def _call(self, conn: aiosqlite.Connection | None, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(sqlite3_conn, *args)`` in the connection's thread: one hop."""
        if conn is None:
            raise StorageError(f"storage for {self.safe_url} is not open (call open() first)")
        raw = conn._conn  # the sqlite3 connection aiosqlite's thread owns
        try:
            return cast(T, await conn._execute(fn, raw, *args))
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"SQLite error on {self.safe_url}: {exc}") from exc

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """One write transaction: inline when the lock is free, else on the writer's thread."""
        writer = self._writer
        if writer is None:
            raise StorageError(f"storage for {self.safe_url} is not open (call open() first)")
        async with self._write_lock:
            # Another process's transactions are short: retry on the loop with short sleeps
            # (SQLite's own busy handler sleeps up to 100 ms at a time), then wait on the thread.
            checkpointer = self._checkpointer
            if checkpointer is not None:
                if checkpointer.restart_needed:
                    checkpointer.restarted(await self._restart_wal())
                checkpointer.nudge()
            for pause in (*BUSY_RETRY_PAUSES_S, None):
                try:
                    return transactions.try_transaction(writer._conn, fn, *args)
                except transactions.Busy:
                    if pause is None:
                        break
                    await asyncio.sleep(pause)
                except sqlite3.IntegrityError:
                    raise
                except sqlite3.DatabaseError as exc:
                    raise StorageError(f"SQLite error on {self.safe_url}: {exc}") from exc
            return await self._call(writer, transactions.transaction, fn, *args)

    async def _restart_wal(self) -> bool:
        """Checkpoint the whole WAL so it starts over (our writer idle, the loop free).

        False when it could not finish within `WAL_RESTART_WAIT_MS`.
        """
        try:
            return await self._read(statements.restart_checkpoint)
        except StorageError as exc:
            log.debug("WAL restart of %s skipped: %s", self.safe_url, exc)
            return False

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """A read on the reader connection (consistent per statement)."""
        return await self._call(self._reader, fn, *args)

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self._read(lambda c: c.execute(sql, params).fetchall())

    # -- lifecycle -------------------------------------------------------------------
    async def open(self) -> None:
        """Create the file if needed, check it is ours, switch to WAL, migrate."""
        if self._writer is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = await self._connect(BUSY_TIMEOUT_S)
        except (OSError, sqlite3.Error) as exc:
            self._writer = None
            raise StorageError(f"cannot open SQLite database {self.safe_url}: {exc}") from exc
        try:
            await self._call(self._writer, statements.check_ownership)
            await self._call(self._writer, statements.set_pragmas)
            await self._writer.execute("PRAGMA busy_timeout = 0")  # see `_write`
            await self.migrate()
            self._reader = await self._connect(BUSY_TIMEOUT_S)
            self._checkpointer = transactions.Checkpointer(self.path)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close both connections (their threads end)."""
        await self.watch(None)
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
            self._checkpointer = None
        for conn in (self._reader, self._writer):
            if conn is not None:
                try:
                    await conn.close()
                except (sqlite3.Error, ValueError):
                    pass
        self._reader = self._writer = None

    async def migrate(self) -> list[int]:
        """Apply pending migrations under the write lock (concurrent openers serialise)."""
        return await self._write(statements.migrate)

    async def schema_version(self) -> int:
        """Newest applied migration."""
        return await self._call(self._writer, statements.current_version)

    async def watch(self, on_change: Callable[[str | None], None] | None) -> None:
        """Poll ``PRAGMA data_version`` (it moves when another connection commits)."""
        self._on_change = on_change
        if on_change is None:
            if self._watcher is not None:
                self._watcher.cancel()
                await asyncio.gather(self._watcher, return_exceptions=True)
                self._watcher = None
        elif self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._poll_changes(), name="forge-nb sqlite watch")

    async def _poll_changes(self) -> None:
        last = None
        while True:
            try:
                version = await self._read(statements.data_version)
            except StorageError:
                await asyncio.sleep(1.0)
                continue
            if last is not None and version != last and self._on_change is not None:
                self._on_change(None)
            last = version
            await asyncio.sleep(WATCH_INTERVAL_S)

    # -- jobs: write path ----------------------------------------------------------------
    async def enqueue(self, jobs: Sequence[NewJob], now: float) -> list[EnqueueResult]:
        """Insert a batch in one transaction (see `Storage.enqueue`)."""
        prepared = prepare_jobs(jobs, now)
        if not prepared:
            return []
        queues = {row[1] for row in prepared}
        new_queues = queues - self._known_queues
        results = await self._write(statements.enqueue, prepared, now, new_queues)
        self._known_queues |= queues  # only once committed
        return results

    async def claim(
        self,
        queue: str,
        host_id: str,
        limit: int,
        now: float,
        *,
        kinds: Collection[str] | None = None,
        exclude_versions: Collection[str] = (),
    ) -> list[ClaimedJob]:
        """Claim up to ``limit`` jobs of ``kinds`` in one statement (see `Storage.claim`)."""
        if limit <= 0:
            return []
        params: list[Any] = [host_id, now, queue, limit]
        if kinds is None:
            sql = Q["claim"]
        else:
            arms = claim_arms(kinds)
            if not arms:
                return []
            if len(arms) > MAX_ARMS:
                sql = Q["claim_kinds_filtered"]
                params += [json.dumps(arms), statements.json_list(sorted(exclude_versions))]
            else:
                sql = statements.claim_sql(len(arms), bool(exclude_versions))
                params += arms
                if exclude_versions:
                    params.append(statements.json_list(sorted(exclude_versions)))
        found = await self._write(lambda c: c.execute(sql, params).fetchall())
        return sorted(map(rows.claimed_job, found), key=rows.claim_order)

    async def release_claims(
        self, queue: str, host_id: str, claimed_at: Sequence[float]
    ) -> list[str]:
        """Jobs of claims whose reply was lost, back to pending (see `Storage`)."""
        if not claimed_at:
            return []

        def run(c: sqlite3.Connection) -> list[Any]:  # floats bound as they are: exact match
            sql = Q["release_claims"]
            return [r for at in claimed_at for r in c.execute(sql, (queue, host_id, at))]

        return sorted((str(r[0]) for r in await self._write(run)), key=int)

    async def finish(self, host_id: str, finishes: Sequence[Finish], now: float) -> list[str]:
        """Apply outcomes; only runs still owned by this host and attempt count."""
        if not finishes:
            return []
        return await self._write(statements.finish, host_id, finishes, now)

    async def update_progress(self, updates: Sequence[tuple[str, float, str]]) -> None:
        """Store progress of running jobs."""
        params = [(f, m, rows.parse_job_id(i)) for i, f, m in updates]
        if params:
            await self._write(lambda c: c.executemany(Q["update_progress"], params))

    # -- jobs: admin ---------------------------------------------------------------------
    async def get_job(self, job_id: str) -> JobRecord | None:
        """One job or None."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return None
        found = await self._fetchall(Q["get_job"], (key,))
        return rows.job_record(found[0]) if found else None

    async def list_jobs(
        self, filter: JobFilter, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        """Newest first, keyset-paged (a payload search a window of ids per page)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be an int between 1 and {MAX_PAGE}, got {limit!r}")
        where, params = statements.filter_sql(filter)
        scheduled = filter.scheduled_after is not None
        if scheduled:
            # The partial index's own terms, literally, so the planner uses it.
            where += ["status = 'pending'", "scheduled_at > created_at", "scheduled_at > ?"]
            params.append(filter.scheduled_after)
        if cursor is not None and scheduled:
            where.append("(scheduled_at, id) > (?, ?)")
            params.extend(rows.parse_scheduled_cursor(cursor))
        key = None
        if cursor is not None and not scheduled:
            key = rows.parse_job_id(cursor)
            if key is None:
                raise ValueError(f"invalid cursor {cursor!r}")
            where.append("id < ?")
            params.append(key)
        floor = None
        if filter.search and not scheduled:
            [(lowest, highest)] = await self._fetchall(Q["id_bounds"], ())
            floor = rows.search_floor(key, lowest, highest)
            if floor is not None:
                where.append("id >= ?")
                params.append(floor)
        sql = Q["get_job"].replace("WHERE id = ?", "")
        sql += (" WHERE " + " AND ".join(where)) if where else ""
        sql += f" ORDER BY {'scheduled_at, id' if scheduled else 'id DESC'} LIMIT ?"
        found = await self._fetchall(sql, [*params, limit])
        return rows.job_page(found, limit, scheduled, floor)

    async def job_events(self, job_id: str) -> list[JobEvent]:
        """Stored history, oldest first."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return []
        return [rows.job_event(r) for r in await self._fetchall(Q["job_events"], (key,))]

    async def counts(self) -> dict[str, dict[Status, int]]:
        """Per queue × status, zeros included."""

        def run(c: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
            return c.execute(Q["queue_names"]).fetchall(), c.execute(Q["counts"]).fetchall()

        names, found = await self._read(run)
        return statements.counts(names, found)

    async def retry(self, job_id: str, now: float) -> Status | None:
        """Dead/failed → pending with attempts reset."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return None
        try:
            return await self._write(statements.retry_one, key, now)
        except sqlite3.IntegrityError:
            raise ValueError(
                f"cannot retry job {job_id}: another live job holds its unique key"
            ) from None

    async def retry_many(self, filter: JobFilter, now: float) -> int:
        """Retry every dead/failed job matching the filter (unique-key clashes skipped)."""
        statuses = retryable_statuses(filter)
        where, params = statements.filter_sql(
            JobFilter(None, filter.queue, filter.kind, filter.search)
        )
        where.append(f"status IN ({','.join('?' * len(statuses))})")
        params.extend(statuses)
        return await self._write(statements.retry_where, " AND ".join(where), params, now)

    async def delete(self, job_id: str) -> Status | None:
        """Delete a non-running job."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return None
        return await self._write(statements.delete_one, key)

    async def delete_many(self, filter: JobFilter) -> int:
        """Delete every non-running job matching the filter."""
        where, params = statements.filter_sql(filter)
        where.append("status <> 'running'")
        return await self._write(statements.delete_where, " AND ".join(where), params)

    async def request_cancel(self, job_id: str, now: float) -> Status | None:
        """Cancel now (waiting jobs) or flag for the owner (running jobs)."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return None
        return await self._write(statements.cancel, key, now)

    async def cancel_requests(self, host_id: str) -> list[str]:
        """Flagged running jobs of one host."""
        return [str(r[0]) for r in await self._fetchall(Q["cancel_requests"], (host_id,))]

    # -- queues --------------------------------------------------------------------------
    async def ensure_queue(self, name: str, **knobs: Any) -> QueueConfig:
        """Create if missing, then apply knobs."""
        check_name(name, "queue")
        clean = check_queue_knobs(knobs)
        return await self._write(statements.upsert_queue, name, clean, True)

    async def update_queue(self, name: str, **knobs: Any) -> QueueConfig:
        """Apply knobs to an existing queue."""
        clean = check_queue_knobs(knobs)
        return await self._write(statements.upsert_queue, name, clean, False)

    async def queues(self) -> list[QueueConfig]:
        """Every queue's config."""
        return [rows.queue_config(r) for r in await self._fetchall(Q["queue_configs"])]

    # -- processes -----------------------------------------------------------------------
    async def register_processes(self, processes: Sequence[ProcessRecord]) -> None:
        """Insert or replace slot rows."""
        params = [rows.process_params(p, statements.json_list) for p in processes]
        await self._write(lambda c: c.executemany(Q["register_process"], params))

    async def unregister_processes(self, process_ids: Sequence[str]) -> None:
        """Delete slot rows."""
        params = [(p,) for p in process_ids]
        await self._write(lambda c: c.executemany(Q["unregister_process"], params))

    async def heartbeat(
        self,
        host_id: str,
        now: float,
        current_jobs: Mapping[str, str | None],
        kinds: Collection[str] | None = None,
    ) -> None:
        """Touch a host's slots, record what each runs (and the kinds, when given)."""
        listed = None if kinds is None else statements.json_list(kinds)

        def run(c: sqlite3.Connection) -> None:
            c.execute(Q["heartbeat_host"], (now, host_id, listed))
            c.executemany(Q["set_current_job"], [(j, s) for s, j in current_jobs.items()])

        await self._write(run)

    async def processes(self) -> list[ProcessRecord]:
        """Every slot row."""
        return [rows.process_record(r) for r in await self._fetchall(Q["processes"])]

    # -- shipped code ------------------------------------------------------------------------
    async def publish_code(self, code: ShippedCode) -> bool:
        """Store one code version (see `Storage.publish_code`)."""
        params = rows.code_params(code)
        return bool(await self._write(lambda c: c.execute(Q["publish_code"], params).rowcount))

    async def code_catalogue(self) -> list[ShippedCode]:
        """Every version without its code, oldest first."""
        return [rows.shipped_code(r) for r in await self._fetchall(Q["code_catalogue"])]

    async def code_stamp(self) -> tuple[int, float | None]:
        """(versions, newest created_at)."""
        [(count, newest)] = await self._fetchall(Q["code_stamp"])
        return int(count), newest

    async def get_code(self, version: str) -> ShippedCode | None:
        """One version with its code."""
        found = await self._fetchall(Q["code_row"], (version,))
        return rows.shipped_code(found[0]) if found else None

    async def stranded_kinds(
        self, live_since: float, count_up_to: int = 1_000, limit: int = 50
    ) -> list[StrandedKind]:
        """Waiting kinds no live process runs (see `Storage.stranded_kinds`)."""
        found = await self._fetchall(Q["stranded_kinds"], (live_since, count_up_to, limit))
        return [rows.stranded_kind(r, count_up_to) for r in found]

    async def reap(
        self, now: float, stale_before: float, host_ids: Sequence[str] = ()
    ) -> list[ReapedJob]:
        """Fail the running jobs of dead processes with ``worker lost``."""
        return await self._write(statements.reap, now, stale_before, json.dumps(list(host_ids)))

    # -- cron ----------------------------------------------------------------------------
    async def upsert_schedule(self, schedule: Schedule) -> Schedule:
        """Create or update by name."""
        check_name(schedule.name, "schedule name")
        params = (
            schedule.name,
            schedule.cron,
            schedule.kind,
            dump_json(schedule.payload, what="schedule payload"),
            schedule.queue,
            schedule.enabled,
            schedule.tz,
            schedule.next_fire_at,
        )
        found = await self._write(lambda c: c.execute(Q["upsert_schedule"], params).fetchall())
        return rows.schedule(found[0])

    async def schedules(self) -> list[Schedule]:
        """Every schedule."""
        return [rows.schedule(r) for r in await self._fetchall(Q["schedules"])]

    async def set_schedule_enabled(self, name: str, enabled: bool) -> bool:
        """Toggle; False if unknown."""
        params = (bool(enabled), name)
        changed = await self._write(lambda c: c.execute(Q["set_schedule_enabled"], params).rowcount)
        return bool(changed)

    async def record_fire(self, name: str, fired_at: float, next_fire_at: float | None) -> None:
        """Store last and next fire."""
        params = (fired_at, next_fire_at, name)
        await self._write(lambda c: c.execute(Q["record_fire"], params))

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

        def run(c: sqlite3.Connection) -> bool:
            params = (fire_at, next_fire_at, name, expected_next)
            if not c.execute(Q["fire_schedule"], params).rowcount:
                return False
            statements.enqueue(c, prepared, now, {job.queue})
            return True

        return await self._write(run)

    # -- leases --------------------------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        """Take or renew; one statement."""
        params = (name, holder, now + ttl, now)
        found = await self._write(lambda c: c.execute(Q["acquire_lease"], params).fetchall())
        return bool(found)

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if held."""
        await self._write(lambda c: c.execute(Q["release_lease"], (name, holder)))

    async def leases(self) -> list[Lease]:
        """Every lease."""
        return [rows.lease(r) for r in await self._fetchall(Q["leases"])]

    # -- rate limits ---------------------------------------------------------------------
    async def ensure_rate_limit(
        self, scope: str, capacity: float, refill_per_second: float, now: float
    ) -> RateLimit:
        """Create (full) or update a bucket."""
        check_name(scope, "rate limit scope")
        check_bucket(capacity, refill_per_second)
        params = (scope, float(capacity), float(refill_per_second), float(capacity), now)
        found = await self._write(lambda c: c.execute(Q["ensure_rate_limit"], params).fetchall())
        return rows.rate_limit(found[0])

    async def take_tokens(self, scope: str, n: float, now: float) -> float:
        """Take ``n`` tokens or say how long to wait."""
        return await self._write(statements.take_tokens, scope, n, now)

    async def drain_rate_limit(self, scope: str, hold_until: float, now: float) -> None:
        """Empty and hold."""
        params = (hold_until, hold_until, scope)
        changed = await self._write(lambda c: c.execute(Q["drain_rate_limit"], params).rowcount)
        if not changed:
            raise UnknownRateLimit(f"unknown rate limit scope {scope!r}")

    async def rate_limits(self) -> list[RateLimit]:
        """Every bucket."""
        return [rows.rate_limit(r) for r in await self._fetchall(Q["rate_limits"])]

    # -- metrics and retention ---------------------------------------------------------------
    async def write_metrics(self, rows: Sequence[MetricRow]) -> None:
        """Replace per-(minute, queue, host) rows."""
        params = [metric_params(r) for r in rows]
        if params:
            await self._write(lambda c: c.executemany(Q["write_metrics"], params))

    async def read_metrics(
        self, since: float, until: float, queue: str | None = None, histograms: bool = True
    ) -> list[MetricRow]:
        """Rows in a minute range."""
        params = (int(since // 60), int(until // 60), queue, queue)
        return [
            rows.metric_row(r, histograms) for r in await self._fetchall(Q["read_metrics"], params)
        ]

    async def sum_metrics(
        self, step: int, since: float, until: float, queue: str | None = None
    ) -> list[MetricRow]:
        """Counters per bucket and queue, summed over hosts by SQLite."""
        params = (step, int(since // 60), int(until // 60), queue)
        return [rows.metric_row(r, False) for r in await self._fetchall(Q["sum_metrics"], params)]

    async def sum_histograms(
        self, step: int, since: float, until: float, queue: str | None = None
    ) -> tuple[dict[int, int], dict[int, int]]:
        """Both histograms summed by SQLite's json_each."""
        name, params = rows.histogram_query(step, since, until, queue)
        return rows.histogram_totals(await self._fetchall(Q[name], params))

    async def write_rollups(self, step: int, rows: Sequence[MetricRow], through: int) -> None:
        """Replace roll-up rows and move the step's mark, in one transaction."""
        params = [rollup_params(step, r) for r in rows]

        def run(c: sqlite3.Connection) -> None:
            c.executemany(Q["write_rollup"], params)
            c.execute(Q["write_rollup_mark"], (step, through))

        await self._write(run)

    async def read_rollups(
        self,
        step: int,
        since: float,
        until: float,
        queue: str | None = None,
        histograms: bool = True,
    ) -> list[MetricRow]:
        """Roll-up rows in a minute range."""
        params = (step, int(since // 60), int(until // 60), queue, queue)
        return [
            rows.metric_row(r, histograms) for r in await self._fetchall(Q["read_rollups"], params)
        ]

    async def rollup_marks(self) -> dict[int, int]:
        """Step → first minute not rolled up."""
        return {int(s): int(t) for s, t in await self._fetchall(Q["rollup_marks"], ())}

    async def purge(self, queue: str, status: Status, finished_before: float, limit: int) -> int:
        """Delete a bounded batch of old terminal jobs and their events."""
        if status not in ("done", "dead"):
            raise ValueError(f"only done or dead jobs can be purged, not {status!r}")
        return await self._write(statements.purge, queue, status, finished_before, limit)

    async def purge_metrics(self, before_minute: int) -> int:
        """Delete old metric and sample rows."""

        def run(c: sqlite3.Connection) -> int:
            n = int(c.execute(Q["purge_metrics"], (before_minute,)).rowcount)
            n += int(c.execute(Q["purge_rollups"], (before_minute,)).rowcount)
            return n + int(c.execute(Q["purge_samples"], (before_minute,)).rowcount)

        return await self._write(run)

    async def fold_counts(self) -> int:
        """Nothing to fold: one writer keeps one count row per queue and status."""
        return 0

    # -- samples -------------------------------------------------------------------------
    async def write_samples(self, samples: Sequence[tuple[int, str, str, dict[str, Any]]]) -> None:
        """Insert or replace per-minute samples."""
        params = [(m, h, k, dump_json(d, what="sample")) for m, h, k, d in samples]
        if params:
            await self._write(lambda c: c.executemany(Q["write_sample"], params))

    async def read_samples(
        self, kind: str, since: float, until: float
    ) -> list[tuple[int, str, dict[str, Any]]]:
        """Samples of one kind in a range."""
        found = await self._fetchall(Q["read_samples"], (kind, int(since // 60), int(until // 60)))
        return [(m, h, json.loads(d)) for m, h, d in found]

    def pool_capacity(self) -> int:
        """One writer and one reader connection."""
        return 2


# -- functions run in the database thread -------------------------------------------------


__all__ = ["SqliteStorage"]
