"""What SQLite's transactions run: plain functions on a `sqlite3.Connection`.

`SqliteStorage` (forge_nb/storage/sqlite.py) decides where a transaction runs (inline
on the loop when the lock is free, else on the writer's thread) and hands it one of
these; they read and write with the statements of sql/sqlite/queries.sql.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any, cast

from forge_nb.errors import (
    DeadDependency,
    NotAForgeDatabase,
    SchemaTooNew,
    StorageError,
    UnknownQueue,
)
from forge_nb.storage import extras, rows, rules
from forge_nb.storage import sqlite_workflows as workflows
from forge_nb.storage.kinds import build_claim
from forge_nb.storage.records import (
    STATUSES,
    EnqueueResult,
    Finish,
    QueueConfig,
    ReapedJob,
    Status,
    created_results,
)
from forge_nb.storage.schema import (
    VERSION_TABLE,
    latest_version,
    load_migrations,
    load_queries,
    split_statements,
)
from forge_nb.storage.validation import has_unique_keys

Q = load_queries("sqlite")
#: A queue's page reads the statuses one at a time (see ``list_queue_jobs``).
Q["list_queue_jobs"] = Q["list_queue_jobs"].replace("{statuses}", json.dumps(STATUSES))
BUSY_TIMEOUT_S = 30.0
#: Bound variables one statement may take: SQLite's default before 3.32, which a build may
#: still set (SQLITE_MAX_VARIABLE_NUMBER). Every connection is held to it
#: (`limit_variables`), so every build behaves, and is tested, as such a one.
VARIABLE_LIMIT = 999
#: Rows per multi-row INSERT: one statement step per chunk costs much less than
#: executemany's step per row. ``INSERT_ROW`` holds one row's parameters; a chunk's stay
#: within `VARIABLE_LIMIT` (bigger chunks gain nothing that shows).
INSERT_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
INSERT_CHUNK = VARIABLE_LIMIT // INSERT_ROW.count("?")
#: How long a RESTART checkpoint waits for other connections' readers and writers. One that
#: cannot finish (a reader in another process holds an old snapshot) doubles the WAL length
#: before the next try, so a long reader costs a few such waits, not one per write.
WAL_RESTART_WAIT_MS = 250
#: The WAL file is cut back to this size when it restarts (it never shrinks otherwise).
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024


def limit_variables(c: sqlite3.Connection) -> None:
    """Hold ``c`` to `VARIABLE_LIMIT` bound variables per statement, whatever its build."""
    c.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, VARIABLE_LIMIT)


@functools.cache
def insert_sql(rows: int) -> str:
    """``insert_jobs`` for ``rows`` rows in one statement."""
    return Q["insert_jobs"].replace("{rows}", ",".join([INSERT_ROW] * rows))


#: The oldest SQLite whose SQL forge-nb writes: ``RETURNING`` came in 3.35.0.
MIN_SQLITE = (3, 35, 0)


def check_build(c: sqlite3.Connection) -> None:
    """Refuse an SQLite too old for forge-nb's SQL, or built without JSON, with what to do
    (else the first statement that needs it fails with a bare syntax error)."""
    version = c.execute("SELECT sqlite_version()").fetchone()[0]
    check_version(version)
    try:
        c.execute("SELECT json_valid('[]')")
    except sqlite3.OperationalError:
        raise StorageError(
            f"this Python's SQLite {version} was built without its JSON functions, which "
            "forge-nb needs; use a Python built with a standard SQLite, or Postgres"
        ) from None


def check_version(version: str) -> None:
    """``version`` (as ``sqlite_version()`` gives it) is at least `MIN_SQLITE`, else a
    StorageError that says so."""
    found = tuple(int(part) for part in version.split(".")[:3])
    if found < MIN_SQLITE:
        needed = ".".join(map(str, MIN_SQLITE))
        raise StorageError(
            f"forge-nb needs SQLite {needed} or newer, and this Python's sqlite3 module links "
            f"SQLite {version} (Ubuntu 20.04's, for one). Use a Python built with a newer "
            "SQLite (python.org's installers, pyenv and conda bring their own), or Postgres"
        )


def check_ownership(c: sqlite3.Connection) -> None:
    """Refuse files that hold someone else's tables (before changing anything)."""
    tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    tables.discard("sqlite_sequence")
    if tables and VERSION_TABLE not in tables:
        raise NotAForgeDatabase(
            "this SQLite file holds tables forge-nb did not create "
            f"({', '.join(sorted(tables)[:5])}); point forge-nb at a new file"
        )


def data_version(c: sqlite3.Connection) -> int:
    return int(c.execute("PRAGMA data_version").fetchone()[0])


#: Bytes per database page, for files created from now on (SQLite keeps an existing file's).
#: Each commit writes every page it changed to the WAL whole, and an enqueue changes about
#: ten (the row, five indexes, the counts, the minute's metrics, the id sequence): smaller
#: pages make each commit cheaper. Half the default: a row of up to about 2 KB (payload
#: included) still fits in its page, and scans read twice as many, smaller, pages.
PAGE_SIZE = 2048


def set_pragmas(c: sqlite3.Connection) -> None:
    c.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # before WAL: a new file takes it from here
    c.execute("PRAGMA journal_mode = WAL")
    c.execute("PRAGMA synchronous = NORMAL")
    c.execute("PRAGMA wal_autocheckpoint = 0")  # `_Checkpointer` does it, off the loop
    c.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")


def restart_checkpoint(c: sqlite3.Connection) -> bool:
    """RESTART checkpoint waiting at most `WAL_RESTART_WAIT_MS`; True if it finished."""
    c.execute(f"PRAGMA busy_timeout = {WAL_RESTART_WAIT_MS}")
    try:
        busy = c.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0]
    finally:
        c.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return not busy


def current_version(c: sqlite3.Connection) -> int:
    exists = c.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
    ).fetchone()
    if not exists:
        return 0
    return int(c.execute(f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}").fetchone()[0])


def migrate(c: sqlite3.Connection) -> list[int]:
    check_ownership(c)
    current = current_version(c)
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


def enqueue(
    c: sqlite3.Connection,
    prepared: list[tuple[Any, ...]],
    now: float,
    new_queues: set[str],
    links: Sequence[tuple[int, list[int]]] = (),
    more: extras.Extras | None = None,
) -> list[EnqueueResult]:
    """Insert a batch; jobs with dependencies (``links``) are wired to them, and jobs with
    tags or a context (``more``) get their rows."""
    results = insert_batch(c, prepared, now, new_queues)
    insert_extras(c, results, more)
    return workflows.link_dependencies(c, results, links, now) if links else results


def insert_extras(
    c: sqlite3.Connection, results: list[EnqueueResult], more: extras.Extras | None
) -> None:
    """The tag and context rows of a batch's created jobs."""
    if more:
        c.executemany(Q["insert_job_tag"], extras.created_tag_rows(results, more.tags))
        c.executemany(Q["insert_job_context"], extras.context_rows(results, more))


def insert_batch(
    c: sqlite3.Connection, prepared: list[tuple[Any, ...]], now: float, new_queues: set[str]
) -> list[EnqueueResult]:
    for queue in sorted(new_queues):
        c.execute(Q["ensure_queue_row"], (queue,))
    if not has_unique_keys(prepared):
        # Fast path: AUTOINCREMENT ids are consecutive under the write lock, in row order.
        first = insert_plain(c, prepared, now)
        count_enqueued(c, [row[1] for row in prepared], now)
        return created_results(range(first, first + len(prepared)))
    results: list[EnqueueResult] = []
    for row in prepared:
        cursor = c.execute(Q["insert_unique_job"], (*row, now))
        if cursor.rowcount == 1:
            results.append(EnqueueResult(str(cursor.lastrowid), "created", "pending"))
        else:
            holder = c.execute(Q["live_job_by_unique_key"], (row[6],)).fetchone()
            results.append(EnqueueResult(str(holder[0]), "duplicate", holder[1]))
    created = [row[1] for row, r in zip(prepared, results, strict=True) if r.outcome == "created"]
    count_enqueued(c, created, now)
    return results


def insert_plain(c: sqlite3.Connection, prepared: list[tuple[Any, ...]], now: float) -> int:
    """Insert rows without unique keys in order, in chunks; returns the first new id."""
    last = 0
    for start in range(0, len(prepared), INSERT_CHUNK):
        chunk = prepared[start : start + INSERT_CHUNK]
        params: list[Any] = []
        for row in chunk:  # extending in C: a fifth of a comprehension's cost per value
            params += row
            params.append(now)
        last = c.execute(insert_sql(len(chunk)), params).lastrowid or 0
    return last - len(prepared) + 1


def count_enqueued(c: sqlite3.Connection, queues: list[str], now: float) -> None:
    """New jobs (one entry per job: its queue) into the minute's metric and the live counts."""
    minute = int(now // 60)
    per_queue = Counter(queues).items()
    c.executemany(Q["count_enqueued"], [(minute, q, n) for q, n in per_queue])
    c.executemany(Q["count_pending"], [(n, q) for q, n in per_queue])


def finish(
    c: sqlite3.Connection, host_id: str, finishes: Sequence[Finish], now: float
) -> tuple[list[str], bool]:
    """Apply outcomes: the ids finalized, and whether a job may have become claimable in
    this transaction (a done job's dependents, or a keyed job's held successor): the caller
    wakes its workers."""
    done, events = [], []
    finished: list[int] = []  # done: their dependents may be ready
    ended: list[int] = []  # any outcome: a keyed one frees its key's place
    logs: list[tuple[Any, ...]] = []  # ended attempts' logs, of jobs finalized here
    stray_logs: list[tuple[Any, ...]] = []  # of runs taken back (reaped, deleted) meanwhile
    for f in finishes:
        key = int(f.job_id)
        if f.status == "done":
            changed = c.execute(
                Q["finish_done"], (f.result_json, now, key, host_id, f.attempt)
            ).rowcount
            if changed:
                finished.append(key)
        else:
            changed = c.execute(
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
            ).rowcount
        if changed:
            ended.append(key)
            done.append(f.job_id)
            if f.event != "done":
                events.append((key, now, f.event, f.attempt, f.error))
        if f.log is not None:
            (logs if changed else stray_logs).append(rows.log_params(key, f.log))
    if events:
        c.executemany(Q["insert_event"], events)
    if logs:
        c.executemany(Q["write_finished_log"], logs)
    if stray_logs:
        c.executemany(Q["write_job_log"], stray_logs)
    promoted = 0
    if finished and c.execute(Q["workflows_exist"]).fetchone()[0]:
        promoted = c.execute(Q["promote_dependents"], (json.dumps(finished),)).rowcount
    keyed = bool(ended) and bool(c.execute(Q["keyed_among"], (json.dumps(ended),)).fetchone()[0])
    return done, promoted > 0 or keyed


def counts(names: list[Any], found: list[Any]) -> dict[str, dict[Status, int]]:
    out: dict[str, dict[Status, int]] = {}
    for (name,) in names:
        out[name] = dict.fromkeys(STATUSES, 0)
    for queue, status, n in found:
        out.setdefault(queue, dict.fromkeys(STATUSES, 0))[status] = n
    return dict(sorted(out.items()))


def retry_one(c: sqlite3.Connection, key: int, now: float) -> Status | None:
    found = c.execute(Q["job_status"], (key,)).fetchone()
    if found is None:
        return None
    if found[0] in ("dead", "failed"):
        dead = workflows.dead_dependency(c, key)
        if dead is not None:
            raise DeadDependency(key, dead)
    flags = c.execute(Q["retry"], (now, key)).fetchone()
    if flags is not None:
        c.execute(Q["insert_event"], (key, now, "retried", 0, None))
        if any(flags):  # it has dependencies or dependents
            workflows.revive(c, key, now)
    return cast(Status, found[0])


def retry_where(c: sqlite3.Connection, where: str, params: list[Any], now: float) -> int:
    ids = [r[0] for r in c.execute(Q["job_ids_where"].replace("{where}", where), params)]
    retried = 0
    for key in ids:
        if workflows.dead_dependency(c, key) is not None:
            continue  # it would wait forever: its dependency must be retried first
        try:
            flags = c.execute(Q["retry"], (now, key)).fetchone()
        except sqlite3.IntegrityError:
            continue  # a live job holds its unique key: leave this one dead
        if flags is None:
            continue
        retried += 1
        c.execute(Q["insert_event"], (key, now, "retried", 0, None))
        if any(flags):
            workflows.revive(c, key, now)
    return retried


def delete_one(c: sqlite3.Connection, key: int) -> Status | None:
    found = c.execute(Q["job_status"], (key,)).fetchone()
    if found is None:
        return None
    if c.execute(Q["delete_job"], (key,)).rowcount:
        c.execute(Q["delete_events"], (key,))
    return cast(Status, found[0])


def delete_where(c: sqlite3.Connection, where: str, params: list[Any]) -> int:
    ids = [(r[0],) for r in c.execute(Q["job_ids_where"].replace("{where}", where), params)]
    c.executemany(Q["delete_job"], ids)
    c.executemany(Q["delete_events"], ids)
    return len(ids)


def cancel(c: sqlite3.Connection, key: int, now: float) -> Status | None:
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


def upsert_queue(
    c: sqlite3.Connection, name: str, knobs: dict[str, Any], create: bool
) -> QueueConfig:
    if create:
        c.execute(Q["ensure_queue_row"], (name,))
    if knobs:
        sets = ", ".join(f"{k} = ?{i}" for i, k in enumerate(knobs, 2))  # keys: QUEUE_KNOBS
        c.execute(Q["set_queue_knobs"].replace("{sets}", sets), [name, *knobs.values()])
    found = c.execute(Q["queue_config"], (name,)).fetchone()
    if found is None:
        raise UnknownQueue(f"unknown queue {name!r}")
    return rules.checked_config(rows.queue_config(found))


def reap(
    c: sqlite3.Connection, now: float, stale_before: float, hosts_json: str
) -> list[ReapedJob]:
    reaped = []
    for key, kind, queue, attempts, max_attempts, host in c.execute(
        Q["stale_running_jobs"], (stale_before, hosts_json, now)
    ).fetchall():
        status = rules.after_lost_attempt(attempts, max_attempts)
        if c.execute(Q["reap_job"], (status, now, now, key, attempts)).rowcount:
            c.execute(Q["insert_event"], (key, now, "worker_lost", attempts, "worker lost"))
            reaped.append(ReapedJob(str(key), kind, queue, status, host or ""))
    c.execute(Q["delete_stale_processes"], (stale_before, hosts_json, now))
    return reaped


def purge(c: sqlite3.Connection, queue: str, status: str, before: float, limit: int) -> int:
    ids = [(r[0],) for r in c.execute(Q["purge_jobs"], (queue, status, before, limit)).fetchall()]
    c.executemany(Q["delete_events"], ids)
    return len(ids)


@functools.lru_cache(maxsize=32)
def claim_sql(arms: int, versions: bool = False) -> str:
    """The ``claim_kinds`` statement with ``arms`` arms (kinds are ?5, ?6, …; the code versions
    not to claim, when ``versions``, follow them as one JSON array)."""
    if not versions:
        return build_claim(Q["claim_kinds"], Q["claim_arm"], arms, lambda i: f"?{5 + i}")
    arm = Q["claim_arm_versions"].replace("{excluded}", f"?{5 + arms}")
    return build_claim(Q["claim_kinds"], arm, arms, lambda i: f"?{5 + i}")


def json_list(values: Collection[str]) -> str:
    return json.dumps(list(values))
