"""A queue's Jobs page reads the (queue, status, id) index, one status at a time, on both
backends: never the whole table; and a Postgres finish finds its jobs by primary key. The
results are in the contract tests; this guards their cost, which a planner's choice can
lose without any result changing (Postgres once walked the primary key back through every
job for each status a queue had none of)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import asyncpg

from forge_nb.config import parse_url
from forge_nb.storage import open_storage
from forge_nb.storage.postgres_statements import Q as POSTGRES
from forge_nb.storage.postgres_statements import finish_arrays
from forge_nb.storage.records import Finish, NewJob
from forge_nb.storage.sqlite_statements import Q as SQLITE

QUEUES = 20
PER_QUEUE = 1000
PAGE = (2**63 - 1, 50)  # below the newest id, 50 rows


async def fill_in_queue_order(url: str) -> None:
    """Each queue's jobs together in one stretch of ids, all pending (the other statuses
    empty): what a burst of enqueues per queue leaves."""
    storage = await open_storage(url)
    try:
        for q in range(QUEUES):
            await storage.enqueue([NewJob(kind="k", queue=f"q{q}")] * PER_QUEUE, 1.0)
    finally:
        await storage.close()


async def test_postgres_reads_each_status_from_the_queue_index(pg_url: str) -> None:
    await fill_in_queue_order(pg_url)
    plan = await postgres_plan(pg_url, POSTGRES["list_queue_jobs"], "q3", *PAGE)
    scans = [n for n in plan if "Relation Name" in n]
    assert len(scans) == 6  # one per status
    assert {n.get("Index Name") for n in scans} == {"forge_nb_jobs_queue_status"}, scans


async def test_sqlite_reads_each_status_from_the_queue_index(sqlite_url: str) -> None:
    await fill_in_queue_order(sqlite_url)
    path = parse_url(sqlite_url).path
    assert path is not None
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("ANALYZE")
        plan = [
            r[3]
            for r in conn.execute("EXPLAIN QUERY PLAN " + SQLITE["list_queue_jobs"], ("q3", *PAGE))
        ]
    reads = [step for step in plan if step.startswith(("SCAN", "SEARCH"))]
    assert "SCAN s VIRTUAL TABLE INDEX 1:" in reads, plan  # the statuses, one at a time
    by_status = "INDEX forge_nb_jobs_queue_status (queue=? AND status=? AND id<?)"
    assert any(by_status in r for r in reads), plan
    assert all(
        by_status in r or r == "SEARCH j USING INTEGER PRIMARY KEY (rowid=?)"
        for r in reads
        if "VIRTUAL TABLE" not in r
    ), plan


async def postgres_plan(
    url: str, sql: str, *args: object, analyze: bool = True
) -> list[dict[str, object]]:
    """Every node of Postgres's plan for ``sql`` with ``args``; the jobs analyzed first,
    unless ``analyze`` is False (a fresh database's first statements)."""
    conn = await asyncpg.connect(url)
    try:
        if analyze:
            await conn.execute("ANALYZE forge_nb_jobs")
        return nodes(await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args))
    finally:
        await conn.close()


def nodes(plan: object) -> list[dict[str, object]]:
    """Every node of a Postgres JSON plan (as asyncpg returns it: text or parsed)."""
    tree = json.loads(plan) if isinstance(plan, str) else plan
    found: list[dict[str, object]] = []
    stack = [tree[0]["Plan"]]
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(node.get("Plans", []))
    return found


async def test_sqlite_reads_a_status_queue_by_queue_from_the_queue_index(
    sqlite_url: str,
) -> None:
    """No (status, id) index on SQLite (migration 20): a status's page, and the ids retry and
    delete by status take, read (queue, status, id), one queue at a time, and the queues
    from the count rows; never the whole jobs table."""
    await fill_in_queue_order(sqlite_url)
    path = parse_url(sqlite_url).path
    assert path is not None
    by_queue = "INDEX forge_nb_jobs_queue_status (queue=? AND status=?"
    term = SQLITE["status_queues_term"].replace("{statuses}", "?1, ?2")
    bulk = SQLITE["job_ids_where"].replace("{where}", f"status IN (?1, ?2) AND {term}")
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("ANALYZE")
        page = plan_reads(conn, SQLITE["list_status_jobs"], ("pending", *PAGE))
        ids = plan_reads(conn, bulk, ("dead", "failed"))
    assert "SCAN c" in page and any(by_queue + " AND id<?)" in r for r in page), page
    assert all(
        by_queue in r or r in ("SCAN c", "SEARCH j USING INTEGER PRIMARY KEY (rowid=?)")
        for r in page
    ), page
    jobs = [r for r in ids if "forge_nb_job_counts" not in r]
    assert jobs and all(by_queue in r for r in jobs), ids


async def test_postgres_reads_a_rare_status_from_its_index(pg_url: str) -> None:
    """The Dead tab with no dead job among 20,000 does not walk the table back (a status
    every job has may: the first 50 rows by id are then the page)."""
    await fill_in_queue_order(pg_url)
    plan = await postgres_plan(pg_url, POSTGRES["list_status_jobs"], "dead", *PAGE)
    scans = [n for n in plan if "Relation Name" in n]
    assert [n.get("Index Name") for n in scans] == ["forge_nb_jobs_status"], scans


def plan_reads(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> list[str]:
    """The table and index reads of SQLite's plan for ``sql``."""
    plan = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
    return [step for step in plan if step.startswith(("SCAN", "SEARCH"))]


async def test_postgres_finish_and_progress_find_each_job_by_its_key(pg_url: str) -> None:
    """A finish batch of 600, and a progress batch, on a table never analyzed (a fresh
    database's first drain) look each job up by its primary key: no scan of the jobs (a join
    once re-read the batch for every running job, quadratic; a plain ``=`` let the planner
    hash the whole table)."""
    await fill_in_queue_order(pg_url)
    storage = await open_storage(pg_url)
    try:
        claimed = await storage.claim("q3", "host-a", 600, 2.0)
    finally:
        await storage.close()
    assert len(claimed) == 600
    batch = {int(j.id): Finish(j.id, j.attempt, "done", "done", "null") for j in claimed}
    ids = list(batch)
    args = ("host-a", *finish_arrays(batch), 3.0)
    finish = await postgres_plan(pg_url, POSTGRES["finish"], *args, analyze=False)
    args = (ids, [0.5] * len(ids), ["half"] * len(ids))
    progress = await postgres_plan(pg_url, POSTGRES["update_progress"], *args, analyze=False)
    for plan in (finish, progress):
        reads = [
            (n["Node Type"], n.get("Index Name"))
            for n in plan
            if n.get("Relation Name") == "forge_nb_jobs" and n["Node Type"] != "ModifyTable"
        ]
        assert reads and all(r == ("Index Scan", "forge_nb_jobs_pkey") for r in reads), reads
