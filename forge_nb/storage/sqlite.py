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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import aiosqlite

from forge_nb.config import DatabaseUrl
from forge_nb.errors import (
    StorageError,
)
from forge_nb.storage import rows
from forge_nb.storage import sqlite_flow as flow
from forge_nb.storage import sqlite_statements as statements
from forge_nb.storage import sqlite_transactions as transactions
from forge_nb.storage import sqlite_workflows as workflows
from forge_nb.storage.core import ClaimRequest, EnqueueBatch, Params, SqlCore
from forge_nb.storage.records import (
    EnqueueResult,
    Finish,
    JobFilter,
    QueueConfig,
    ReapedJob,
    Status,
)
from forge_nb.storage.sqlite_statements import BUSY_TIMEOUT_S, Q
from forge_nb.storage.validation import retryable_statuses

#: Most arms of one claim statement (SQLite allows 500 SELECTs in one compound): beyond,
#: the claim filters by a JSON list of kinds instead (correct, but it sorts).
MAX_ARMS = 500
log = logging.getLogger("forge_nb.storage")
T = TypeVar("T")
#: Pauses between non-blocking retries of a busy write before it waits on the thread.
BUSY_RETRY_PAUSES_S = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016)
#: How often other processes' commits are looked for (cross-process wake-up latency).
WATCH_INTERVAL_S = 0.01


class SqliteStorage(SqlCore):
    """`Storage` on one SQLite file (the embedded default)."""

    backend = "sqlite"
    Q = Q

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
        await self._call(conn, statements.limit_variables)
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

    # -- what the SQL core asks of a dialect ------------------------------------------------
    async def _select(self, name: str, *params: Any) -> list[Any]:
        return await self._fetchall(Q[name], params)

    async def _change(self, name: str, *params: Any) -> list[Any]:
        sql = Q[name]
        return await self._write(lambda c: c.execute(sql, params).fetchall())

    async def _change_all(self, batches: Sequence[tuple[str, Sequence[Params]]]) -> None:
        def run(c: sqlite3.Connection) -> None:
            for name, params in batches:
                c.executemany(Q[name], params)

        await self._write(run)

    def _list_param(self, values: Sequence[str]) -> Any:
        return statements.json_list(values)

    def _key_list_param(self, keys: Sequence[int]) -> Any:
        return json.dumps(list(keys))

    def _placeholder(self, n: int) -> str:
        return f"?{n}"

    async def _select_sql(self, sql: str, params: Params) -> list[Any]:
        return await self._fetchall(sql, params)

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
            await self._call(self._writer, statements.check_build)
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
    async def _insert(self, batch: EnqueueBatch, now: float) -> list[EnqueueResult]:
        prepared, flows, links, more = batch
        queues = {row[1] for row in prepared}
        new_queues = queues - self._known_queues
        results = await self._write(flow.enqueue, prepared, flows, now, new_queues, links, more)
        self._known_queues |= queues  # only once committed
        return results

    async def _claim_rows(self, claim: ClaimRequest) -> list[Any]:
        params: list[Any] = [claim.host_id, claim.now, claim.queue, claim.limit]
        arms, excluded = claim.arms, claim.excluded
        if arms is None:
            sql = Q["claim"]
        elif len(arms) > MAX_ARMS:
            sql = Q["claim_kinds_filtered"]
            params += [json.dumps(arms), statements.json_list(excluded)]
        else:
            sql = statements.claim_sql(len(arms), bool(excluded))
            params += arms
            if excluded:
                params.append(statements.json_list(excluded))
        return await self._write(lambda c: c.execute(sql, params).fetchall())

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
        done, promoting = await self._write(statements.finish, host_id, finishes, now)
        if promoting and self._on_change is not None:
            self._on_change(None)  # a dependent may be pending now: this process claims at once
        return done

    async def update_progress(self, updates: Sequence[tuple[str, float, str]]) -> None:
        """Store progress of running jobs."""
        params = [(f, m, rows.parse_job_id(i)) for i, f, m in updates]
        if params:
            await self._write(lambda c: c.executemany(Q["update_progress"], params))

    # -- jobs: admin ---------------------------------------------------------------------
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
        where, params = self.filter_terms(JobFilter(None, filter.queue, filter.kind, filter.search))
        marks = ", ".join(self._placeholder(len(params) + i) for i in range(1, len(statuses) + 1))
        params.extend(statuses)
        where.append(f"status IN ({marks})")
        if filter.queue is None:
            where.append(Q["status_queues_term"].replace("{statuses}", marks))
        return await self._write(statements.retry_where, " AND ".join(where), params, now)

    async def delete(self, job_id: str) -> Status | None:
        """Delete a non-running job."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return None
        return await self._write(statements.delete_one, key)

    async def delete_many(self, filter: JobFilter) -> int:
        """Delete every non-running job matching the filter."""
        where, params = self.filter_terms(filter)
        where.append("status <> 'running'")
        if filter.status is not None and filter.queue is None:
            params.append(filter.status)
            mark = self._placeholder(len(params))
            where.append(Q["status_queues_term"].replace("{statuses}", mark))
        return await self._write(statements.delete_where, " AND ".join(where), params)

    async def request_cancel(self, job_id: str, now: float) -> Status | None:
        """Cancel now (waiting jobs) or flag for the owner (running jobs)."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return None
        return await self._write(statements.cancel, key, now)

    # -- queues --------------------------------------------------------------------------
    async def _apply_queue_knobs(
        self, name: str, knobs: Mapping[str, Any], create: bool
    ) -> QueueConfig:
        return await self._write(statements.upsert_queue, name, knobs, create)

    # -- processes -----------------------------------------------------------------------
    # -- shipped code ------------------------------------------------------------------------
    async def reap(
        self, now: float, stale_before: float, host_ids: Sequence[str] = ()
    ) -> list[ReapedJob]:
        """Fail the running jobs of dead processes with ``worker lost``."""
        return await self._write(statements.reap, now, stale_before, json.dumps(list(host_ids)))

    # -- cron ----------------------------------------------------------------------------
    async def _fire_schedule(
        self, cas: Params, prepared: list[tuple[Any, ...]], now: float
    ) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            if not c.execute(Q["fire_schedule"], cas).rowcount:
                return False
            statements.enqueue(c, prepared, now, {prepared[0][1]})
            return True

        return await self._write(run)

    # -- metrics and retention ---------------------------------------------------------------
    async def _purge_jobs(self, queue: str, status: str, before: float, limit: int) -> int:
        return await self._write(statements.purge, queue, status, before, limit)

    async def purge_metrics(self, before_minute: int) -> int:
        """Delete old metric and sample rows."""

        def run(c: sqlite3.Connection) -> int:
            n = int(c.execute(Q["purge_metrics"], (before_minute,)).rowcount)
            n += int(c.execute(Q["purge_rollups"], (before_minute,)).rowcount)
            return n + int(c.execute(Q["purge_samples"], (before_minute,)).rowcount)

        return await self._write(run)

    async def cascade_dead(self, now: float, limit: int = 1000) -> int:
        """End waiting dependents of dead dependencies, a bounded batch (see `Storage`)."""
        return await self._write(workflows.cascade, now, limit)

    async def fold_counts(self) -> int:
        """Nothing to fold: one writer keeps one count row per queue and status."""
        return 0

    def pool_capacity(self) -> int:
        """One writer and one reader connection."""
        return 2


# -- functions run in the database thread -------------------------------------------------


__all__ = ["SqliteStorage"]
