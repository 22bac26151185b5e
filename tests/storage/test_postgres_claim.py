"""Postgres claims by kind under contention: rows other claimers hold are skipped, not waited on.

The claim merges its kinds' index ranges into candidates and locks them one by one with
``FOR UPDATE SKIP LOCKED`` (a LATERAL per candidate). A claimer whose best candidates another
transaction holds must go on down the list and still fill its batch, as the one-range claim
before it did; and the plan must stay a lazy merge at the size it was built for.
"""

from __future__ import annotations

import json
import time
from typing import Any

import asyncpg

from forge_nb.storage import open_storage
from forge_nb.storage.kinds import claim_arms
from forge_nb.storage.postgres import CLAIM_SKIP_ROOM
from forge_nb.storage.postgres_statements import claim_sql
from forge_nb.storage.records import NewJob

NOW = 1_700_000_000.0


async def test_a_claim_skips_rows_another_transaction_holds_and_still_fills_its_batch(
    pg_url: str,
) -> None:
    storage = await open_storage(pg_url)
    holder = await asyncpg.connect(pg_url)
    try:
        results = await storage.enqueue(
            [NewJob(kind=("a", "b")[i % 2], queue="q", payload={"i": i}) for i in range(30)], NOW
        )
        ids = [int(r.id) for r in results]
        async with holder.transaction():
            held = await holder.fetch(
                "SELECT id FROM forge_nb_jobs WHERE id = ANY ($1::bigint[]) FOR UPDATE",
                ids[:10],
            )
            assert len(held) == 10
            start = time.monotonic()
            claimed = await storage.claim("q", "h", 10, NOW, kinds=["a", "b"])
            assert time.monotonic() - start < 2, "the claim waited on the held rows"
            assert sorted(int(j.id) for j in claimed) == ids[10:20]
        rest = await storage.claim("q", "h", 100, NOW, kinds=["a", "b"])
        assert sorted(int(j.id) for j in rest) == ids[:10] + ids[20:]
    finally:
        await holder.close()
        await storage.close()


async def test_the_claim_never_reads_the_jobs_of_other_kinds(pg_url: str) -> None:
    """EXPLAIN ANALYZE of the claim behind 20,000 jobs of another kind: the rows it reads stay
    near its batch size (a merge of its kinds' ranges, not a walk past the foreign ones)."""
    storage = await open_storage(pg_url)
    admin = await asyncpg.connect(pg_url)
    try:
        await storage.enqueue([NewJob(kind="foreign", queue="q")], NOW)
        await admin.execute(
            "INSERT INTO forge_nb_jobs (kind, queue, payload, scheduled_at, max_attempts,"
            " created_at) SELECT 'foreign', 'q', '{}', 1000 + g, 5, 1000"
            " FROM generate_series(1, 20000) g"
        )
        await admin.execute("ANALYZE forge_nb_jobs")
        await storage.enqueue([NewJob(kind=k, queue="q") for k in "abc" * 40], NOW)
        arms = claim_arms(["a", "b", "c", "forge_nb.echo"])
        for _ in range(7):  # past the first custom plans: the generic plan must be as good
            tr = admin.transaction()
            await tr.start()
            try:
                raw = await admin.fetchval(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + claim_sql(len(arms)),
                    *("q", NOW, 10, "h", 10 + CLAIM_SKIP_ROOM, *arms),
                )
            finally:
                await tr.rollback()
            read = _rows_read(json.loads(raw))
            assert read <= 100, f"the claim read {read} rows for a batch of 10"
    finally:
        await admin.close()
        await storage.close()


def _rows_read(plan: list[dict[str, Any]]) -> int:
    """Rows every scan node of the plan read (returned plus filtered out), added up."""
    total = 0

    def walk(node: dict[str, Any]) -> None:
        nonlocal total
        if "Scan" in node["Node Type"]:
            total += int(node["Actual Rows"] * node["Actual Loops"])
            total += int(node.get("Rows Removed by Filter", 0))
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return total
