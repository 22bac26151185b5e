"""Opening databases: migrations, foreign or newer databases left untouched, URL errors.

Databases are prepared or inspected behind forge-nb's back with ``sqlite3`` / ``asyncpg``.
"""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import forge_nb.storage
from forge_nb.config import parse_url
from forge_nb.errors import (
    DatabaseUnavailable,
    InvalidDatabaseUrl,
    NotAForgeDatabase,
    SchemaTooNew,
    StorageError,
)
from forge_nb.storage import Storage, open_storage
from forge_nb.storage.records import Finish, JobFilter, JobLog, NewJob, ProcessRecord

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = Path(forge_nb.storage.__file__).parent / "migrations"
VERSION_TABLE = "forge_nb_schema"
TOO_NEW = 9999


def migration_versions(backend: str) -> list[int]:
    """Version numbers of the migration files shipped for ``backend``."""
    return sorted(
        int(p.name[:4]) for p in (MIGRATIONS / backend).glob("[0-9][0-9][0-9][0-9]_*.sql")
    )


def backend_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgres"


def sqlite_path(url: str) -> Path:
    path = parse_url(url).path
    assert path is not None
    return path


async def pg_fetch(url: str, sql: str) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def query(url: str, sql: str) -> list[Any]:
    """Run a statement behind forge-nb's back; rows as tuples."""
    if backend_of(url) == "sqlite":
        with closing(sqlite3.connect(sqlite_path(url))) as conn:
            rows = conn.execute(sql).fetchall()
            conn.commit()
            return rows
    return await pg_fetch(url, sql)


async def undo_from(url: str, version: int, undo: Sequence[str]) -> None:
    """Back to the schema before ``version``: run ``undo`` and forget that migration and any
    later one, so the next open runs them again."""
    for statement in (*undo, f"DELETE FROM {VERSION_TABLE} WHERE version >= {version}"):
        await query(url, statement)


async def sqlite_index_exists(url: str, name: str) -> bool:
    return bool(await query(url, f"SELECT 1 FROM sqlite_master WHERE name = '{name}'"))


async def recorded_versions(url: str) -> list[int]:
    return [r[0] for r in await query(url, f"SELECT version FROM {VERSION_TABLE} ORDER BY version")]


async def snapshot(url: str) -> Any:
    """Everything a failed open could have changed."""
    if backend_of(url) == "sqlite":
        path = sqlite_path(url)
        return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir())}
    tables = await pg_fetch(
        url,
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    )
    return tables, await recorded_versions(url)


# -- migrations ------------------------------------------------------------------------------------


async def test_an_up_to_date_database_applies_nothing(storage: Storage) -> None:
    assert await storage.migrate() == []
    assert await storage.schema_version() == migration_versions(storage.backend)[-1]


async def test_a_fresh_database_gets_every_migration_once(empty_db_url: str) -> None:
    storage = await open_storage(empty_db_url)
    try:
        expected = migration_versions(storage.backend)
        assert await storage.schema_version() == expected[-1]
        assert await storage.migrate() == []
    finally:
        await storage.close()
    assert await recorded_versions(empty_db_url) == expected
    reopened = await open_storage(empty_db_url)
    try:
        assert await reopened.migrate() == []
    finally:
        await reopened.close()
    assert await recorded_versions(empty_db_url) == expected


async def test_a_database_from_a_newer_forge_nb_is_refused_untouched(db_url: str) -> None:
    storage = await open_storage(db_url)  # SQLite: creates the file
    await storage.close()
    await query(db_url, f"INSERT INTO {VERSION_TABLE} (version) VALUES ({TOO_NEW})")
    before = await snapshot(db_url)
    with pytest.raises(SchemaTooNew, match=str(TOO_NEW)):
        await open_storage(db_url)
    assert await snapshot(db_url) == before


async def test_a_sqlite_file_of_another_application_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE foo (x INTEGER)")
        conn.execute("INSERT INTO foo VALUES (1)")
        conn.commit()
    before = path.read_bytes()
    with pytest.raises(NotAForgeDatabase):
        await open_storage(f"sqlite:///{path}")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["other.db"], "no -wal/-shm files left behind"


async def test_a_file_that_is_not_a_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    data = random.Random(7).randbytes(8192)
    path.write_bytes(data)
    with pytest.raises(StorageError) as info:
        await open_storage(f"sqlite:///{path}")
    assert "notes.db" in str(info.value), "the error names the file"
    assert path.read_bytes() == data


MIGRATION_OPENER = """
import asyncio, sys
from forge_nb.storage import open_storage

async def main(url):
    print("ready", flush=True)
    sys.stdin.readline()
    storage = await open_storage(url)
    try:
        print(await storage.schema_version(), flush=True)
    finally:
        await storage.close()

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_processes_opening_a_fresh_database_at_once_migrate_it_once(
    empty_db_url: str,
) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATION_OPENER, empty_db_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(4)
    ]
    try:
        for proc in procs:  # every process imported forge-nb: release them together
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [await asyncio.to_thread(proc.communicate, timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    expected = migration_versions(backend_of(empty_db_url))
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == str(expected[-1])
    assert await recorded_versions(empty_db_url) == expected


# -- URLs and reachability -------------------------------------------------------------------------

MALFORMED_URLS = ["nonsense", "mysql://x", "sqlite://", "sqlite:///:memory:", "postgresql://", ""]


@pytest.mark.parametrize("url", MALFORMED_URLS)
def test_parse_url_rejects_malformed_urls(url: str) -> None:
    with pytest.raises(InvalidDatabaseUrl):
        parse_url(url)
    assert issubclass(InvalidDatabaseUrl, ValueError)


@pytest.mark.parametrize("url", [u for u in MALFORMED_URLS if u])
async def test_open_storage_rejects_malformed_urls(url: str) -> None:
    with pytest.raises(InvalidDatabaseUrl):
        await open_storage(url)


async def test_an_unreachable_postgres_names_the_host_but_not_the_password() -> None:
    url = "postgresql://u:secretpw@127.0.0.1:1/db"
    with pytest.raises(DatabaseUnavailable) as info:
        await asyncio.wait_for(open_storage(url), timeout=60)
    assert "127.0.0.1" in str(info.value)
    error: BaseException | None = info.value
    while error is not None:  # the whole chain a traceback would print
        assert "secretpw" not in str(error), f"password leaked in {type(error).__name__}"
        error = error.__cause__ or error.__context__


async def test_the_job_counts_migration_counts_the_jobs_already_stored(db_url: str) -> None:
    """Upgrading a database that holds jobs: the kept counts start from the stored jobs."""
    backend = backend_of(db_url)
    [version] = [
        int(p.name[:4]) for p in (MIGRATIONS / backend).glob("[0-9][0-9][0-9][0-9]_job_counts.sql")
    ]
    storage = await open_storage(db_url)
    try:
        await storage.enqueue([NewJob(kind="k", queue="q") for _ in range(3)], 1.0)
        await storage.enqueue([NewJob(kind="k", queue="r")], 1.0)
        [job] = await storage.claim("q", "h", 1, 2.0)
        await storage.finish("h", [Finish(job.id, job.attempt, "done", "done")], 3.0)
        expected = await storage.counts()
    finally:
        await storage.close()
    # Back to the schema before the counts existed (what an older forge-nb left behind).
    undo = [  # v11, v10 and v9 (claims by kind) first: the later migrations run again too
        *undo_workflows(backend),
        *UNDO_SHIPPED_CODE,
        "DROP INDEX forge_nb_jobs_claim_kind",
        "CREATE INDEX forge_nb_jobs_claim ON forge_nb_jobs (queue, priority DESC, scheduled_at, id)"
        " WHERE status IN ('pending', 'failed')",
        "ALTER TABLE forge_nb_processes DROP COLUMN kinds",
    ]
    if backend == "sqlite":
        undo += [
            "DROP TRIGGER forge_nb_queues_count_rows",  # (v8 already dropped the insert one)
            "DROP TRIGGER forge_nb_jobs_count_update",
            "DROP TRIGGER forge_nb_jobs_count_delete",
        ]
    else:  # Postgres counts inserts in the enqueue statements themselves
        undo += [
            "DROP TRIGGER forge_nb_jobs_count_update ON forge_nb_jobs",
            "DROP TRIGGER forge_nb_jobs_count_delete ON forge_nb_jobs",
            "DROP TRIGGER forge_nb_jobs_count_truncate ON forge_nb_jobs",
            "DROP FUNCTION forge_nb_count_jobs",
            "DROP FUNCTION forge_nb_count_truncate",
        ]
    undo += [
        "DROP TABLE forge_nb_job_counts",
        f"DELETE FROM {VERSION_TABLE} WHERE version >= {version}",  # and any later ones
    ]
    for statement in undo:
        await query(db_url, statement)
    await query(db_url, "DELETE FROM forge_nb_jobs WHERE queue = 'r'")  # written by the old code
    storage = await open_storage(db_url)
    try:
        assert await recorded_versions(db_url) == migration_versions(backend)
        expected["r"]["pending"] = 0
        assert await storage.counts() == expected
        assert expected["q"] == {
            "waiting": 0,
            "pending": 2,
            "running": 0,
            "failed": 0,
            "done": 1,
            "dead": 0,
        }
    finally:
        await storage.close()


async def test_the_claim_by_kind_migration_keeps_waiting_jobs_and_processes(db_url: str) -> None:
    """Upgrading a v8 database: its pending jobs are claimable by kind, its process rows list
    no kinds until their process registers again."""
    backend = backend_of(db_url)
    storage = await open_storage(db_url)
    try:
        await storage.enqueue([NewJob(kind=k, queue="q") for k in ("a", "b", "a")], 1.0)
        now = datetime.fromtimestamp(1.0, UTC)
        await storage.register_processes(
            [ProcessRecord("q-0-h", "h", "box", 1, "q", None, now, now, kinds=("a",))]
        )
    finally:
        await storage.close()
    for statement in (  # back to v8: the v1 claim index, no kinds on process rows
        *undo_workflows(backend),
        *UNDO_SHIPPED_CODE,
        "DROP INDEX forge_nb_jobs_claim_kind",
        "CREATE INDEX forge_nb_jobs_claim ON forge_nb_jobs (queue, priority DESC, scheduled_at, id)"
        " WHERE status IN ('pending', 'failed')",
        "ALTER TABLE forge_nb_processes DROP COLUMN kinds",
        f"DELETE FROM {VERSION_TABLE} WHERE version >= 9",
    ):
        await query(db_url, statement)
    storage = await open_storage(db_url)
    try:
        assert await recorded_versions(db_url) == migration_versions(backend)
        [process] = await storage.processes()
        assert process.kinds == ()
        claimed = await storage.claim("q", "h", 10, 2.0, kinds=["a"])
        assert [j.kind for j in claimed] == ["a", "a"]
        assert (await storage.counts())["q"]["pending"] == 1
    finally:
        await storage.close()


def migration_sql(backend: str, version: int) -> str:
    [path] = (MIGRATIONS / backend).glob(f"{version:04d}_*.sql")
    return path.read_text(encoding="utf-8")


#: Back from v19 to v18 (SQLite): the (queue, id) index again.
UNDO_ONE_INDEX_FEWER = ["CREATE INDEX forge_nb_jobs_queue ON forge_nb_jobs (queue, id)"]
UNDO_STATUSES_BY_QUEUE = ["CREATE INDEX forge_nb_jobs_status ON forge_nb_jobs (status, id)"]


def undo_cheaper_key_hand_over(backend: str) -> list[str]:
    """Back from v17 to v16 (after SQLite's v19): v16's key triggers (places handed over a
    row at a time)."""
    v16 = migration_sql(backend, 16)
    if backend == "sqlite":
        return [
            *UNDO_ONE_INDEX_FEWER,
            "DROP TRIGGER forge_nb_jobs_key_admit",
            "DROP TRIGGER forge_nb_jobs_key_release",
            "DROP TRIGGER forge_nb_jobs_key_release_gone",
            *re.findall(r"CREATE TRIGGER .*?\nEND;", v16, re.S),
        ]
    return [
        "DROP TRIGGER forge_nb_jobs_key_release ON forge_nb_jobs",
        "DROP TRIGGER forge_nb_jobs_key_release_gone ON forge_nb_jobs",
        "DROP FUNCTION forge_nb_key_release",
        "DROP FUNCTION forge_nb_next_held",
        "DROP TRIGGER forge_nb_jobs_key_slot ON forge_nb_jobs",
        "CREATE TRIGGER forge_nb_jobs_key_slot BEFORE UPDATE OF status ON forge_nb_jobs"
        " FOR EACH ROW WHEN (NEW.concurrency_key IS NOT NULL)"
        " EXECUTE FUNCTION forge_nb_key_slot()",
        *re.findall(r"CREATE (?:OR REPLACE )?FUNCTION .*?\$\$;", v16, re.S),
        *re.findall(r"CREATE TRIGGER .*?;", v16, re.S),
    ]


def undo_key_backlog(backend: str) -> list[str]:
    """Back from v16 (after v17): no held backlogs (held jobs pending again), no admitted
    counts."""
    undo = undo_cheaper_key_hand_over(backend)
    release = "UPDATE forge_nb_jobs SET status = 'pending' WHERE status = 'waiting'" + (
        " AND waiting_on = 0 AND concurrency_key IS NOT NULL"
    )
    if backend == "sqlite":
        return [
            *undo,
            "DROP TRIGGER forge_nb_jobs_key_admit",
            "DROP TRIGGER forge_nb_jobs_key_release",
            "DROP TRIGGER forge_nb_jobs_key_release_gone",
            release,
            "DROP INDEX forge_nb_jobs_key_held",
            "ALTER TABLE forge_nb_key_slots DROP COLUMN active",
        ]
    return [
        *undo,
        "DROP TRIGGER forge_nb_jobs_key_release ON forge_nb_jobs",
        "DROP TRIGGER forge_nb_jobs_key_release_gone ON forge_nb_jobs",
        "DROP FUNCTION forge_nb_key_release",
        release,
        "DROP INDEX forge_nb_jobs_key_held",
        "ALTER TABLE forge_nb_key_slots DROP COLUMN active",
    ]


def undo_enqueue_indexes(backend: str) -> list[str]:
    """Back from v15 to v14 (after v16; Postgres only): the (queue, id) index again."""
    undo = undo_key_backlog(backend)
    if backend == "sqlite":
        return undo
    return [*undo, "CREATE INDEX forge_nb_jobs_queue ON forge_nb_jobs (queue, id)"]


def undo_process_stale_after(backend: str) -> list[str]:
    """Back from v14 to v13 (after v15): processes record no silence limit of their own."""
    return [
        *undo_enqueue_indexes(backend),
        "ALTER TABLE forge_nb_processes DROP COLUMN stale_after",
    ]


def undo_flow_control(backend: str) -> list[str]:
    """Back from v12 to v11 (after v13 and v14): no expiry, unique windows or keys."""
    later = undo_observe(backend)
    if backend == "sqlite":
        return [
            *later,
            "DROP TRIGGER forge_nb_jobs_key_full",
            "DROP TRIGGER forge_nb_jobs_key_start",
            "DROP TRIGGER forge_nb_jobs_key_gone",
            "DROP INDEX forge_nb_jobs_expiring",
            "DROP TABLE forge_nb_unique_holds",
            "DROP TABLE forge_nb_key_slots",
            "ALTER TABLE forge_nb_jobs DROP COLUMN expires_at",
            "ALTER TABLE forge_nb_jobs DROP COLUMN concurrency_key",
            "DROP TABLE forge_nb_rate_limit_templates",
            "DROP INDEX forge_nb_rate_limits_templated",
            "ALTER TABLE forge_nb_rate_limits DROP COLUMN template",
            "DROP TABLE forge_nb_queue_slots",
            "ALTER TABLE forge_nb_queues DROP COLUMN global_limit",
        ]
    return [
        *later,
        "DROP TRIGGER forge_nb_jobs_key_slot ON forge_nb_jobs",
        "DROP TRIGGER forge_nb_jobs_key_gone ON forge_nb_jobs",
        "DROP FUNCTION forge_nb_key_slot",
        "DROP TABLE forge_nb_unique_holds",
        "DROP TABLE forge_nb_key_slots",
        "ALTER TABLE forge_nb_jobs DROP COLUMN expires_at, DROP COLUMN concurrency_key",
        "DROP TABLE forge_nb_rate_limit_templates",
        "ALTER TABLE forge_nb_rate_limits DROP COLUMN template",
        "DROP TABLE forge_nb_queue_slots",
        "ALTER TABLE forge_nb_queues DROP COLUMN global_limit",
    ]


def undo_observe(backend: str) -> list[str]:
    """Back from v13 to v12 (after v14): none of its tables."""
    later = undo_process_stale_after(backend)
    if backend == "sqlite":
        return [
            *later,
            "DROP TRIGGER IF EXISTS forge_nb_job_tags_gone",
            "DROP TABLE forge_nb_job_tags",
            "DROP TABLE forge_nb_redactions",
            "DROP TRIGGER IF EXISTS forge_nb_job_context_gone",
            "DROP TABLE forge_nb_job_context",
            "DROP TRIGGER IF EXISTS forge_nb_job_logs_gone",
            "DROP TABLE forge_nb_job_logs",
        ]
    return [
        *later,
        "DROP TRIGGER IF EXISTS forge_nb_jobs_logs_gone ON forge_nb_jobs",  # v18's
        "DROP TABLE forge_nb_job_logs",
        "DROP TABLE forge_nb_job_tags",
        "DROP TABLE forge_nb_redactions",
        "DROP TABLE forge_nb_job_context",
    ]


def undo_workflows(backend: str) -> list[str]:
    """Back from v11 to v10 (and from any later version first): no dependencies (SQLite
    keeps the rebuilt table's extra columns; migration 11 rebuilds it again from the v10
    columns)."""
    if backend == "sqlite":
        return [
            *undo_flow_control(backend),
            "DROP TRIGGER forge_nb_jobs_dependency_dead",
            "DROP TRIGGER forge_nb_jobs_dependency_gone",
            "DROP TABLE forge_nb_job_deps",
            "DROP TABLE forge_nb_dead_parents",
        ]
    return [
        *undo_flow_control(backend),
        "DROP TRIGGER forge_nb_jobs_dependency_ended ON forge_nb_jobs",
        "DROP TRIGGER forge_nb_jobs_dependency_deleted ON forge_nb_jobs",
        "DROP TRIGGER forge_nb_jobs_dependency_truncate ON forge_nb_jobs",
        "DROP FUNCTION forge_nb_dependency_ended",
        "DROP FUNCTION forge_nb_dependency_deleted",
        "DROP FUNCTION forge_nb_dependency_truncate",
        "DROP TABLE forge_nb_job_deps",
        "DROP TABLE forge_nb_dead_parents",
        "ALTER TABLE forge_nb_jobs DROP COLUMN waiting_on, DROP COLUMN dependencies",
        "ALTER TABLE forge_nb_jobs DROP CONSTRAINT forge_nb_jobs_status_check",
        "ALTER TABLE forge_nb_jobs ADD CONSTRAINT forge_nb_jobs_status_check"
        " CHECK (status IN ('pending', 'running', 'failed', 'done', 'dead'))",
        "DROP INDEX forge_nb_jobs_unique_live",
        "CREATE UNIQUE INDEX forge_nb_jobs_unique_live ON forge_nb_jobs (unique_key)"
        " WHERE unique_key IS NOT NULL AND status IN ('pending', 'running', 'failed')",
    ]


async def test_the_workflows_migration_keeps_jobs_counts_and_ids(db_url: str) -> None:
    """Upgrading a v10 database: every job and count is kept, ids go on above any ever
    given (even of purged jobs), and new jobs may depend on the old ones."""
    backend = backend_of(db_url)
    storage = await open_storage(db_url)
    try:
        jobs = await storage.enqueue(
            [NewJob(kind="a", queue="q", unique_key=f"k{i}") for i in range(5)], 1.0
        )
        [job] = await storage.claim("q", "h", 1, 2.0)
        await storage.finish("h", [Finish(job.id, job.attempt, "done", "done", "7")], 3.0)
        await storage.delete(jobs[-1].id)  # the highest id is gone, never to be given again
        expected = await storage.counts()
    finally:
        await storage.close()
    await undo_from(db_url, 11, undo_workflows(backend))
    storage = await open_storage(db_url)
    try:
        assert await recorded_versions(db_url) == migration_versions(backend)
        assert await storage.counts() == expected
        assert expected["q"]["waiting"] == 0
        kept = (await storage.list_jobs(JobFilter())).jobs
        assert sorted(j.id for j in kept) == sorted(r.id for r in jobs[:-1])
        [new] = await storage.enqueue([NewJob(kind="a", queue="q", depends_on=[jobs[1].id])], 4.0)
        assert int(new.id) > int(jobs[-1].id)
        assert new.status == "waiting"
        [dup] = await storage.enqueue([NewJob(kind="a", queue="q", unique_key="k2")], 4.0)
        assert (dup.outcome, dup.id) == ("duplicate", jobs[2].id)
        assert await storage.dependency_results(new.id) == {jobs[1].id: None}
    finally:
        await storage.close()


#: Back from v10 to v9: no shipped code table, no code version on jobs.
UNDO_SHIPPED_CODE = (
    "DROP TABLE forge_nb_code",
    "ALTER TABLE forge_nb_jobs DROP COLUMN code_version",
)


async def test_the_shipped_code_migration_keeps_waiting_jobs(db_url: str) -> None:
    """Upgrading a v9 database: its jobs get no code version (they run the worker's own
    handler, as before) and stay claimable; new jobs record theirs."""
    backend = backend_of(db_url)
    storage = await open_storage(db_url)
    try:
        await storage.enqueue([NewJob(kind="a", queue="q")], 1.0)
    finally:
        await storage.close()
    undo = (*undo_workflows(backend), *UNDO_SHIPPED_CODE)
    await undo_from(db_url, 10, undo)
    storage = await open_storage(db_url)
    try:
        assert await recorded_versions(db_url) == migration_versions(backend)
        [old] = (await storage.list_jobs(JobFilter())).jobs
        assert old.code_version is None
        [new] = await storage.enqueue([NewJob(kind="a", queue="q", code_version="ab" * 8)], 2.0)
        claimed = await storage.claim("q", "h", 10, 3.0, kinds=["a"], exclude_versions=["ab" * 8])
        assert [j.id for j in claimed] == [old.id]
        assert claimed[0].code_version is None
        assert (await storage.get_job(new.id)).code_version == "ab" * 8  # type: ignore[union-attr]
    finally:
        await storage.close()


def keyed_backlog() -> list[NewJob]:
    """Three jobs for each of two keys, one running at a time."""
    return [
        NewJob(kind="a", queue="q", payload={"k": k, "i": i}, concurrency_key=k, key_limit=1)
        for k in "xy"
        for i in range(3)
    ]


async def test_the_key_backlog_migration_holds_each_keys_jobs_beyond_its_limit(
    db_url: str,
) -> None:
    """Upgrading a v14 database with a key-by-key backlog: each key keeps its running job
    and the rest of its pending ones are held, then promoted one by one in order."""
    backend = backend_of(db_url)
    storage = await open_storage(db_url)
    jobs = keyed_backlog()
    try:
        ids = [r.id for r in await storage.enqueue(jobs, 1.0)]
    finally:
        await storage.close()
    for statement in (
        *undo_key_backlog(backend),
        f"DELETE FROM {VERSION_TABLE} WHERE version >= 16",
    ):
        await query(db_url, statement)
    await query(db_url, "UPDATE forge_nb_key_slots SET running = 0")
    storage = await open_storage(db_url)
    try:
        assert await recorded_versions(db_url) == migration_versions(backend)
        held = [(await storage.get_job(i)).status for i in ids]  # type: ignore[union-attr]
        assert held == ["pending", "waiting", "waiting"] * 2
        order = []
        for _ in range(3):
            claimed = await storage.claim("q", "h", 10, 2.0)
            assert len(claimed) == 2, "one per key"
            order += [(j.payload["k"], j.payload["i"]) for j in claimed]
            await storage.finish(
                "h",
                [Finish(j.id, j.attempt, "done", "done", result_json="null") for j in claimed],
                2.0,
            )
        assert sorted(order) == [(k, i) for k in "xy" for i in range(3)]
    finally:
        await storage.close()


async def test_the_cheaper_key_hand_over_migration_keeps_running_and_held_jobs(
    db_url: str,
) -> None:
    """Upgrading a v16 database mid-drain (each key with a running job and held ones): the
    running jobs finish under v17's triggers, hand their places to the held jobs in order,
    and the counts of running and admitted jobs end at zero."""
    backend = backend_of(db_url)
    storage = await open_storage(db_url)
    jobs = keyed_backlog()
    try:
        await storage.enqueue(jobs, 1.0)
        running = await storage.claim("q", "h", 10, 2.0)
        assert len(running) == 2
    finally:
        await storage.close()
    for statement in (
        *undo_cheaper_key_hand_over(backend),
        f"DELETE FROM {VERSION_TABLE} WHERE version >= 17",
    ):
        await query(db_url, statement)
    storage = await open_storage(db_url)
    try:
        assert await recorded_versions(db_url) == migration_versions(backend)
        slots = "SELECT key, running, active FROM forge_nb_key_slots ORDER BY key"
        assert await query(db_url, slots) == [("a/x", 1, 1), ("a/y", 1, 1)]
        order = [(j.payload["k"], j.payload["i"]) for j in running]
        for _ in range(3):
            await storage.finish(
                "h",
                [Finish(j.id, j.attempt, "done", "done", result_json="null") for j in running],
                3.0,
            )
            running = await storage.claim("q", "h", 10, 3.0)
            order += [(j.payload["k"], j.payload["i"]) for j in running]
        assert order == [(k, i) for i in range(3) for k in "xy"]
        assert await query(db_url, slots) == [("a/x", 0, 0), ("a/y", 0, 0)]
    finally:
        await storage.close()


async def test_the_log_trigger_migration_keeps_logs_and_still_sweeps_them(pg_url: str) -> None:
    """Upgrading a v17 Postgres database (logs tied to their job by a foreign key): the logs
    stay, the key is gone, and deleting a job still deletes its logs."""
    storage = await open_storage(pg_url)
    try:
        kept, swept = await storage.enqueue([NewJob(kind="k", queue="q")] * 2, 1.0)
        await storage.write_job_logs(
            [JobLog(kept.id, 1, "kept", 1, 0, 2.0), JobLog(swept.id, 1, "swept", 1, 0, 2.0)]
        )
    finally:
        await storage.close()
    for statement in (
        "DROP TRIGGER forge_nb_jobs_logs_gone ON forge_nb_jobs",
        "DROP FUNCTION forge_nb_job_logs_gone",
        "ALTER TABLE forge_nb_job_logs ADD FOREIGN KEY (job_id)"
        " REFERENCES forge_nb_jobs (id) ON DELETE CASCADE",
        f"DELETE FROM {VERSION_TABLE} WHERE version >= 18",
    ):
        await query(pg_url, statement)
    storage = await open_storage(pg_url)
    try:
        assert await recorded_versions(pg_url) == migration_versions("postgres")
        keys = "SELECT count(*) FROM pg_constraint WHERE conrelid = 'forge_nb_job_logs'::regclass"
        assert await query(pg_url, keys + " AND contype = 'f'") == [(0,)]
        assert [g.text for g in await storage.job_logs(kept.id)] == ["kept"]
        assert await storage.delete(swept.id) == "pending"
        assert await storage.job_logs(swept.id) == []
        assert [g.text for g in await storage.job_logs(kept.id)] == ["kept"]
    finally:
        await storage.close()


async def test_the_sqlite_index_migration_drops_queue_id_and_keeps_queue_pages(
    sqlite_url: str,
) -> None:
    """Upgrading a v17 SQLite database: the (queue, id) index is gone, and a queue's pages
    (now read a status at a time) are the same."""
    storage = await open_storage(sqlite_url)
    try:
        made = await storage.enqueue([NewJob(kind="k", queue=q) for q in "abab"], 1.0)
        await storage.claim("a", "h", 1, 2.0)
    finally:
        await storage.close()
    await undo_from(sqlite_url, 19, UNDO_ONE_INDEX_FEWER)
    storage = await open_storage(sqlite_url)
    try:
        assert await recorded_versions(sqlite_url) == migration_versions("sqlite")
        assert not await sqlite_index_exists(sqlite_url, "forge_nb_jobs_queue")
        page = await storage.list_jobs(JobFilter(queue="a"), limit=10)
        assert [(j.id, j.status) for j in page.jobs] == [
            (made[2].id, "pending"),
            (made[0].id, "running"),
        ]
    finally:
        await storage.close()


async def test_the_sqlite_status_index_migration_keeps_status_pages_and_bulk_actions(
    sqlite_url: str,
) -> None:
    """Upgrading a v19 SQLite database: the (status, id) index is gone; a status's pages (now
    read a queue at a time), and retry and delete by status, find the same jobs."""
    storage = await open_storage(sqlite_url)
    try:
        made = await storage.enqueue([NewJob(kind="k", queue=q) for q in "abcab"], 1.0)
        for queue in "ab":
            [job] = await storage.claim(queue, "h", 1, 2.0)
            await storage.finish("h", [Finish(job.id, job.attempt, "dead", "dead")], 3.0)
    finally:
        await storage.close()
    await undo_from(sqlite_url, 20, UNDO_STATUSES_BY_QUEUE)
    storage = await open_storage(sqlite_url)
    try:
        assert await recorded_versions(sqlite_url) == migration_versions("sqlite")
        assert not await sqlite_index_exists(sqlite_url, "forge_nb_jobs_status")
        dead = await storage.list_jobs(JobFilter(status="dead"), limit=10)
        assert [j.id for j in dead.jobs] == [made[1].id, made[0].id]
        pending = await storage.list_jobs(JobFilter(status="pending"), limit=2)
        assert [j.id for j in pending.jobs] == [made[4].id, made[3].id]
        assert await storage.retry_many(JobFilter(status="dead"), 4.0) == 2
        assert await storage.delete_many(JobFilter(status="pending")) == 5
        assert [n for c in (await storage.counts()).values() for n in c.values() if n] == []
    finally:
        await storage.close()


async def test_the_flow_control_migration_keeps_jobs_and_their_unique_keys(db_url: str) -> None:
    """Upgrading a v11 database: its jobs keep running and holding their keys; new jobs may
    use expiry, windows and concurrency keys."""
    backend = backend_of(db_url)
    storage = await open_storage(db_url)
    try:
        [old] = await storage.enqueue([NewJob(kind="a", queue="q", unique_key="k")], 1.0)
    finally:
        await storage.close()
    await undo_from(db_url, 12, undo_flow_control(backend))
    storage = await open_storage(db_url)
    try:
        assert await recorded_versions(db_url) == migration_versions(backend)
        [dup] = await storage.enqueue([NewJob(kind="a", queue="q", unique_key="k")], 2.0)
        assert (dup.id, dup.outcome) == (old.id, "duplicate")
        await storage.enqueue(
            [NewJob(kind="a", queue="q", expires_in=5, concurrency_key="c", key_limit=1)], 2.0
        )
        assert len(await storage.claim("q", "h", 10, 3.0)) == 2
    finally:
        await storage.close()
