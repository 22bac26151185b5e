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
import functools
import json
import logging
import math
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import asyncpg

from forge_nb.config import DatabaseUrl
from forge_nb.errors import (
    DatabaseUnavailable,
    NotAForgeDatabase,
    SchemaTooNew,
    StorageError,
    UnknownQueue,
    UnknownRateLimit,
)
from forge_nb.storage import rows, rules
from forge_nb.storage.kinds import build_claim, claim_arms
from forge_nb.storage.records import (
    STATUSES,
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
from forge_nb.storage.schema import VERSION_TABLE, latest_version, load_migrations, load_queries
from forge_nb.storage.validation import (
    check_bucket,
    check_filter,
    check_name,
    check_queue_knobs,
    dump_json,
    escape_like,
    prepare_jobs,
    retryable_statuses,
)

Q = load_queries("postgres")
MAX_PAGE = 1000
log = logging.getLogger("forge_nb.storage")

#: Channel enqueues notify (after they commit) with the queue name.
NOTIFY_CHANNEL = "forge_nb_jobs"
#: Least time between two NOTIFYs from one process; enqueues in between share the next one.
NOTIFY_GAP_S = 0.002
CONNECT_TIMEOUT_S = 10.0
#: Key of the advisory lock that serialises migrations across processes ("forge_nb" in hex).
MIGRATION_LOCK_KEY = 0x666F7267655F6E62
#: Batches of key-less jobs from this size on travel by binary COPY (ids drawn first):
#: 1.5x the rows/s of one INSERT … unnest, for three more round trips.
COPY_MIN_ROWS = 1000
#: Candidates a claim may read past its size: rows concurrent claimers hold (skipped, not
#: waited for) or took since this claim's snapshot. Each process has at most a claim per
#: queue in flight, so this is room for ten others claiming 100 jobs each.
CLAIM_SKIP_ROOM = 1000
#: Columns of a COPY into the jobs table, in `_copy_plain`'s record order.
COPY_COLUMNS = (
    "id",
    "kind",
    "queue",
    "payload",
    "priority",
    "scheduled_at",
    "max_attempts",
    "code_version",
    "created_at",
)
#: How often a statement that lost a race (unique key changing hands) is retried.
RACE_RETRIES = 5

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


class _UniqueClash(StorageError):
    """A write hit the live-unique-key index (callers that expect it catch this)."""


class _Notifier:
    """Sends NOTIFYs for committed enqueues: at once, then at most one per `NOTIFY_GAP_S`.

    NOTIFY inside the enqueue's transaction would take Postgres's global notification
    lock at commit, making concurrent enqueues commit one by one. Here only these small
    statements queue: names that arrive while one is in flight, or within `NOTIFY_GAP_S`
    of the last, go out together when the gap is over. A NOTIFY per enqueue was a third
    of the CPU an awaited one-job enqueue cost (client and server); the first enqueue
    after a quiet spell still wakes other processes at once. A lost notification costs
    latency only: workers also poll.
    """

    def __init__(self, send: Callable[[list[str]], Awaitable[None]]) -> None:
        self._send = send
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._last_sent = -math.inf  # loop time

    def send(self, queues: set[str]) -> None:
        """Notify these queues soon (at once when none went out in the last gap)."""
        self._pending |= queues
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            wait = self._last_sent + NOTIFY_GAP_S - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            queues, self._pending = sorted(self._pending), set()
            self._last_sent = loop.time()
            try:
                await self._send(queues)
            except Exception as exc:  # the database may be down: workers poll anyway
                log.debug("could not notify %s: %s", queues, exc)
                return

    async def flush(self) -> None:
        """Wait for notifications still being sent (before the pool closes)."""
        if self._task is not None and not self._task.done():
            await asyncio.wait([self._task], timeout=CONNECT_TIMEOUT_S)


class PostgresStorage:
    """`Storage` on a Postgres database shared by every process."""

    backend = "postgres"

    def __init__(self, url: DatabaseUrl, *, min_size: int = 0, max_size: int = 10) -> None:
        self._url = url.url  # holds the password: never shown, only handed to asyncpg
        self.safe_url = url.safe
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._secrets = _password_forms(url.url)
        self._listener: Any = None
        self._on_change: Callable[[str | None], None] | None = None
        self._notifier = _Notifier(self._notify)

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
            return _UniqueClash(f"Postgres error on {self.safe_url}: {reason}")
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
                reset=_keep_session,
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
                    results = await _copy_plain(conn, prepared, now)
            else:
                # One statement, so no explicit transaction: a single round trip.
                async with self._connection(transaction=False) as conn:
                    results = await _insert_plain(conn, prepared, now)
        else:
            async with self._tx() as conn:
                results = await _insert_with_keys(conn, prepared, now)
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
            found = await self._fetch(_claim_sql(len(arms), bool(exclude_versions)), *params)
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
        params = _finish_arrays(batch)
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
        where, params = _filter_sql(filter)
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
        except _UniqueClash:
            raise ValueError(
                f"cannot retry job {job_id}: another live job holds its unique key"
            ) from None

    async def retry_many(self, filter: JobFilter, now: float) -> int:
        """Retry every dead/failed job matching the filter (unique-key clashes skipped)."""
        statuses = retryable_statuses(filter)
        where, params = _filter_sql(JobFilter(None, filter.queue, filter.kind, filter.search))
        params.append(list(statuses))
        where.append(f"status = ANY (${len(params)}::text[])")
        params.append(now)
        sql = SQL_RETRY_WHERE.format(where=" AND ".join(where), now=len(params))
        for _ in range(RACE_RETRIES):
            try:
                return int(await self._fetchval(sql, *params))
            except _UniqueClash:
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
        where, params = _filter_sql(filter)
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
            return await _apply_knobs(conn, name, clean)

    async def update_queue(self, name: str, **knobs: Any) -> QueueConfig:
        """Apply knobs to an existing queue."""
        clean = check_queue_knobs(knobs)
        async with self._tx() as conn:
            return await _apply_knobs(conn, name, clean)

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
                await _insert_plain(conn, prepared, now)
            else:
                await _insert_with_keys(conn, prepared, now)
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

    def pool_capacity(self) -> int:
        """Operations that can run at once: one per pooled connection."""
        return self._max_size


# -- helpers ------------------------------------------------------------------------------


async def _keep_session(conn: Any) -> None:
    """Pool reset hook that skips asyncpg's reset query (a round trip per operation).

    Safe because this module never changes session state: no SET, LISTEN, cursors or
    session-level advisory locks; asyncpg still rolls back an unfinished transaction.
    """


def _password_forms(url: str) -> list[str]:
    """The URL's password as written and decoded (to scrub from messages)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    if not password:
        return []
    return sorted({password, unquote(password)}, key=len, reverse=True)


async def _insert_plain(
    conn: Any, prepared: list[tuple[Any, ...]], now: float
) -> list[EnqueueResult]:
    """A batch without unique keys: one INSERT … SELECT FROM unnest (VALUES for one job)."""
    if len(prepared) == 1:
        kind, queue, payload, priority, scheduled_at, max_attempts, _, version = prepared[0]
        new_id = await conn.fetchval(
            Q["insert_job"],
            kind,
            queue,
            payload,
            priority,
            scheduled_at,
            max_attempts,
            now,
            int(now // 60),
            version,
        )
        return [EnqueueResult(str(new_id), "created", "pending")]
    ids = await conn.fetchval(Q["insert_jobs"], *_job_arrays(prepared, now))
    return [EnqueueResult(str(i), "created", "pending") for i in ids]


async def _copy_plain(
    conn: Any, prepared: list[tuple[Any, ...]], now: float
) -> list[EnqueueResult]:
    """A large key-less batch (in a transaction): ids from the sequence, then binary COPY."""
    queues = sorted({row[1] for row in prepared})
    await conn.execute(Q["ensure_queue_rows"], queues)
    ids = await conn.fetchval(Q["next_job_ids"], len(prepared))
    await conn.copy_records_to_table(
        "forge_nb_jobs",
        records=[
            (new_id, kind, queue, payload, priority, scheduled_at, max_attempts, version, now)
            for new_id, (
                kind,
                queue,
                payload,
                priority,
                scheduled_at,
                max_attempts,
                _,
                version,
            ) in zip(ids, prepared, strict=True)
        ],
        columns=COPY_COLUMNS,
    )
    await _count_enqueued(conn, [row[1] for row in prepared], now)
    return [EnqueueResult(str(i), "created", "pending") for i in ids]


async def _count_enqueued(conn: Any, queues: list[str], now: float) -> None:
    """Jobs inserted outside ``insert_jobs`` (COPY, one unique job): metric and counts."""
    per_queue = Counter(queues)
    await conn.execute(
        Q["count_enqueued"], int(now // 60), list(per_queue), list(per_queue.values())
    )


def _job_arrays(prepared: Sequence[tuple[Any, ...]], now: float) -> list[Any]:
    """Parameters of ``insert_jobs``: one array per column, now, queue names, metric minute."""
    columns = [list(c) for c in zip(*prepared, strict=True)]
    # Sorted queues: concurrent enqueuers take the queue rows' locks in the same order.
    return [*columns, now, sorted(set(columns[1])), int(now // 60)]


async def _insert_with_keys(
    conn: Any, prepared: list[tuple[Any, ...]], now: float
) -> list[EnqueueResult]:
    """A batch with unique keys: one bulk insert, then resolve what it skipped.

    Only the first job of each key goes to the database, so an inserted key names its
    input row; later jobs with the same key are duplicates of whatever the first became.
    Key-less rows come back in input order (their ids rise with it).
    """
    first_of_key: dict[str, int] = {}
    sent: list[int] = []
    for index, row in enumerate(prepared):
        key = row[6]
        if key is None or key not in first_of_key:
            if key is not None:
                first_of_key[key] = index
            sent.append(index)
    found = await conn.fetch(
        Q["insert_jobs_unique"], *_job_arrays([prepared[i] for i in sent], now)
    )
    created_by_key = {r[1]: r[0] for r in found if r[1] is not None}
    plain_ids = iter(sorted(r[0] for r in found if r[1] is None))
    results: list[EnqueueResult | None] = [None] * len(prepared)
    skipped: list[int] = []
    for index in sent:
        key = prepared[index][6]
        new_id = next(plain_ids) if key is None else created_by_key.get(key)
        if new_id is None:
            skipped.append(index)
        else:
            results[index] = EnqueueResult(str(new_id), "created", "pending")
    if skipped:
        keys = [prepared[i][6] for i in skipped]
        holders = {
            r[0]: (r[1], r[2]) for r in await conn.fetch(Q["live_jobs_by_unique_keys"], keys)
        }
        for index in skipped:
            holder = holders.get(prepared[index][6])
            if holder is not None:
                results[index] = EnqueueResult(str(holder[0]), "duplicate", holder[1])
            else:  # the holder ended between the statements: the key is free again
                results[index] = await _insert_unique(conn, prepared[index], now)
    out = []
    for index, result in enumerate(results):
        if result is None:  # a repeat of a key earlier in the batch
            first = results[first_of_key[prepared[index][6]]]
            assert first is not None
            result = EnqueueResult(first.id, "duplicate", first.status)
        out.append(result)
    return out


async def _insert_unique(conn: Any, row: tuple[Any, ...], now: float) -> EnqueueResult:
    """Insert one job unless a live job holds its unique key (then return that job)."""
    for _ in range(RACE_RETRIES):
        new_id = await conn.fetchval(Q["insert_unique_job"], *row, now)
        if new_id is not None:
            await _count_enqueued(conn, [row[1]], now)
            return EnqueueResult(str(new_id), "created", "pending")
        holder = await conn.fetchrow(Q["live_job_by_unique_key"], row[6])
        if holder is not None:
            return EnqueueResult(str(holder[0]), "duplicate", holder[1])
        # The holder finished between the two statements: the key is free again.
    raise StorageError(f"unique key {row[6]!r} kept changing hands; try again")


def _finish_arrays(batch: Mapping[int, Finish]) -> list[list[Any]]:
    """Column arrays for the ``finish`` statement ($2 … $10)."""
    fs = list(batch.values())
    return [
        list(batch),
        [f.attempt for f in fs],
        [f.status for f in fs],
        [f.event for f in fs],
        [f.result_json for f in fs],
        [f.error for f in fs],
        [f.traceback for f in fs],
        [f.scheduled_at for f in fs],
        [1 if f.refund_attempt else 0 for f in fs],
    ]


def _filter_sql(filter: JobFilter) -> tuple[list[str], list[Any]]:
    """WHERE terms for a filter with ``$n`` placeholders; every value is a bound parameter."""
    check_filter(filter)
    where: list[str] = []
    params: list[Any] = []
    if filter.status is not None:
        if filter.status not in STATUSES:
            raise ValueError(f"unknown status {filter.status!r}; use one of {', '.join(STATUSES)}")
        params.append(filter.status)
        where.append(f"status = ${len(params)}")
    if filter.queue is not None:
        params.append(filter.queue)
        where.append(f"queue = ${len(params)}")
    if filter.kind is not None:
        params.append(filter.kind)
        where.append(f"kind = ${len(params)}")
    if filter.search:
        params.append(escape_like(filter.search))
        # COLLATE "C": fold ASCII case only, whatever the database locale (as SQLite's LIKE).
        where.append(f"(payload COLLATE \"C\") ILIKE ${len(params)} ESCAPE '\\'")
    return where, params


async def _apply_knobs(conn: Any, name: str, knobs: Mapping[str, Any]) -> QueueConfig:
    """Update an existing queue row (inside the caller's transaction) and return it."""
    if knobs:
        sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(knobs, 2))  # keys are QUEUE_KNOBS
        await conn.execute(
            f"UPDATE forge_nb_queues SET {sets} WHERE name = $1", name, *knobs.values()
        )
    found = await conn.fetchrow(Q["queue_config"], name)
    if found is None:
        raise UnknownQueue(f"unknown queue {name!r}")
    return rules.checked_config(rows.queue_config(found))


__all__ = ["PostgresStorage"]


@functools.lru_cache(maxsize=32)
def _claim_sql(arms: int, versions: bool = False) -> str:
    """The ``claim_kinds`` statement with ``arms`` arms (kinds are $6, $7, …; the code versions
    not to claim, when ``versions``, follow them)."""
    if not versions:
        return build_claim(Q["claim_kinds"], Q["claim_arm"], arms, lambda i: f"${6 + i}")
    arm = Q["claim_arm_versions"].replace("{excluded}", f"${6 + arms}")
    return build_claim(Q["claim_kinds"], arm, arms, lambda i: f"${6 + i}")
