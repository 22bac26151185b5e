"""This machine's raw floors next to forge-nb's own figures: what each target is up against.

    python bench/floors.py                     # both backends (a throwaway Postgres, fsync on)
    python bench/floors.py --backends sqlite --repeat 5

A floor is the same database work with nothing of forge-nb's around it: the driver alone,
one connection, a table with no indexes, then a copy of ``forge_nb_jobs`` with every index
forge-nb keeps (claims, the dashboard's filtered pages at 1,000,000 jobs) but without its
counting triggers and metric statements. The gap between a floor and forge-nb's figure is
what forge-nb adds; the gap between the two floors is what the indexes cost.

Postgres (asyncpg): a round trip (``SELECT 1``), a durable one-row INSERT transaction,
COPY of 10,000 rows. SQLite (WAL, synchronous=NORMAL): a one-row INSERT transaction through
aiosqlite (two awaits: statement, commit) and through plain sqlite3 on the calling thread,
10,000 rows in one transaction as 120-row INSERTs (as forge-nb writes them). Medians of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from run import fresh_app, new_sqlite_url, throwaway_postgres  # noqa: E402

import forge_nb as fnb  # noqa: E402
from forge_nb.storage.sqlite_statements import INSERT_CHUNK  # noqa: E402

BATCH = 10_000
COLUMNS = ("kind", "queue", "payload", "priority", "scheduled_at", "max_attempts", "created_at")


def row(i: int) -> tuple[Any, ...]:
    now = time.time()
    return ("noop", "default", json.dumps({"i": i}), 0, now, 3, now)


async def rate(fn: Callable[[], Awaitable[int]], repeat: int) -> float:
    """Median operations per second of ``fn`` (which returns how many it did)."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = await fn()
        samples.append(done / (time.perf_counter() - start))
    return statistics.median(samples)


async def forge_figures(url: str, ops: int, repeat: int) -> dict[str, float]:
    """forge-nb's enqueue one at a time (storage layer alone, then the App) and in bulk."""
    app = await fresh_app(url)
    try:
        storage = await app.storage()
        request = fnb.EnqueueRequest(kind="noop", payload={"i": 0})
        bulk = [fnb.EnqueueRequest(kind="noop", payload={"i": i}) for i in range(BATCH)]
        job = app._new_job(request, time.time())
        await app.enqueue(request)  # queue row and statements in place

        async def storage_one() -> int:
            for _ in range(ops):
                await storage.enqueue([job], time.time())
            return ops

        async def app_one() -> int:
            for _ in range(ops):
                await app.enqueue(request)
            return ops

        async def app_many() -> int:
            await app.enqueue_many(bulk)
            return BATCH

        return {
            "forge-nb storage.enqueue, one job": await rate(storage_one, repeat),
            "forge-nb App.enqueue, one job": await rate(app_one, repeat),
            "forge-nb App.enqueue_many(10,000)": await rate(app_many, repeat),
        }
    finally:
        await app.close()


async def postgres_floors(url: str, ops: int, repeat: int) -> dict[str, float]:
    import asyncpg

    await (await fresh_app(url)).close()  # the schema, for the indexed copy below
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS floor_bare, floor_jobs;"
            "CREATE TABLE floor_bare (LIKE forge_nb_jobs INCLUDING DEFAULTS INCLUDING IDENTITY);"
            "CREATE TABLE floor_jobs (LIKE forge_nb_jobs INCLUDING ALL);"  # every index
        )
        cols = ", ".join(COLUMNS)
        marks = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))

        async def round_trip() -> int:
            for _ in range(ops):
                await conn.fetchval("SELECT 1")
            return ops

        def insert_one(table: str) -> Callable[[], Awaitable[int]]:
            sql = f"INSERT INTO {table} ({cols}) VALUES ({marks}) RETURNING id"

            async def run() -> int:
                for i in range(ops):
                    await conn.fetchval(sql, *row(i))
                return ops

            return run

        def copy(table: str) -> Callable[[], Awaitable[int]]:
            async def run() -> int:
                records = [row(i) for i in range(BATCH)]
                async with conn.transaction():
                    await conn.copy_records_to_table(table, records=records, columns=COLUMNS)
                return BATCH

            return run

        return {
            "round trip (SELECT 1)": await rate(round_trip, repeat),
            "1-row INSERT tx, no indexes": await rate(insert_one("floor_bare"), repeat),
            "1-row INSERT tx, forge_nb_jobs' indexes": await rate(insert_one("floor_jobs"), repeat),
            "COPY 10,000 rows, no indexes": await rate(copy("floor_bare"), repeat),
            "COPY 10,000 rows, forge_nb_jobs' indexes": await rate(copy("floor_jobs"), repeat),
        }
    finally:
        await conn.execute("DROP TABLE IF EXISTS floor_bare, floor_jobs")
        await conn.close()


def sqlite_copy_of_jobs(c: sqlite3.Connection, indexes: bool) -> str:
    """``forge_nb_jobs``'s own CREATE TABLE (and CREATE INDEX) statements on a new name."""
    name = "floor_jobs" if indexes else "floor_bare"
    c.execute(f"DROP TABLE IF EXISTS {name}")
    [(table_sql,)] = c.execute("SELECT sql FROM sqlite_master WHERE name = 'forge_nb_jobs'")
    c.execute(table_sql.replace("forge_nb_jobs", name, 1))
    if indexes:
        for (sql,) in c.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'forge_nb_jobs' "
            "AND sql IS NOT NULL"
        ).fetchall():
            c.execute(sql.replace("forge_nb_jobs", name))
    return name


async def sqlite_floors(url: str, ops: int, repeat: int) -> dict[str, float]:
    import aiosqlite

    await (await fresh_app(url)).close()  # the schema, for the copies below
    path = url.removeprefix("sqlite:///")
    setup = sqlite3.connect(path)
    bare, indexed = sqlite_copy_of_jobs(setup, False), sqlite_copy_of_jobs(setup, True)
    setup.commit()
    setup.close()
    cols = ", ".join(COLUMNS)
    marks = ", ".join("?" * len(COLUMNS))
    out: dict[str, float] = {}
    async with aiosqlite.connect(path) as db:
        await db.execute("PRAGMA synchronous = NORMAL")

        async def aio_one() -> int:
            for i in range(ops):
                await db.execute(f"INSERT INTO {bare} ({cols}) VALUES ({marks})", row(i))
                await db.commit()
            return ops

        out["aiosqlite 1-row INSERT tx, no indexes"] = await rate(aio_one, repeat)
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA synchronous = NORMAL")

    def plain_one(table: str) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            for i in range(ops):
                c.execute("BEGIN IMMEDIATE")
                c.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", row(i))
                c.execute("COMMIT")
            return ops

        return run

    def many(table: str) -> Callable[[], Awaitable[int]]:
        def insert(rows: int) -> str:
            return f"INSERT INTO {table} ({cols}) VALUES " + ", ".join([f"({marks})"] * rows)

        async def run() -> int:  # multi-row INSERTs: faster than executemany
            records = [row(i) for i in range(BATCH)]
            c.execute("BEGIN IMMEDIATE")
            for start in range(0, BATCH, INSERT_CHUNK):
                chunk = records[start : start + INSERT_CHUNK]
                c.execute(insert(len(chunk)), [v for r in chunk for v in r])
            c.execute("COMMIT")
            return BATCH

        return run

    out["sqlite3 1-row INSERT tx, no indexes"] = await rate(plain_one(bare), repeat)
    out["sqlite3 1-row INSERT tx, forge_nb_jobs' indexes"] = await rate(plain_one(indexed), repeat)
    out["10,000 rows in 120-row INSERTs, no indexes"] = await rate(many(bare), repeat)
    out["10,000 rows in 120-row INSERTs, forge_nb_jobs' indexes"] = await rate(
        many(indexed), repeat
    )
    c.close()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--ops", type=int, default=3000, help="one-row operations per run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", help="use this Postgres instead of starting one")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="forge_nb_floors_"))
    results: dict[str, dict[str, float]] = {}
    try:
        if "sqlite" in args.backends:
            url = new_sqlite_url(tmp, "floors")
            results["SQLite"] = await sqlite_floors(url, args.ops, args.repeat)
            results["SQLite"] |= await forge_figures(
                new_sqlite_url(tmp, "forge"), args.ops, args.repeat
            )
        if "postgres" in args.backends:
            if args.pg_url:
                results["Postgres"] = await postgres_floors(args.pg_url, args.ops, args.repeat)
                results["Postgres"] |= await forge_figures(args.pg_url, args.ops, args.repeat)
            else:
                with throwaway_postgres() as dsn:
                    results["Postgres"] = await postgres_floors(dsn, args.ops, args.repeat)
                    results["Postgres"] |= await forge_figures(dsn, args.ops, args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for backend, figures in results.items():
        print(f"\n| {backend} (median of {args.repeat}) | per second | µs each |")
        print("|---|---|---|")
        for name, per_s in figures.items():
            print(f"| {name} | {per_s:,.0f} | {1e6 / per_s:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
