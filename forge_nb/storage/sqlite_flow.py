"""SQLite's enqueue of jobs with flow options (SPEC §9.3), a row at a time under the write
lock: unique windows, replace, expiry and per-key concurrency keys."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from forge_nb.storage import sqlite_statements as statements
from forge_nb.storage import sqlite_workflows as workflows
from forge_nb.storage.extras import Extras
from forge_nb.storage.flow_rules import Flow, held
from forge_nb.storage.records import EnqueueResult, Status
from forge_nb.storage.schema import load_queries
from forge_nb.storage.validation import has_unique_keys

Q = load_queries("sqlite")
LIVE = ("waiting", "pending", "running", "failed")


def enqueue(
    c: sqlite3.Connection,
    prepared: list[tuple[Any, ...]],
    flows: Sequence[Flow | None],
    now: float,
    new_queues: set[str],
    links: Sequence[tuple[int, list[int]]] = (),
    more: Extras | None = None,
) -> list[EnqueueResult]:
    """The plain enqueue unless a job has flow options or a key may be held by a window."""
    keyed = has_unique_keys(prepared)
    if not any(flows) and not (keyed and c.execute(Q["unique_holds_exist"]).fetchone()[0]):
        return statements.enqueue(c, prepared, now, new_queues, links, more)
    for queue in sorted(new_queues):
        c.execute(Q["ensure_queue_row"], (queue,))
    take_keys(c, flows)
    results = [enqueue_one(c, row, flow, now) for row, flow in zip(prepared, flows, strict=True)]
    created = [row[1] for row, r in zip(prepared, results, strict=True) if r.outcome == "created"]
    statements.count_enqueued(c, created, now)
    statements.insert_extras(c, results, more)
    return workflows.link_dependencies(c, results, links, now) if links else results


def enqueue_one(
    c: sqlite3.Connection, row: tuple[Any, ...], flow: Flow | None, now: float
) -> EnqueueResult:
    """Insert one job unless its key is taken: by a live job (ignore, or replace a pending
    one) or by a finished one within its window."""
    key = row[6]
    if key is not None:
        hold = c.execute(Q["unique_hold"], (key,)).fetchone()
        if hold is not None and hold[1] not in LIVE and held(hold[1], hold[2], hold[3], now):
            return EnqueueResult(str(hold[0]), "duplicate", hold[1])
    cursor = c.execute(Q["insert_unique_job"], (*row, now))
    if cursor.rowcount == 1:
        new_id = cursor.lastrowid
        status = "pending" if flow is None else apply_flow(c, new_id, key, flow)
        return EnqueueResult(str(new_id), "created", status)
    holder = c.execute(Q["live_job_by_unique_key"], (key,)).fetchone()
    if (
        flow is not None
        and flow.replace
        and holder[1] in ("pending", "waiting")
        and c.execute(Q["replace_pending"], (holder[0], row[2], row[4])).fetchone()
    ):
        return EnqueueResult(str(holder[0]), "replaced", holder[1])
    return EnqueueResult(str(holder[0]), "duplicate", holder[1])


def take_keys(c: sqlite3.Connection, flows: Sequence[Flow | None]) -> None:
    """Make and retune the batch's concurrency keys before any job takes a place; a raised
    limit promotes that many more held jobs."""
    limits = {f.concurrency_key: f.key_limit for f in flows if f and f.concurrency_key}
    for key in sorted(limits):
        c.execute(Q["ensure_key_slot"], (key, limits[key]))
        if c.execute(Q["retune_key_slot"], (key, limits[key])).fetchone() is not None:
            promoted = c.execute(Q["promote_held"], (key,)).fetchall()
            if promoted:
                c.execute(Q["count_promoted"], (key, len(promoted)))


def apply_flow(c: sqlite3.Connection, job_id: Any, key: str | None, flow: Flow) -> Status:
    """A new job's expiry, concurrency key (a place of its key, else held) and unique
    window; its status: "waiting" when held behind its key's limit, else "pending"."""
    status: Status = "pending"
    if flow.expires_at is not None or flow.concurrency_key is not None:
        c.execute(Q["set_job_flow"], (job_id, flow.expires_at, flow.concurrency_key))
    if (
        flow.concurrency_key is not None
        and c.execute(Q["admit_key"], (flow.concurrency_key,)).fetchone() is None
    ):
        c.execute(Q["hold_job"], (job_id,))
        status = "waiting"
    if flow.unique_for is not None:
        c.execute(Q["set_unique_hold"], (key, job_id, flow.unique_for))
    return status
