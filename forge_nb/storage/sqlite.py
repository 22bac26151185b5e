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
import contextlib
import functools
import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from forge_nb.config import DatabaseUrl
from forge_nb.errors import (
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
from forge_nb.storage.schema import (
    VERSION_TABLE,
    latest_version,
    load_migrations,
    load_queries,
    split_statements,
)
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

Q = load_queries("sqlite")
#: Most arms of one claim statement (SQLite allows 500 SELECTs in one compound): beyond,
#: the claim filters by a JSON list of kinds instead (correct, but it sorts).
MAX_ARMS = 500
log = logging.getLogger("forge_nb.storage")
T = TypeVar("T")
BUSY_TIMEOUT_S = 30.0
#: Pauses between non-blocking retries of a busy write before it waits on the thread.
BUSY_RETRY_PAUSES_S = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016)
MAX_PAGE = 1000
#: How often other processes' commits are looked for (cross-process wake-up latency).
WATCH_INTERVAL_S = 0.01
#: Rows per multi-row INSERT: one statement step per chunk costs much less than
#: executemany's step per row. 8 parameters each stay under 999, the variable limit of
#: SQLite builds before 3.32 that some distributions' Pythons still link.
INSERT_CHUNK = 120
#: Shortest pause between two WAL checkpoints while writes keep coming.
CHECKPOINT_PAUSE_S = 0.05
#: WAL length (pages) past which the writer waits for a checkpoint that restarts the WAL:
#: a non-stop burst of writes never leaves a gap for a PASSIVE checkpoint to catch up in.
WAL_RESTART_PAGES = 2000
#: How long a RESTART checkpoint waits for other connections' readers and writers. One that
#: cannot finish (a reader in another process holds an old snapshot) doubles the WAL length
#: before the next try, so a long reader costs a few such waits, not one per write.
WAL_RESTART_WAIT_MS = 250
#: The WAL file is cut back to this size when it restarts (it never shrinks otherwise).
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
_INSERT_HEAD = Q["insert_job"].split("VALUES")[0] + "VALUES "


@functools.cache
def _insert_sql(rows: int) -> str:
    """``insert_job`` for ``rows`` rows in one statement."""
    return _INSERT_HEAD + ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows)


class _Busy(Exception):
    """Another process holds the write lock (raised only by the non-waiting attempt)."""


def _transaction(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(conn, *args)`` inside BEGIN IMMEDIATE … COMMIT, waiting for the lock."""
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    try:
        return _run_transaction(conn, fn, *args)
    finally:
        conn.execute("PRAGMA busy_timeout = 0")


def _try_transaction(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Like `_transaction` but raise `_Busy` at once if the write lock is taken."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise _Busy from exc
        raise
    return _finish_transaction(conn, fn, *args)


def _run_transaction(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    conn.execute("BEGIN IMMEDIATE")
    return _finish_transaction(conn, fn, *args)


def _finish_transaction(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    try:
        result = fn(conn, *args)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


class _Checkpointer:
    """Copies the WAL back into the database file on its own thread and connection.

    SQLite's automatic checkpoint runs inside the commit that fills the WAL, and the writer
    commits on the event loop: every hundred or so commits one stalled the loop (and every
    job in it) for milliseconds of fsync. Here writes only nudge this thread, which runs
    PASSIVE checkpoints (they block neither writers nor readers) at most every
    `CHECKPOINT_PAUSE_S`, even while the loop is busy with a long burst of writes. When a
    burst has left the WAL longer than `restart_pages` it raises `restart_needed`, and
    the writer's next write first awaits a RESTART checkpoint (without blocking the loop).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._nudged = threading.Event()
        self._stopping = False
        self.restart_needed = False
        self.restart_pages = WAL_RESTART_PAGES
        self._thread = threading.Thread(target=self._run, name="forge-nb checkpoint", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        """Something was written: checkpoint soon."""
        self._nudged.set()

    def restarted(self, finished: bool) -> None:
        """The writer ran the RESTART asked for; if it could not finish, wait for twice the WAL."""
        self.restart_needed = False
        self.restart_pages = WAL_RESTART_PAGES if finished else self.restart_pages * 2

    def stop(self) -> None:
        """End the thread (blocking: call it off the event loop)."""
        self._stopping = True
        self._nudged.set()
        self._thread.join(timeout=BUSY_TIMEOUT_S)

    def _run(self) -> None:
        connect = sqlite3.connect(self._path, timeout=1.0, check_same_thread=False)
        with contextlib.closing(connect) as conn:
            while True:
                self._nudged.wait()
                if self._stopping:
                    return
                self._nudged.clear()
                try:
                    _, wal_pages, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.restart_needed = wal_pages > self.restart_pages
                except sqlite3.Error as exc:  # busy (another checkpointer), or a closing file
                    log.debug("WAL checkpoint of %s skipped: %s", self._path, exc)
                time.sleep(CHECKPOINT_PAUSE_S)


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
        self._checkpointer: _Checkpointer | None = None
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
                    return _try_transaction(writer._conn, fn, *args)
                except _Busy:
                    if pause is None:
                        break
                    await asyncio.sleep(pause)
                except sqlite3.IntegrityError:
                    raise
                except sqlite3.DatabaseError as exc:
                    raise StorageError(f"SQLite error on {self.safe_url}: {exc}") from exc
            return await self._call(writer, _transaction, fn, *args)

    async def _restart_wal(self) -> bool:
        """Checkpoint the whole WAL so it starts over (our writer idle, the loop free).

        False when it could not finish within `WAL_RESTART_WAIT_MS`.
        """
        try:
            return await self._read(_restart_checkpoint)
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
            await self._call(self._writer, _check_ownership)
            await self._call(self._writer, _set_pragmas)
            await self._writer.execute("PRAGMA busy_timeout = 0")  # see `_write`
            await self.migrate()
            self._reader = await self._connect(BUSY_TIMEOUT_S)
            self._checkpointer = _Checkpointer(self.path)
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
        return await self._write(_migrate)

    async def schema_version(self) -> int:
        """Newest applied migration."""
        return await self._call(self._writer, _current_version)

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
                version = await self._read(_data_version)
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
        results = await self._write(_enqueue, prepared, now, new_queues)
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
                params += [json.dumps(arms), _json_list(sorted(exclude_versions))]
            else:
                sql = _claim_sql(len(arms), bool(exclude_versions))
                params += arms
                if exclude_versions:
                    params.append(_json_list(sorted(exclude_versions)))
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
        return await self._write(_finish, host_id, finishes, now)

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
        where, params = _filter_sql(filter)
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
        return _counts(names, found)

    async def retry(self, job_id: str, now: float) -> Status | None:
        """Dead/failed → pending with attempts reset."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return None
        try:
            return await self._write(_retry_one, key, now)
        except sqlite3.IntegrityError:
            raise ValueError(
                f"cannot retry job {job_id}: another live job holds its unique key"
            ) from None

    async def retry_many(self, filter: JobFilter, now: float) -> int:
        """Retry every dead/failed job matching the filter (unique-key clashes skipped)."""
        statuses = retryable_statuses(filter)
        where, params = _filter_sql(JobFilter(None, filter.queue, filter.kind, filter.search))
        where.append(f"status IN ({','.join('?' * len(statuses))})")
        params.extend(statuses)
        return await self._write(_retry_where, " AND ".join(where), params, now)

    async def delete(self, job_id: str) -> Status | None:
        """Delete a non-running job."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return None
        return await self._write(_delete_one, key)

    async def delete_many(self, filter: JobFilter) -> int:
        """Delete every non-running job matching the filter."""
        where, params = _filter_sql(filter)
        where.append("status <> 'running'")
        return await self._write(_delete_where, " AND ".join(where), params)

    async def request_cancel(self, job_id: str, now: float) -> Status | None:
        """Cancel now (waiting jobs) or flag for the owner (running jobs)."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return None
        return await self._write(_cancel, key, now)

    async def cancel_requests(self, host_id: str) -> list[str]:
        """Flagged running jobs of one host."""
        return [str(r[0]) for r in await self._fetchall(Q["cancel_requests"], (host_id,))]

    # -- queues --------------------------------------------------------------------------
    async def ensure_queue(self, name: str, **knobs: Any) -> QueueConfig:
        """Create if missing, then apply knobs."""
        check_name(name, "queue")
        clean = check_queue_knobs(knobs)
        return await self._write(_upsert_queue, name, clean, True)

    async def update_queue(self, name: str, **knobs: Any) -> QueueConfig:
        """Apply knobs to an existing queue."""
        clean = check_queue_knobs(knobs)
        return await self._write(_upsert_queue, name, clean, False)

    async def queues(self) -> list[QueueConfig]:
        """Every queue's config."""
        return [rows.queue_config(r) for r in await self._fetchall(Q["queue_configs"])]

    # -- processes -----------------------------------------------------------------------
    async def register_processes(self, processes: Sequence[ProcessRecord]) -> None:
        """Insert or replace slot rows."""
        params = [rows.process_params(p, _json_list) for p in processes]
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
        listed = None if kinds is None else _json_list(kinds)

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
        return await self._write(_reap, now, stale_before, json.dumps(list(host_ids)))

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
            _enqueue(c, prepared, now, {job.queue})
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
        return await self._write(_take_tokens, scope, n, now)

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
        return await self._write(_purge, queue, status, finished_before, limit)

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


def _check_ownership(c: sqlite3.Connection) -> None:
    """Refuse files that hold someone else's tables (before changing anything)."""
    tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    tables.discard("sqlite_sequence")
    if tables and VERSION_TABLE not in tables:
        raise NotAForgeDatabase(
            "this SQLite file holds tables forge-nb did not create "
            f"({', '.join(sorted(tables)[:5])}); point forge-nb at a new file"
        )


def _data_version(c: sqlite3.Connection) -> int:
    return int(c.execute("PRAGMA data_version").fetchone()[0])


def _set_pragmas(c: sqlite3.Connection) -> None:
    c.execute("PRAGMA journal_mode = WAL")
    c.execute("PRAGMA synchronous = NORMAL")
    c.execute("PRAGMA wal_autocheckpoint = 0")  # `_Checkpointer` does it, off the loop
    c.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")


def _restart_checkpoint(c: sqlite3.Connection) -> bool:
    """RESTART checkpoint waiting at most `WAL_RESTART_WAIT_MS`; True if it finished."""
    c.execute(f"PRAGMA busy_timeout = {WAL_RESTART_WAIT_MS}")
    try:
        busy = c.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0]
    finally:
        c.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return not busy


def _current_version(c: sqlite3.Connection) -> int:
    exists = c.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
    ).fetchone()
    if not exists:
        return 0
    return int(c.execute(f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}").fetchone()[0])


def _migrate(c: sqlite3.Connection) -> list[int]:
    _check_ownership(c)
    current = _current_version(c)
    known = latest_version("sqlite")
    if current > known:
        raise SchemaTooNew(
            f"the database is at schema version {current} but this forge-nb knows up to "
            f"{known}; upgrade forge-nb"
        )
    c.execute(
        f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER PRIMARY KEY, applied_at REAL)"
    )
    applied = []
    for version, script in load_migrations("sqlite"):
        if version <= current:
            continue
        for statement in split_statements(script):
            c.execute(statement)
        c.execute(
            f"INSERT INTO {VERSION_TABLE} (version, applied_at) "
            "VALUES (?, (julianday('now') - 2440587.5) * 86400.0)",
            (version,),
        )
        applied.append(version)
    return applied


def _enqueue(
    c: sqlite3.Connection, prepared: list[tuple[Any, ...]], now: float, new_queues: set[str]
) -> list[EnqueueResult]:
    for queue in sorted(new_queues):
        c.execute(Q["ensure_queue_row"], (queue,))
    if all(row[6] is None for row in prepared):
        # Fast path: AUTOINCREMENT ids are consecutive under the write lock, in row order.
        first = _insert_plain(c, prepared, now)
        _count_enqueued(c, [row[1] for row in prepared], now)
        return [EnqueueResult(str(first + i), "created", "pending") for i in range(len(prepared))]
    results: list[EnqueueResult] = []
    for row in prepared:
        cursor = c.execute(Q["insert_unique_job"], (*row, now))
        if cursor.rowcount == 1:
            results.append(EnqueueResult(str(cursor.lastrowid), "created", "pending"))
        else:
            holder = c.execute(Q["live_job_by_unique_key"], (row[6],)).fetchone()
            results.append(EnqueueResult(str(holder[0]), "duplicate", holder[1]))
    created = [row[1] for row, r in zip(prepared, results, strict=True) if r.outcome == "created"]
    _count_enqueued(c, created, now)
    return results


def _insert_plain(c: sqlite3.Connection, prepared: list[tuple[Any, ...]], now: float) -> int:
    """Insert rows without unique keys in order, in chunks; returns the first new id."""
    last = 0
    for start in range(0, len(prepared), INSERT_CHUNK):
        chunk = prepared[start : start + INSERT_CHUNK]
        params = [v for row in chunk for v in (*row, now)]
        last = c.execute(_insert_sql(len(chunk)), params).lastrowid or 0
    return last - len(prepared) + 1


def _count_enqueued(c: sqlite3.Connection, queues: list[str], now: float) -> None:
    """New jobs (one entry per job: its queue) into the minute's metric and the live counts."""
    minute = int(now // 60)
    per_queue = Counter(queues).items()
    c.executemany(Q["count_enqueued"], [(minute, q, n) for q, n in per_queue])
    c.executemany(Q["count_pending"], [(n, q) for q, n in per_queue])


def _finish(
    c: sqlite3.Connection, host_id: str, finishes: Sequence[Finish], now: float
) -> list[str]:
    done, events = [], []
    for f in finishes:
        key = int(f.job_id)
        if f.status == "done":
            cursor = c.execute(Q["finish_done"], (f.result_json, now, key, host_id, f.attempt))
        else:
            cursor = c.execute(
                Q["finish_other"],
                (
                    f.status,
                    f.error,
                    f.traceback,
                    f.scheduled_at,
                    now,
                    1 if f.refund_attempt else 0,
                    key,
                    host_id,
                    f.attempt,
                ),
            )
        if cursor.rowcount:
            done.append(f.job_id)
            if f.event != "done":
                events.append((key, now, f.event, f.attempt, f.error))
    if events:
        c.executemany(Q["insert_event"], events)
    return done


def _filter_sql(filter: JobFilter) -> tuple[list[str], list[Any]]:
    """WHERE terms for a filter: every value is a bound parameter."""
    check_filter(filter)
    where: list[str] = []
    params: list[Any] = []
    if filter.status is not None:
        if filter.status not in STATUSES:
            raise ValueError(f"unknown status {filter.status!r}; use one of {', '.join(STATUSES)}")
        where.append("status = ?")
        params.append(filter.status)
    if filter.queue is not None:
        where.append("queue = ?")
        params.append(filter.queue)
    if filter.kind is not None:
        where.append("kind = ?")
        params.append(filter.kind)
    if filter.search:
        where.append("payload LIKE ? ESCAPE '\\'")
        params.append(escape_like(filter.search))
    return where, params


def _counts(names: list[Any], found: list[Any]) -> dict[str, dict[Status, int]]:
    out: dict[str, dict[Status, int]] = {}
    for (name,) in names:
        out[name] = dict.fromkeys(STATUSES, 0)
    for queue, status, n in found:
        out.setdefault(queue, dict.fromkeys(STATUSES, 0))[status] = n
    return dict(sorted(out.items()))


def _retry_one(c: sqlite3.Connection, key: int, now: float) -> Status | None:
    found = c.execute(Q["job_status"], (key,)).fetchone()
    if found is None:
        return None
    if c.execute(Q["retry"], (now, key)).rowcount:
        c.execute(Q["insert_event"], (key, now, "retried", 0, None))
    return cast(Status, found[0])


def _retry_where(c: sqlite3.Connection, where: str, params: list[Any], now: float) -> int:
    ids = [r[0] for r in c.execute(f"SELECT id FROM forge_nb_jobs WHERE {where}", params)]
    retried = 0
    for key in ids:
        try:
            retried += c.execute(Q["retry"], (now, key)).rowcount
        except sqlite3.IntegrityError:
            continue  # a live job holds its unique key: leave this one dead
        c.execute(Q["insert_event"], (key, now, "retried", 0, None))
    return retried


def _delete_one(c: sqlite3.Connection, key: int) -> Status | None:
    found = c.execute(Q["job_status"], (key,)).fetchone()
    if found is None:
        return None
    if c.execute(Q["delete_job"], (key,)).rowcount:
        c.execute(Q["delete_events"], (key,))
    return cast(Status, found[0])


def _delete_where(c: sqlite3.Connection, where: str, params: list[Any]) -> int:
    ids = [(r[0],) for r in c.execute(f"SELECT id FROM forge_nb_jobs WHERE {where}", params)]
    c.executemany(Q["delete_job"], ids)
    c.executemany(Q["delete_events"], ids)
    return len(ids)


def _cancel(c: sqlite3.Connection, key: int, now: float) -> Status | None:
    found = c.execute(Q["job_status"], (key,)).fetchone()
    if found is None:
        return None
    cancelled = c.execute(Q["cancel_waiting"], (now, now, key)).fetchone()
    if cancelled is not None:
        c.execute(Q["insert_event"], (key, now, "cancelled", cancelled[0], "cancelled"))
        return "dead"
    if c.execute(Q["cancel_running"], (now, key)).rowcount:
        return "running"
    return cast(Status, found[0])


def _upsert_queue(
    c: sqlite3.Connection, name: str, knobs: dict[str, Any], create: bool
) -> QueueConfig:
    if create:
        c.execute(Q["ensure_queue_row"], (name,))
    if knobs:
        sets = ", ".join(f"{k} = ?" for k in knobs)  # keys checked against QUEUE_KNOBS
        c.execute(f"UPDATE forge_nb_queues SET {sets} WHERE name = ?", [*knobs.values(), name])
    found = c.execute(Q["queue_config"], (name,)).fetchone()
    if found is None:
        raise UnknownQueue(f"unknown queue {name!r}")
    return rules.checked_config(rows.queue_config(found))


def _reap(
    c: sqlite3.Connection, now: float, stale_before: float, hosts_json: str
) -> list[ReapedJob]:
    reaped = []
    for key, kind, queue, attempts, max_attempts, host in c.execute(
        Q["stale_running_jobs"], (stale_before, hosts_json)
    ).fetchall():
        status = rules.after_lost_attempt(attempts, max_attempts)
        if c.execute(Q["reap_job"], (status, now, now, key, attempts)).rowcount:
            c.execute(Q["insert_event"], (key, now, "worker_lost", attempts, "worker lost"))
            reaped.append(ReapedJob(str(key), kind, queue, status, host or ""))
    c.execute(Q["delete_stale_processes"], (stale_before, hosts_json))
    return reaped


def _take_tokens(c: sqlite3.Connection, scope: str, n: float, now: float) -> float:
    bucket = rules.bucket_of(c.execute(Q["rate_limit"], (scope,)).fetchone(), scope)
    wait = rules.tokens_wait(bucket, scope, n, now)
    if wait == 0.0:
        c.execute(Q["set_tokens"], (rules.tokens_now(bucket, now) - n, now, scope))
    return wait


def _purge(c: sqlite3.Connection, queue: str, status: str, before: float, limit: int) -> int:
    ids = [(r[0],) for r in c.execute(Q["purge_jobs"], (queue, status, before, limit)).fetchall()]
    c.executemany(Q["delete_events"], ids)
    return len(ids)


__all__ = ["SqliteStorage"]


@functools.lru_cache(maxsize=32)
def _claim_sql(arms: int, versions: bool = False) -> str:
    """The ``claim_kinds`` statement with ``arms`` arms (kinds are ?5, ?6, …; the code versions
    not to claim, when ``versions``, follow them as one JSON array)."""
    if not versions:
        return build_claim(Q["claim_kinds"], Q["claim_arm"], arms, lambda i: f"?{5 + i}")
    arm = Q["claim_arm_versions"].replace("{excluded}", f"?{5 + arms}")
    return build_claim(Q["claim_kinds"], arm, arms, lambda i: f"?{5 + i}")


def _json_list(values: Collection[str]) -> str:
    return json.dumps(list(values))
