"""Postgres's enqueue of jobs with flow options (SPEC §9.3) in one transaction: a batch
without unique keys (expiry, concurrency keys) in one statement, one with unique keys (unique
windows, replace) a row at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from forge_nb.errors import StorageError
from forge_nb.storage import postgres_statements as statements
from forge_nb.storage.flow_rules import Flow, held
from forge_nb.storage.records import EnqueueResult, Status
from forge_nb.storage.schema import load_queries
from forge_nb.storage.validation import has_unique_keys

Q = load_queries("postgres")
LIVE = ("waiting", "pending", "running", "failed")
RACE_RETRIES = 5


async def enqueue(
    conn: Any, prepared: list[tuple[Any, ...]], flows: Sequence[Flow | None], now: float
) -> list[EnqueueResult]:
    """Each job in turn (inside the caller's transaction), then the enqueue counts."""
    await conn.execute(Q["ensure_queue_rows"], sorted({row[1] for row in prepared}))
    await take_keys(conn, flows)
    if not has_unique_keys(prepared):
        return await insert_flow_jobs(conn, prepared, flows, now)
    results = [
        await enqueue_one(conn, row, flow, now) for row, flow in zip(prepared, flows, strict=True)
    ]
    created = [row[1] for row, r in zip(prepared, results, strict=True) if r.outcome == "created"]
    if created:
        await statements.count_enqueued(conn, created, now)
    return results


async def enqueue_one(
    conn: Any, row: tuple[Any, ...], flow: Flow | None, now: float
) -> EnqueueResult:
    """Insert one job unless its key is taken: by a live job (ignore, or replace a pending
    one) or by a finished one within its window."""
    key = row[6]
    if key is not None:
        hold = await conn.fetchrow(Q["unique_hold"], key)
        if hold is not None and hold[1] not in LIVE and held(hold[1], hold[2], hold[3], now):
            return EnqueueResult(str(hold[0]), "duplicate", hold[1])
    for _ in range(RACE_RETRIES):
        new_id = await conn.fetchval(Q["insert_unique_job"], *row, now)
        if new_id is not None:
            status = "pending" if flow is None else await apply_flow(conn, new_id, key, flow)
            return EnqueueResult(str(new_id), "created", status)
        holder = await conn.fetchrow(Q["live_job_by_unique_key"], key)
        if holder is None:
            continue  # the holder finished between the statements: the key is free again
        if (
            flow is not None
            and flow.replace
            and holder[1] in ("pending", "waiting")
            and await conn.fetchval(Q["replace_pending"], holder[0], row[2], row[4]) is not None
        ):
            return EnqueueResult(str(holder[0]), "replaced", holder[1])
        return EnqueueResult(str(holder[0]), "duplicate", holder[1])
    raise StorageError(f"unique key {key!r} kept changing hands; try again")


async def take_keys(conn: Any, flows: Sequence[Flow | None]) -> None:
    """Make, retune and lock the batch's concurrency keys in key order, before any job takes
    a place: enqueues and finishes sharing keys lock them in one order (no deadlock). A
    raised limit promotes that many more held jobs."""
    limits = {f.concurrency_key: f.key_limit for f in flows if f and f.concurrency_key}
    if not limits:
        return
    keys = sorted(limits)
    await conn.execute(Q["ensure_key_slots"], keys, [limits[k] for k in keys])
    await conn.fetch(Q["lock_key_slots"], keys)
    for (key,) in await conn.fetch(Q["retune_key_slots"], keys, [limits[k] for k in keys]):
        promoted = await conn.fetch(Q["promote_held"], key)
        if promoted:
            await conn.execute(Q["count_promoted"], key, len(promoted))


async def insert_flow_jobs(
    conn: Any, prepared: list[tuple[Any, ...]], flows: Sequence[Flow | None], now: float
) -> list[EnqueueResult]:
    """A batch without unique keys: one statement (its keys made and locked first). A job
    held behind its key's limit comes back "waiting", as `app.job` then shows it."""
    ids, statuses = await conn.fetchrow(
        Q["insert_flow_jobs"],
        *statements.job_arrays(prepared, now)[:9],
        [f.expires_at if f else None for f in flows],
        int(now // 60),
        [f.concurrency_key if f else None for f in flows],
    )
    return [EnqueueResult(str(i), "created", s) for i, s in zip(ids, statuses, strict=True)]


async def apply_flow(conn: Any, job_id: int, key: str | None, flow: Flow) -> Status:
    """A new job's expiry, concurrency key (a place of its key, else held) and unique
    window; its status: "waiting" when held behind its key's limit, else "pending"."""
    status: Status = "pending"
    if flow.expires_at is not None or flow.concurrency_key is not None:
        await conn.execute(Q["set_job_flow"], job_id, flow.expires_at, flow.concurrency_key)
    if (
        flow.concurrency_key is not None
        and await conn.fetchval(Q["admit_key"], flow.concurrency_key) is None
    ):
        await conn.execute(Q["hold_job"], job_id)
        status = "waiting"
    if flow.unique_for is not None:
        await conn.execute(Q["set_unique_hold"], key, job_id, flow.unique_for)
    return status
