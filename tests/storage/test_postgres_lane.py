"""The enqueue lane: one pooled Postgres connection kept for enqueues.

An awaited one-job enqueue is all round trip, and asyncpg's acquire/release cost about as
much client CPU as the statement itself. The kept connection must never make concurrent
enqueues wait on each other, and a broken one must cost one failed call at most.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from forge_nb.errors import DatabaseUnavailable, StorageError
from forge_nb.storage import open_storage
from forge_nb.storage.records import NewJob

PIDS = "SELECT DISTINCT shard FROM forge_nb_job_counts WHERE status = 'pending'"


async def shards(url: str) -> set[int]:
    """Backend pids that counted enqueues (each connection counts into its own shard)."""
    conn = await asyncpg.connect(url)
    try:
        return {r[0] for r in await conn.fetch(PIDS)}
    finally:
        await conn.close()


async def test_one_at_a_time_enqueues_share_one_kept_connection(pg_url: str) -> None:
    storage = await open_storage(pg_url)
    try:
        for i in range(20):
            await storage.enqueue([NewJob(kind="k", queue="q", payload={"i": i})], 1.0)
        assert len(await shards(pg_url)) == 1
        counts = await storage.counts()
        assert counts["q"]["pending"] == 20
    finally:
        await storage.close()


async def test_concurrent_enqueues_do_not_wait_for_the_kept_connection(pg_url: str) -> None:
    storage = await open_storage(pg_url)
    try:
        results = await asyncio.gather(
            *(
                storage.enqueue([NewJob(kind="k", queue="q", payload={"i": i})], 1.0)
                for i in range(30)
            )
        )
        assert len({r[0].id for r in results}) == 30
        assert len(await shards(pg_url)) > 1, "the busy lane sent the others to the pool"
        assert (await storage.counts())["q"]["pending"] == 30
    finally:
        await storage.close()


async def test_a_killed_kept_connection_fails_one_call_and_the_next_works(pg_url: str) -> None:
    storage = await open_storage(pg_url)
    admin = await asyncpg.connect(pg_url)
    try:
        await storage.enqueue([NewJob(kind="k", queue="q")], 1.0)
        (pid,) = await shards(pg_url)
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        await asyncio.sleep(0.1)
        try:
            await storage.enqueue([NewJob(kind="k", queue="q")], 1.0)
        except (DatabaseUnavailable, StorageError):
            pass  # the call on the dead connection may fail; it must not stay broken
        for i in range(3):
            await storage.enqueue([NewJob(kind="k", queue="q", payload={"i": i})], 1.0)
        total = (await storage.counts())["q"]["pending"]
        assert total in (4, 5)
        jobs = await admin.fetchval("SELECT count(*) FROM forge_nb_jobs")
        assert jobs == total, "the counts match the rows, whatever the failed call did"
    finally:
        await admin.close()
        await storage.close()


@pytest.mark.parametrize("batch", [1, 5, 1500])
async def test_closing_gives_the_kept_connection_back(pg_url: str, batch: int) -> None:
    storage = await open_storage(pg_url)
    await storage.enqueue([NewJob(kind="k", queue="q") for _ in range(batch)], 1.0)
    await asyncio.wait_for(storage.close(), 5)  # the pool waits for every acquired one
    admin = await asyncpg.connect(pg_url)
    try:
        left = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        assert left == 0
        assert await admin.fetchval("SELECT count(*) FROM forge_nb_jobs") == batch
    finally:
        await admin.close()
