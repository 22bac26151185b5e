"""Postgres backend: an asyncpg pool shared by many worker processes.

Every operation is one statement or one short transaction. Batches (enqueue,
finish, progress) travel as arrays expanded with ``unnest`` so a batch of any
size costs one round trip. The claim locks rows ``FOR UPDATE SKIP LOCKED`` so
concurrent claimers never wait on, or get, each other's jobs. Named SQL lives
in ``sql/postgres/queries.sql``; only the filter-driven admin queries are
assembled here, from bound parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from typing import Any, cast

import asyncpg

from forge_nb.config import DatabaseUrl
from forge_nb.errors import (
    DatabaseUnavailable,
    NotAForgeDatabase,
    SchemaTooNew,
    StorageError,
)
from forge_nb.storage import postgres_statements as statements
from forge_nb.storage import rows
from forge_nb.storage.kinds import claim_arms
from forge_nb.storage.postgres_cluster import ClusterTables
from forge_nb.storage.postgres_notify import CONNECT_TIMEOUT_S, Notifier
from forge_nb.storage.postgres_statements import RACE_RETRIES, Q
from forge_nb.storage.records import (
    STATUSES,
    ClaimedJob,
    EnqueueResult,
    Finish,
    JobEvent,
    JobFilter,
    JobPage,
    JobRecord,
    NewJob,
    ProcessRecord,
    QueueConfig,
    ReapedJob,
    ShippedCode,
    Status,
    StrandedKind,
)
from forge_nb.storage.schema import VERSION_TABLE, latest_version, load_migrations
from forge_nb.storage.validation import (
    check_name,
    check_queue_knobs,
    prepare_jobs,
    retryable_statuses,
)

log = logging.getLogger("forge_nb.storage")
MAX_PAGE = 1000
#: Channel enqueues notify (after they commit) with the queue name.
NOTIFY_CHANNEL = "forge_nb_jobs"
#: Key of the advisory lock that serialises migrations across processes ("forge_nb" in hex).
MIGRATION_LOCK_KEY = 0x666F7267655F6E62
#: Batches of key-less jobs from this size on travel by binary COPY (ids drawn first):
#: 1.5x the rows/s of one INSERT … unnest, for three more round trips.
COPY_MIN_ROWS = 1000
#: Candidates a claim may read past its size: rows concurrent claimers hold (skipped, not
#: waited for) or took since this claim's snapshot. Each process has at most a claim per
#: queue in flight, so this is room for ten others claiming 100 jobs each.
CLAIM_SKIP_ROOM = 1000
JOB_COLUMNS = (
    "id, kind, queue, status, priority, attempts, max_attempts, payload, result, last_error, "
    "last_traceback, progress, progress_message, unique_key, created_at, scheduled_at, "
    "started_at, finished_at, claimed_by, cancel_requested_at, code_version"
)
#: Errors meaning the server is gone (not that it refused a statement).
CONNECTION_LOST: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # includes ConnectionDoesNotExistError
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InternalClientError,  # e.g. "cannot switch to state" on a dying connection
    OSError,
    TimeoutError,
)
#: Everything else asyncpg can raise on a statement.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)
ANY_DATABASE_ERROR = CONNECTION_LOST + DATABASE_ERRORS
SQL_MIGRATION_STATE = """
SELECT tablename FROM pg_tables
WHERE schemaname = current_schema() AND tablename LIKE 'forge\\_nb\\_%'
ORDER BY tablename
"""
SQL_CREATE_VERSION_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
    "(version integer PRIMARY KEY, applied_at double precision)"
)
SQL_RECORD_VERSION = (
    f"INSERT INTO {VERSION_TABLE} (version, applied_at) "
    "VALUES ($1, extract(epoch FROM clock_timestamp()))"
)
SQL_CURRENT_VERSION = f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}"
#: retry_many: lock the matching dead/failed jobs, skip any whose unique key another
#: live job holds (and keep one per key), reset them, and record a ``retried`` event.
SQL_RETRY_WHERE = """
WITH candidates AS (
    SELECT id, unique_key FROM forge_nb_jobs WHERE {where} ORDER BY id FOR UPDATE
),
picked AS (
    SELECT id FROM candidates WHERE unique_key IS NULL
    UNION ALL
    SELECT min(c.id) FROM candidates c
    WHERE c.unique_key IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM forge_nb_jobs live
        WHERE live.unique_key = c.unique_key AND live.id <> c.id
          AND live.status IN ('pending', 'running', 'failed'))
    GROUP BY c.unique_key
),
retried AS (
    UPDATE forge_nb_jobs j
    SET status = 'pending', attempts = 0, scheduled_at = ${now}, finished_at = NULL,
        cancel_requested_at = NULL, claimed_by = NULL
    FROM picked
    WHERE j.id = picked.id AND j.status IN ('dead', 'failed')
    RETURNING j.id
),
events AS (
    INSERT INTO forge_nb_job_events (job_id, at, event, attempt, message)
    SELECT id, ${now}, 'retried', 0, NULL FROM retried ORDER BY id
)
SELECT count(*) FROM retried
"""
#: delete_many: every matching non-running job and its history.
SQL_DELETE_WHERE = """
WITH gone AS (
    DELETE FROM forge_nb_jobs WHERE {where} AND status <> 'running' RETURNING id
),
events AS (DELETE FROM forge_nb_job_events WHERE job_id IN (SELECT id FROM gone))
SELECT count(*) FROM gone
"""


class PostgresStorage(ClusterTables):
    """`Storage` on a Postgres database shared by every process."""

    backend = "postgres"

    def __init__(self, url: DatabaseUrl, *, min_size: int = 0, max_size: int = 10) -> None:
        self._url = url.url  # holds the password: never shown, only handed to asyncpg
        self.safe_url = url.safe
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._secrets = statements.password_forms(url.url)
        self._listener: Any = None
        self._on_change: Callable[[str | None], None] | None = None
        self._notifier = Notifier(self._notify)

    def __repr__(self) -> str:
        return f"PostgresStorage({self.safe_url!r})"

    # -- plumbing -------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        """Remove the password from a driver message (belt and braces)."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _translate(self, exc: BaseException) -> StorageError:
        """A driver error as the `StorageError` users see, never showing the password."""
        reason = self._scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
        if isinstance(exc, asyncpg.UniqueViolationError):
            return statements.UniqueClash(f"Postgres error on {self.safe_url}: {reason}")
        if isinstance(exc, CONNECTION_LOST):
            return DatabaseUnavailable(
                f"lost the connection to the database at {self.safe_url}: {reason}"
            )
        return StorageError(f"Postgres error on {self.safe_url}: {reason}")

    @contextlib.asynccontextmanager
    async def _connection(self, *, transaction: bool) -> AsyncIterator[Any]:
        """A pooled connection (optionally in a transaction) with driver errors translated."""
        pool = self._pool
        if pool is None:
            raise StorageError(f"storage for {self.safe_url} is not open (call open() first)")
        try:
            async with pool.acquire() as conn:
                if transaction:
                    async with conn.transaction():
                        yield conn
                else:
                    yield conn
        except ANY_DATABASE_ERROR as exc:
            raise self._translate(exc) from exc

    def _tx(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """One transaction on one pooled connection."""
        return self._connection(transaction=True)

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        """One statement (atomic by itself), all rows."""
        async with self._connection(transaction=False) as conn:
            return cast(list[Any], await conn.fetch(sql, *args))

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        async with self._connection(transaction=False) as conn:
            return await conn.fetchrow(sql, *args)

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        async with self._connection(transaction=False) as conn:
            return await conn.fetchval(sql, *args)

    async def _execute(self, sql: str, *args: Any) -> None:
        async with self._connection(transaction=False) as conn:
            await conn.execute(sql, *args)

    # -- lifecycle -------------------------------------------------------------------
    async def open(self) -> None:
        """Create the pool, then migrate (concurrent openers serialise on an advisory lock)."""
        if self._pool is not None:
            return
        try:
            pool = await asyncpg.create_pool(
                self._url,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=CONNECT_TIMEOUT_S,
                reset=statements.keep_session,
            )
            try:  # min_size may be 0: make sure the server answers before going on
                async with pool.acquire() as conn:
                    await conn.fetchval("SELECT 1")
            except BaseException:
                pool.terminate()
                raise
        except Exception as exc:  # refused, DNS, auth, unknown db, timeout: all "unreachable"
            reason = self._scrub(str(exc) or type(exc).__name__)
            raise DatabaseUnavailable(
                f"cannot reach the database at {self.safe_url}: {reason}"
            ) from None
        self._pool = pool
        try:
            await self.migrate()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the pool (waits for in-flight statements briefly, then terminates)."""
        await self._notifier.flush()
        await self.watch(None)
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=CONNECT_TIMEOUT_S)
        except ANY_DATABASE_ERROR:
            pool.terminate()

    async def migrate(self) -> list[int]:
        """Apply pending migrations in one transaction under an advisory lock."""
        async with self._tx() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
            return await self._migrate(conn)

    async def _migrate(self, conn: Any) -> list[int]:
        tables = [r[0] for r in await conn.fetch(SQL_MIGRATION_STATE)]
        if tables and VERSION_TABLE not in tables:
            raise NotAForgeDatabase(
                f"the database at {self.safe_url} holds forge_nb_ tables "
                f"({', '.join(tables[:5])}) but no {VERSION_TABLE} table, so forge-nb did not "
                "create them; it is left untouched: use another database or schema"
            )
        current = await conn.fetchval(SQL_CURRENT_VERSION) if tables else 0
        known = latest_version("postgres")
        if current > known:
            raise SchemaTooNew(
                f"the database at {self.safe_url} is at schema version {current} but this "
                f"forge-nb knows versions up to {known}; upgrade forge-nb"
            )
        await conn.execute(SQL_CREATE_VERSION_TABLE)
        applied = []
        for version, script in load_migrations("postgres"):
            if version > current:
                await conn.execute(script)
                await conn.execute(SQL_RECORD_VERSION, version)
                applied.append(version)
        return applied

    async def schema_version(self) -> int:
        """Newest applied migration (0 for an empty database)."""
        async with self._connection(transaction=False) as conn:
            tables = [r[0] for r in await conn.fetch(SQL_MIGRATION_STATE)]
            if VERSION_TABLE not in tables:
                return 0
            return int(await conn.fetchval(SQL_CURRENT_VERSION))

    async def watch(self, on_change: Callable[[str | None], None] | None) -> None:
        """LISTEN on a dedicated connection; enqueues NOTIFY their queue names."""
        self._on_change = on_change
        listener = self._listener
        if on_change is None:
            self._listener = None
            if listener is not None and not listener.is_closed():
                with contextlib.suppress(*ANY_DATABASE_ERROR):
                    await asyncio.wait_for(listener.close(), CONNECT_TIMEOUT_S)
            return
        if listener is not None and not listener.is_closed():
            return
        try:
            listener = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT_S)
            await listener.add_listener(NOTIFY_CHANNEL, self._notified)
        except ANY_DATABASE_ERROR as exc:
            raise self._translate(exc) from exc
        self._listener = listener

    async def _notify(self, queues: list[str]) -> None:
        await self._execute(Q["notify_queues"], NOTIFY_CHANNEL, queues)

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if self._on_change is not None:
            self._on_change(payload or None)

    # -- jobs: write path ----------------------------------------------------------------
    async def enqueue(self, jobs: Sequence[NewJob], now: float) -> list[EnqueueResult]:
        """Insert a batch in one transaction (see `Storage.enqueue`), then wake workers."""
        prepared = prepare_jobs(jobs, now)
        if not prepared:
            return []
        if all(row[6] is None for row in prepared):
            if len(prepared) >= COPY_MIN_ROWS:
                async with self._tx() as conn:
                    results = await statements.copy_plain(conn, prepared, now)
            else:
                # One statement, so no explicit transaction: a single round trip.
                async with self._connection(transaction=False) as conn:
                    results = await statements.insert_plain(conn, prepared, now)
        else:
            async with self._tx() as conn:
                results = await statements.insert_with_keys(conn, prepared, now)
        if any(r.outcome == "created" for r in results):
            self._notifier.send({row[1] for row in prepared})
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
        if kinds is None:
            found = await self._fetch(Q["claim"], queue, now, limit, host_id)
        else:
            arms = claim_arms(kinds)
            if not arms:
                return []
            window = limit + CLAIM_SKIP_ROOM
            params: list[Any] = [queue, now, limit, host_id, window, *arms]
            if exclude_versions:
                params.append(sorted(exclude_versions))
            found = await self._fetch(
                statements.claim_sql(len(arms), bool(exclude_versions)), *params
            )
        return sorted(map(rows.claimed_job, found), key=rows.claim_order)

    async def release_claims(
        self, queue: str, host_id: str, claimed_at: Sequence[float]
    ) -> list[str]:
        """Jobs of claims whose reply was lost, back to pending (see `Storage`)."""
        if not claimed_at:
            return []
        found = await self._fetch(Q["release_claims"], queue, host_id, list(claimed_at))
        return sorted((str(r[0]) for r in found), key=int)

    async def finish(self, host_id: str, finishes: Sequence[Finish], now: float) -> list[str]:
        """Apply a batch of outcomes in one statement; only runs this host still owns."""
        batch: dict[int, Finish] = {}
        for f in finishes:
            key = rows.parse_job_id(f.job_id)
            if key is None:
                continue
            # One row per job in the statement. A repeat of the same run would find the job
            # finished; an outcome of an earlier run (held back while the database was away,
            # the job since reaped and claimed again) cannot match: keep the latest attempt.
            if key not in batch or f.attempt > batch[key].attempt:
                batch[key] = f
        if not batch:
            return []
        params = statements.finish_arrays(batch)
        found = await self._fetch(Q["finish"], host_id, *params, now)
        finalized = {r[0] for r in found}
        return [f.job_id for key, f in batch.items() if key in finalized]

    async def update_progress(self, updates: Sequence[tuple[str, float, str]]) -> None:
        """Store progress of running jobs (the last update of a job in a batch wins)."""
        latest: dict[int, tuple[float, str]] = {}
        for job_id, fraction, message in updates:
            key = rows.parse_job_id(job_id)
            if key is not None:
                latest[key] = (fraction, message)
        if latest:
            ids = list(latest)
            await self._execute(
                Q["update_progress"],
                ids,
                [latest[k][0] for k in ids],
                [latest[k][1] for k in ids],
            )

    # -- jobs: admin ---------------------------------------------------------------------
    async def get_job(self, job_id: str) -> JobRecord | None:
        """One job or None."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return None
        found = await self._fetchrow(f"SELECT {JOB_COLUMNS} FROM forge_nb_jobs WHERE id = $1", key)
        return None if found is None else rows.job_record(found)

    async def list_jobs(
        self, filter: JobFilter, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        """Newest first, keyset-paged on id (a payload search a window of ids per page)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be an int between 1 and {MAX_PAGE}, got {limit!r}")
        where, params = statements.filter_sql(filter)
        scheduled = filter.scheduled_after is not None
        if scheduled:
            params.append(filter.scheduled_after)
            where += [
                "status = 'pending'",
                "scheduled_at > created_at",
                f"scheduled_at > ${len(params)}",
            ]
        if cursor is not None and scheduled:
            params.extend(rows.parse_scheduled_cursor(cursor))
            where.append(f"(scheduled_at, id) > (${len(params) - 1}, ${len(params)})")
        key = None
        if cursor is not None and not scheduled:
            key = rows.parse_job_id(cursor)
            if key is None:
                raise ValueError(f"invalid cursor {cursor!r}")
            params.append(key)
            where.append(f"id < ${len(params)}")
        floor = None
        if filter.search and not scheduled:
            lowest, highest = await self._fetchrow(Q["id_bounds"])
            floor = rows.search_floor(key, lowest, highest)
            if floor is not None:
                params.append(floor)
                where.append(f"id >= ${len(params)}")
        params.append(limit)
        sql = f"SELECT {JOB_COLUMNS} FROM forge_nb_jobs"
        sql += (" WHERE " + " AND ".join(where)) if where else ""
        sql += f" ORDER BY {'scheduled_at, id' if scheduled else 'id DESC'} LIMIT ${len(params)}"
        return rows.job_page(await self._fetch(sql, *params), limit, scheduled, floor)

    async def job_events(self, job_id: str) -> list[JobEvent]:
        """Stored history, oldest first."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return []
        return [rows.job_event(r) for r in await self._fetch(Q["job_events"], key)]

    async def counts(self) -> dict[str, dict[Status, int]]:
        """``{queue: {status: n}}``, zeros included, queues by name."""
        out: dict[str, dict[Status, int]] = {}
        for queue, status, n in await self._fetch(Q["counts"]):
            counts = out.setdefault(queue, dict.fromkeys(STATUSES, 0))
            if status is not None:
                counts[status] = n
        return dict(sorted(out.items()))

    async def retry(self, job_id: str, now: float) -> Status | None:
        """Dead/failed → pending with attempts reset; ValueError if its unique key is taken."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return None
        try:
            async with self._tx() as conn:
                status = await conn.fetchval(Q["lock_job_status"], key)
                if status in ("dead", "failed"):
                    await conn.execute(Q["retry"], key, now)
                    await conn.execute(Q["insert_event"], key, now, "retried", 0, None)
                return cast("Status | None", status)
        except statements.UniqueClash:
            raise ValueError(
                f"cannot retry job {job_id}: another live job holds its unique key"
            ) from None

    async def retry_many(self, filter: JobFilter, now: float) -> int:
        """Retry every dead/failed job matching the filter (unique-key clashes skipped)."""
        statuses = retryable_statuses(filter)
        where, params = statements.filter_sql(
            JobFilter(None, filter.queue, filter.kind, filter.search)
        )
        params.append(list(statuses))
        where.append(f"status = ANY (${len(params)}::text[])")
        params.append(now)
        sql = SQL_RETRY_WHERE.format(where=" AND ".join(where), now=len(params))
        for _ in range(RACE_RETRIES):
            try:
                return int(await self._fetchval(sql, *params))
            except statements.UniqueClash:
                continue  # a job took one of the keys after our snapshot: look again
        raise StorageError(f"retry_many kept colliding with concurrent enqueues on {self.safe_url}")

    async def delete(self, job_id: str) -> Status | None:
        """Delete a non-running job and its history."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return None
        async with self._tx() as conn:
            status = await conn.fetchval(Q["delete_job"], key)
            if status is None:
                status = await conn.fetchval(Q["job_status"], key)  # running, or unknown
            return cast("Status | None", status)

    async def delete_many(self, filter: JobFilter) -> int:
        """Delete every non-running job matching the filter."""
        where, params = statements.filter_sql(filter)
        sql = SQL_DELETE_WHERE.format(where=" AND ".join(where) or "true")
        return int(await self._fetchval(sql, *params))

    async def request_cancel(self, job_id: str, now: float) -> Status | None:
        """Cancel now (waiting jobs) or flag for the owner (running jobs)."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return None
        async with self._tx() as conn:
            status = await conn.fetchval(Q["lock_job_status"], key)
            if status in ("pending", "failed"):
                attempts = await conn.fetchval(Q["cancel_waiting"], key, now)
                await conn.execute(Q["insert_event"], key, now, "cancelled", attempts, "cancelled")
                return "dead"
            if status == "running":
                await conn.execute(Q["cancel_running"], key, now)
            return cast("Status | None", status)

    async def cancel_requests(self, host_id: str) -> list[str]:
        """Flagged running jobs of one host."""
        return [str(r[0]) for r in await self._fetch(Q["cancel_requests"], host_id)]

    # -- queues --------------------------------------------------------------------------
    async def ensure_queue(self, name: str, **knobs: Any) -> QueueConfig:
        """Create if missing, then apply knobs."""
        check_name(name, "queue")
        clean = check_queue_knobs(knobs)
        async with self._tx() as conn:
            await conn.execute(Q["ensure_queue_row"], name)
            return await statements.apply_knobs(conn, name, clean)

    async def update_queue(self, name: str, **knobs: Any) -> QueueConfig:
        """Apply knobs to an existing queue."""
        clean = check_queue_knobs(knobs)
        async with self._tx() as conn:
            return await statements.apply_knobs(conn, name, clean)

    async def queues(self) -> list[QueueConfig]:
        """Every queue's config."""
        return [rows.queue_config(r) for r in await self._fetch(Q["queue_configs"])]

    # -- processes -----------------------------------------------------------------------
    async def register_processes(self, processes: Sequence[ProcessRecord]) -> None:
        """Insert or replace slot rows."""
        params = [rows.process_params(p, list) for p in processes]
        if params:
            async with self._tx() as conn:
                await conn.executemany(Q["register_process"], params)

    async def unregister_processes(self, process_ids: Sequence[str]) -> None:
        """Delete slot rows."""
        if process_ids:
            await self._execute(Q["unregister_processes"], list(process_ids))

    async def heartbeat(
        self,
        host_id: str,
        now: float,
        current_jobs: Mapping[str, str | None],
        kinds: Collection[str] | None = None,
    ) -> None:
        """Touch a host's slots, record what each runs (and the kinds, when given)."""
        listed = None if kinds is None else list(kinds)
        async with self._tx() as conn:
            await conn.execute(Q["heartbeat_host"], now, host_id, listed)
            if current_jobs:
                slots = list(current_jobs)
                jobs = [current_jobs[s] for s in slots]
                await conn.execute(Q["set_current_jobs"], slots, jobs)

    async def processes(self) -> list[ProcessRecord]:
        """Every slot row."""
        return [rows.process_record(r) for r in await self._fetch(Q["processes"])]

    # -- shipped code ------------------------------------------------------------------------
    async def publish_code(self, code: ShippedCode) -> bool:
        """Store one code version (see `Storage.publish_code`)."""
        return await self._fetchval(Q["publish_code"], *rows.code_params(code)) is not None

    async def code_catalogue(self) -> list[ShippedCode]:
        """Every version without its code, oldest first."""
        return [rows.shipped_code(r) for r in await self._fetch(Q["code_catalogue"])]

    async def code_stamp(self) -> tuple[int, float | None]:
        """(versions, newest created_at)."""
        count, newest = await self._fetchrow(Q["code_stamp"])
        return int(count), newest

    async def get_code(self, version: str) -> ShippedCode | None:
        """One version with its code."""
        found = await self._fetchrow(Q["code_row"], version)
        return None if found is None else rows.shipped_code(found)

    async def stranded_kinds(
        self, live_since: float, count_up_to: int = 1_000, limit: int = 50
    ) -> list[StrandedKind]:
        """Waiting kinds no live process runs (see `Storage.stranded_kinds`)."""
        found = await self._fetch(Q["stranded_kinds"], live_since, count_up_to, limit)
        return [rows.stranded_kind(r, count_up_to) for r in found]

    async def reap(
        self, now: float, stale_before: float, host_ids: Sequence[str] = ()
    ) -> list[ReapedJob]:
        """Fail the running jobs of dead processes with ``worker lost``; drop their slots."""
        hosts = list(host_ids)
        async with self._tx() as conn:
            found = await conn.fetch(Q["reap"], now, stale_before, hosts)
            await conn.execute(Q["delete_stale_processes"], stale_before, hosts)
        return [ReapedJob(str(r[0]), r[1], r[2], r[3], r[4] or "") for r in found]

    # -- cron ----------------------------------------------------------------------------
    def pool_capacity(self) -> int:
        """Operations that can run at once: one per pooled connection."""
        return self._max_size


# -- helpers ------------------------------------------------------------------------------


__all__ = ["PostgresStorage"]
