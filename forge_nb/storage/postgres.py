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
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, cast

import asyncpg

from forge_nb.config import DatabaseUrl
from forge_nb.errors import (
    DatabaseUnavailable,
    DeadDependency,
    NotAForgeDatabase,
    SchemaTooNew,
    StorageError,
)
from forge_nb.storage import postgres_flow as flow
from forge_nb.storage import postgres_statements as statements
from forge_nb.storage import postgres_workflows as workflows
from forge_nb.storage import rows
from forge_nb.storage.core import ClaimRequest, EnqueueBatch, Params, SqlCore
from forge_nb.storage.extras import Extras
from forge_nb.storage.postgres_lane import Lane
from forge_nb.storage.postgres_notify import CONNECT_TIMEOUT_S, Notifier
from forge_nb.storage.postgres_statements import RACE_RETRIES, Q
from forge_nb.storage.records import (
    STATUSES,
    EnqueueResult,
    Finish,
    JobFilter,
    JobLog,
    QueueConfig,
    ReapedJob,
    Status,
)
from forge_nb.storage.schema import VERSION_TABLE, latest_version, load_migrations
from forge_nb.storage.validation import has_unique_keys, retryable_statuses

log = logging.getLogger("forge_nb.storage")
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


class PostgresStorage(SqlCore):
    """`Storage` on a Postgres database shared by every process."""

    backend = "postgres"
    Q = Q

    def __init__(self, url: DatabaseUrl, *, min_size: int = 0, max_size: int = 10) -> None:
        self._url = url.url  # holds the password: never shown, only handed to asyncpg
        self.safe_url = url.safe
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._windows_seen = False  # a unique key was once taken with a window
        self._secrets = statements.password_forms(url.url)
        self._listener: Any = None
        self._on_change: Callable[[str | None], None] | None = None
        self._notifier = Notifier(self._notify)
        self._lane = Lane()  # a kept connection for enqueues
        self._known_queues: set[str] = set()  # queue rows known to exist (never deleted)

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
        if isinstance(exc, asyncpg.DeadlockDetectedError):
            return statements.Deadlock(f"Postgres error on {self.safe_url}: {reason}")
        if isinstance(exc, CONNECTION_LOST):
            return DatabaseUnavailable(
                f"lost the connection to the database at {self.safe_url}: {reason}"
            )
        return StorageError(f"Postgres error on {self.safe_url}: {reason}")

    @contextlib.asynccontextmanager
    async def _connection(self, *, transaction: bool, lane: bool = False) -> AsyncIterator[Any]:
        """A pooled connection (optionally in a transaction) with driver errors translated;
        ``lane``: the enqueue lane's kept connection when it is free (`postgres_lane`)."""
        pool = self._pool
        if pool is None:
            raise StorageError(f"storage for {self.safe_url} is not open (call open() first)")
        try:
            async with self._lane.connection(pool) if lane else pool.acquire() as conn:
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

    # -- what the SQL core asks of a dialect ------------------------------------------------
    async def _select(self, name: str, *params: Any) -> list[Any]:
        return await self._fetch(Q[name], *params)

    async def _change(self, name: str, *params: Any) -> list[Any]:
        return await self._fetch(Q[name], *params)

    async def _change_all(self, batches: Sequence[tuple[str, Sequence[Params]]]) -> None:
        async with self._tx() as conn:
            for name, params in batches:
                if params:
                    await conn.executemany(Q[name], params)

    async def write_job_logs(self, logs: Sequence[JobLog]) -> None:
        """Store attempts' logs in one statement (arrays: a flush may hold thousands)."""
        found = [(rows.parse_job_id(log.job_id), log) for log in logs]
        kept = [(key, log) for key, log in found if key is not None]
        if kept:
            await self._execute(Q["write_job_logs_batch"], *statements.log_arrays(kept))

    def _list_param(self, values: Sequence[str]) -> Any:
        return list(values)

    def _key_list_param(self, keys: Sequence[int]) -> Any:
        return list(keys)

    def _placeholder(self, n: int) -> str:
        return f"${n}"

    async def _select_sql(self, sql: str, params: Params) -> list[Any]:
        return await self._fetch(sql, *params)

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
        self._lane.reopen()
        try:
            await self.migrate()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the pool (waits for in-flight statements briefly, then terminates)."""
        await self._notifier.flush()
        await self._lane.close()
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
        async with self._connection(transaction=False, lane=True) as conn:  # no pool round
            await conn.execute(Q["notify_queues"], NOTIFY_CHANNEL, queues)

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if self._on_change is not None:
            self._on_change(payload or None)

    # -- jobs: write path ----------------------------------------------------------------
    async def _insert(self, batch: EnqueueBatch, now: float) -> list[EnqueueResult]:
        """Insert a batch in one transaction, then wake workers."""
        prepared, flows, links, more = batch
        keyed = has_unique_keys(prepared)
        if any(flows) or (keyed and await self._held_keys_possible()):
            async with self._tx() as conn:
                results = await flow.enqueue(conn, prepared, flows, now)
                if more:
                    await statements.insert_extras(conn, results, more)
                if links:
                    results = await workflows.link_dependencies(conn, results, links, now)
        elif links or more:
            results = await self._enqueue_linked(prepared, links, now, more, keyed)
        elif not keyed:
            if len(prepared) >= COPY_MIN_ROWS:
                async with self._connection(transaction=True, lane=True) as conn:
                    results = await statements.copy_plain(conn, prepared, now)
            elif len(prepared) == 1:
                return [await self._insert_one(prepared[0], now)]
            else:
                # One statement, so no explicit transaction: a single round trip.
                async with self._connection(transaction=False, lane=True) as conn:
                    results = await statements.insert_plain(conn, prepared, now)
        else:
            async with self._tx() as conn:
                results = await statements.insert_with_keys(conn, prepared, now)
        if any(r.outcome == "created" for r in results):
            self._notifier.send({row[1] for row in prepared})
        return results

    async def _insert_one(self, row: tuple[Any, ...], now: float) -> EnqueueResult:
        """The common enqueue: one statement on the kept connection, creating the queue row
        only the first time and carrying its own NOTIFY when one is due."""
        queue = row[1]
        pool = self._pool
        if pool is None:
            raise StorageError(f"storage for {self.safe_url} is not open (call open() first)")
        wake = self._notifier.take_inline({queue})
        args = statements.insert_one_args(
            row, now, queue not in self._known_queues, NOTIFY_CHANNEL, wake
        )
        try:
            new_id = await self._lane.fetchval(pool, Q["insert_job"], *args)
        except BaseException as exc:
            if wake:  # those waiting for the gap still need their NOTIFY
                self._notifier.send(set(wake))
            if isinstance(exc, ANY_DATABASE_ERROR):
                raise self._translate(exc) from exc
            raise
        self._known_queues.add(queue)  # committed: its row exists
        if not wake:
            self._notifier.send({queue})
        return EnqueueResult(str(new_id), "created", "pending")

    async def _held_keys_possible(self) -> bool:
        """Whether a unique key may be held by a window (`unique_for`): only once some key
        was taken with one (the table only grows, so yes is kept)."""
        if not self._windows_seen:
            self._windows_seen = bool(await self._fetchval(Q["unique_holds_exist"]))
        return self._windows_seen

    async def _enqueue_linked(
        self,
        prepared: list[tuple[Any, ...]],
        links: list[tuple[int, list[int]]],
        now: float,
        more: Extras | None,
        keyed: bool,
    ) -> list[EnqueueResult]:
        """A batch with dependencies: inserted and linked in one transaction, tried again
        when it deadlocks with a dependency's finish (each waits on the other's row locks)."""
        for _ in range(RACE_RETRIES):
            try:
                async with self._tx() as conn:
                    if not keyed:
                        results = await statements.insert_plain(conn, prepared, now)
                    else:
                        results = await statements.insert_with_keys(conn, prepared, now)
                    if more:
                        await statements.insert_extras(conn, results, more)
                    return await workflows.link_dependencies(conn, results, links, now)
            except statements.Deadlock:
                continue
        raise StorageError(f"enqueue with dependencies kept deadlocking on {self.safe_url}")

    async def _claim_rows(self, claim: ClaimRequest) -> list[Any]:
        queue, host_id, limit, now, arms, excluded = claim
        if arms is None:
            return await self._fetch(Q["claim"], queue, now, limit, host_id)
        window = limit + CLAIM_SKIP_ROOM
        params: list[Any] = [queue, now, limit, host_id, window, *arms]
        if excluded:
            params.append(excluded)
        return await self._fetch(statements.claim_sql(len(arms), bool(excluded)), *params)

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
        if all(f.log is None for f in batch.values()):
            found = await self._fetch(Q["finish"], host_id, *params, now)
        else:  # the attempts' logs go in the same statement
            log_params = statements.outcome_log_arrays(batch.values())
            found = await self._fetch(Q["finish_logged"], host_id, *params, now, *log_params)
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
    async def counts(self) -> dict[str, dict[Status, int]]:
        """``{queue: {status: n}}``, zeros included, queues by name."""
        out: dict[str, dict[Status, int]] = {}
        for queue, status, n in await self._fetch(Q["counts"]):
            counts = out.setdefault(queue, dict.fromkeys(STATUSES, 0))
            if status is not None:
                counts[status] = n
        return dict(sorted(out.items()))

    async def retry(self, job_id: str, now: float) -> Status | None:
        """Dead/failed → pending with attempts reset; ValueError if its unique key is taken
        or a dependency is dead. What its death ended waits again."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return None
        try:
            async with self._tx() as conn:
                status = await conn.fetchval(Q["lock_job_status"], key)
                if status in ("dead", "failed"):
                    dead = await workflows.dead_dependency(conn, key)
                    if dead is not None:
                        raise DeadDependency(key, dead)
                    flags = await conn.fetchrow(Q["retry"], key, now)
                    await conn.execute(Q["insert_event"], key, now, "retried", 0, None)
                    if flags is not None and (flags[0] or flags[1]):
                        await workflows.revive(conn, key, now)
                return cast("Status | None", status)
        except statements.UniqueClash:
            raise ValueError(
                f"cannot retry job {job_id}: another live job holds its unique key"
            ) from None

    async def retry_many(self, filter: JobFilter, now: float) -> int:
        """Retry every dead/failed job matching the filter (unique-key clashes and jobs with a
        dead dependency skipped); what their deaths ended waits again."""
        statuses = retryable_statuses(filter)
        where, params = self.filter_terms(JobFilter(None, filter.queue, filter.kind, filter.search))
        params.append(list(statuses))
        where.append(f"status = ANY (${len(params)}::text[])")
        params.append(now)
        sql = Q["retry_where"].replace("{where}", " AND ".join(where))
        sql = sql.replace("{now}", f"${len(params)}")
        for _ in range(RACE_RETRIES):
            try:
                async with self._tx() as conn:
                    count, in_workflows = await conn.fetchrow(sql, *params)
                    for key in in_workflows:
                        await workflows.revive(conn, key, now)
                    return int(count)
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
        where, params = self.filter_terms(filter)
        sql = Q["delete_where"].replace("{where}", " AND ".join(where) or "TRUE")
        return int(await self._fetchval(sql, *params))

    async def request_cancel(self, job_id: str, now: float) -> Status | None:
        """Cancel now (waiting jobs) or flag for the owner (running jobs)."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return None
        async with self._tx() as conn:
            status = await conn.fetchval(Q["lock_job_status"], key)
            if status in ("waiting", "pending", "failed"):
                attempts = await conn.fetchval(Q["cancel_waiting"], key, now)
                await conn.execute(Q["insert_event"], key, now, "cancelled", attempts, "cancelled")
                return "dead"
            if status == "running":
                await conn.execute(Q["cancel_running"], key, now)
            return cast("Status | None", status)

    # -- queues --------------------------------------------------------------------------
    async def _apply_queue_knobs(
        self, name: str, knobs: Mapping[str, Any], create: bool
    ) -> QueueConfig:
        async with self._tx() as conn:
            if create:
                await conn.execute(Q["ensure_queue_row"], name)
            return await statements.apply_knobs(conn, name, knobs)

    # -- processes -----------------------------------------------------------------------
    # -- shipped code ------------------------------------------------------------------------
    async def reap(
        self, now: float, stale_before: float, host_ids: Sequence[str] = ()
    ) -> list[ReapedJob]:
        """Fail the running jobs of dead processes with ``worker lost``; drop their slots."""
        hosts = list(host_ids)
        async with self._tx() as conn:
            found = await conn.fetch(Q["reap"], now, stale_before, hosts)
            await conn.execute(Q["delete_stale_processes"], stale_before, hosts, now)
        return [ReapedJob(str(r[0]), r[1], r[2], r[3], r[4] or "") for r in found]

    # -- cron ----------------------------------------------------------------------------
    async def _fire_schedule(
        self, cas: Params, prepared: list[tuple[Any, ...]], now: float
    ) -> bool:
        async with self._tx() as conn:
            if await conn.fetchval(Q["fire_schedule"], *cas) is None:
                return False
            if prepared[0][6] is None:
                await statements.insert_plain(conn, prepared, now)
            else:
                await statements.insert_with_keys(conn, prepared, now)
        self._notifier.send({prepared[0][1]})
        return True

    # -- workflows and retention -------------------------------------------------------------
    async def cascade_dead(self, now: float, limit: int = 1000) -> int:
        """End waiting dependents of dead dependencies, a bounded batch (see `Storage`)."""
        async with self._tx() as conn:
            return await workflows.cascade(conn, now, limit)

    async def _purge_jobs(self, queue: str, status: str, before: float, limit: int) -> int:
        return int(await self._fetchval(Q["purge_jobs"], queue, status, before, limit))

    async def purge_metrics(self, before_minute: int) -> int:
        """Delete old metric and sample rows."""
        return int(await self._fetchval(Q["purge_metrics"], before_minute))

    async def fold_counts(self) -> int:
        """Fold the count rows of closed connections into one row per queue and status."""
        return int(await self._fetchval(Q["fold_job_counts"]))

    def pool_capacity(self) -> int:
        """Operations that can run at once: one per pooled connection."""
        return self._max_size


# -- helpers ------------------------------------------------------------------------------


__all__ = ["PostgresStorage"]
