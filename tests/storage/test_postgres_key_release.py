"""Postgres hands a key's places over once per statement (migration 17), and finds the held
jobs it promotes through the held index whatever the statistics say.

A queue's table is mostly done jobs; its statistics then make 'waiting' look rare, and the
planner preferred the status index for the held lookup: every waiting job read and sorted
for each promotion (quadratic in a key-by-key backlog).
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from forge_nb.storage import open_storage
from forge_nb.storage.records import Finish, NewJob

NOW = 1_700_000_000.0


def done(job_id: str, attempt: int) -> Finish:
    return Finish(job_id, attempt, "done", "done", result_json="null")


async def test_a_hand_over_reads_the_held_index_when_statistics_say_nothing_waits(
    pg_url: str,
) -> None:
    storage = await open_storage(pg_url)
    admin = await asyncpg.connect(pg_url)
    try:
        await storage.enqueue([NewJob(kind="a", queue="q") for _ in range(300)], NOW)
        claimed = await storage.claim("q", "h", 300, NOW)
        await storage.finish("h", [done(j.id, j.attempt) for j in claimed], NOW)
        await admin.execute("ANALYZE forge_nb_jobs")  # statistics: every job done
        keyed = [
            NewJob(kind="a", queue="q", payload={"k": k, "i": i}, concurrency_key=k, key_limit=1)
            for k in "xyz"
            for i in range(50)
        ]
        ids = [r.id for r in await storage.enqueue(keyed, NOW)]
        running = await storage.claim("q", "h", 10, NOW)
        assert sorted(j.id for j in running) == [ids[0], ids[50], ids[100]]
        async with admin.transaction():
            await admin.execute(
                "UPDATE forge_nb_jobs SET status = 'done' WHERE id = ANY ($1::bigint[])",
                [int(j.id) for j in running],
            )
            scans = dict(
                await admin.fetch(
                    "SELECT relname, pg_stat_get_xact_numscans(oid) FROM pg_class "
                    "WHERE relname IN ('forge_nb_jobs_status', 'forge_nb_jobs_key_held')"
                )
            )
        assert scans["forge_nb_jobs_key_held"] >= 1
        assert scans["forge_nb_jobs_status"] == 0, "the held lookup read the status index"
        promoted = [await storage.get_job(i) for i in (ids[1], ids[51], ids[101], ids[2])]
        assert [j.status for j in promoted if j] == ["pending", "pending", "pending", "waiting"]
        slots = await admin.fetch(
            "SELECT key, running, active FROM forge_nb_key_slots ORDER BY key"
        )
        assert [tuple(r) for r in slots] == [("a/x", 0, 1), ("a/y", 0, 1), ("a/z", 0, 1)]
    finally:
        await admin.close()
        await storage.close()


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_a_held_job_another_transaction_holds_is_waited_for_then_rechecked(
    pg_url: str, outcome: str
) -> None:
    """A finish whose key's next held job is being cancelled elsewhere waits for that
    transaction: cancelled, the job after it takes the place; rolled back, the job does."""
    storage = await open_storage(pg_url)
    holder = await asyncpg.connect(pg_url)
    try:
        jobs = [NewJob(kind="a", queue="q", concurrency_key="x", key_limit=1) for _ in range(3)]
        ids = [r.id for r in await storage.enqueue(jobs, NOW)]
        [running] = await storage.claim("q", "h", 10, NOW)
        tx = holder.transaction()
        await tx.start()
        await holder.execute("UPDATE forge_nb_jobs SET status = 'dead' WHERE id = $1", int(ids[1]))
        finishing = asyncio.create_task(storage.finish("h", [done(running.id, 1)], NOW))
        await asyncio.sleep(0.5)
        assert not finishing.done(), "the finish did not wait for the held row's lock"
        await (tx.commit() if outcome == "commit" else tx.rollback())
        assert await asyncio.wait_for(finishing, 10) == [running.id]
        statuses = [(await storage.get_job(i)).status for i in ids]  # type: ignore[union-attr]
        if outcome == "commit":
            assert statuses == ["done", "dead", "pending"]
        else:
            assert statuses == ["done", "pending", "waiting"]
        [slot] = await holder.fetch("SELECT running, active FROM forge_nb_key_slots")
        assert tuple(slot) == (0, 1)
    finally:
        await holder.close()
        await storage.close()
