"""What Postgres statements need besides their SQL: bulk inserts (unnest arrays, binary
COPY), unique-key enqueues, the filters of job pages, the claim statement's arms."""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from forge_nb.errors import (
    StorageError,
    UnknownQueue,
)
from forge_nb.storage import rows, rules
from forge_nb.storage.extras import Extras, context_rows, created_tag_rows
from forge_nb.storage.kinds import build_claim
from forge_nb.storage.records import (
    STATUSES,
    EnqueueResult,
    Finish,
    JobLog,
    QueueConfig,
    created_results,
)
from forge_nb.storage.schema import load_queries

Q = load_queries("postgres")
#: A queue's page reads each status in an arm of its own (see ``list_queue_jobs``).
Q["list_queue_jobs"] = Q["list_queue_jobs"].replace(
    "{status_arms}",
    "\nUNION ALL\n".join(Q["list_queue_status_arm"].replace("{status}", s) for s in STATUSES),
)
log = logging.getLogger("forge_nb.storage")
#: A prepared job (`validation.prepare_job`) is kind, queue, payload, priority, scheduled_at,
#: max_attempts, unique_key, code_version: the first ``NAMED`` are written as they are, in
#: that order, by every insert; [6] and [7] are its unique key and code version.
NAMED = 6
#: Columns of a COPY into the jobs table, in `_copy_plain`'s record order.
COPY_COLUMNS = (
    "id",
    "kind",
    "queue",
    "payload",
    "priority",
    "scheduled_at",
    "max_attempts",
    "code_version",
    "created_at",
)
#: How often a statement that lost a race (unique key changing hands) is retried.
RACE_RETRIES = 5


class UniqueClash(StorageError):
    """A write hit the live-unique-key index (callers that expect it catch this)."""


class Deadlock(StorageError):
    """Postgres ended this transaction to break a lock cycle; trying again is safe."""


async def keep_session(conn: Any) -> None:
    """Pool reset hook that skips asyncpg's reset query (a round trip per operation).

    Safe because this module never changes session state: no SET, LISTEN, cursors or
    session-level advisory locks; asyncpg still rolls back an unfinished transaction.
    """


def password_forms(url: str) -> list[str]:
    """The URL's password as written and decoded (to scrub from messages)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    if not password:
        return []
    return sorted({password, unquote(password)}, key=len, reverse=True)


async def insert_plain(
    conn: Any, prepared: list[tuple[Any, ...]], now: float
) -> list[EnqueueResult]:
    """A batch without unique keys: one INSERT … SELECT FROM unnest."""
    ids = await conn.fetchval(Q["insert_jobs"], *job_arrays(prepared, now))
    return created_results(ids)


def insert_one_args(
    row: tuple[Any, ...], now: float, new_queue: bool, channel: str, wake: list[str]
) -> tuple[Any, ...]:
    """Parameters of ``insert_job``: one job without a unique key, its queue row only when
    ``new_queue``, and a NOTIFY of ``wake`` on ``channel`` in the same statement."""
    return (*row[:NAMED], now, int(now // 60), row[7], new_queue, channel, wake)


async def copy_plain(conn: Any, prepared: list[tuple[Any, ...]], now: float) -> list[EnqueueResult]:
    """A large key-less batch (in a transaction): ids from the sequence, then binary COPY."""
    queues = sorted({row[1] for row in prepared})
    ids = await conn.fetchval(Q["next_job_ids"], len(prepared), queues)
    await conn.copy_records_to_table(
        "forge_nb_jobs",
        records=[
            (new_id, *row[:NAMED], row[7], now) for new_id, row in zip(ids, prepared, strict=True)
        ],
        columns=COPY_COLUMNS,
    )
    await count_enqueued(conn, [row[1] for row in prepared], now)
    return created_results(ids)


async def count_enqueued(conn: Any, queues: list[str], now: float) -> None:
    """Jobs inserted outside ``insert_jobs`` (COPY, one unique job): metric and counts."""
    per_queue = Counter(queues)
    await conn.execute(
        Q["count_enqueued"], int(now // 60), list(per_queue), list(per_queue.values())
    )


def job_arrays(prepared: Sequence[tuple[Any, ...]], now: float) -> list[Any]:
    """Parameters of ``insert_jobs``: one array per column, now, queue names, metric minute."""
    columns = [list(c) for c in zip(*prepared, strict=True)]
    # Sorted queues: concurrent enqueuers take the queue rows' locks in the same order.
    return [*columns, now, sorted(set(columns[1])), int(now // 60)]


async def insert_with_keys(
    conn: Any, prepared: list[tuple[Any, ...]], now: float
) -> list[EnqueueResult]:
    """A batch with unique keys: one bulk insert, then resolve what it skipped.

    Only the first job of each key goes to the database, so an inserted key names its
    input row; later jobs with the same key are duplicates of whatever the first became.
    Key-less rows come back in input order (their ids rise with it).
    """
    first_of_key: dict[str, int] = {}
    sent: list[int] = []
    for index, row in enumerate(prepared):
        key = row[6]
        if key is None or key not in first_of_key:
            if key is not None:
                first_of_key[key] = index
            sent.append(index)
    found = await conn.fetch(Q["insert_jobs_unique"], *job_arrays([prepared[i] for i in sent], now))
    created_by_key = {r[1]: r[0] for r in found if r[1] is not None}
    plain_ids = iter(sorted(r[0] for r in found if r[1] is None))
    results: list[EnqueueResult | None] = [None] * len(prepared)
    skipped: list[int] = []
    for index in sent:
        key = prepared[index][6]
        new_id = next(plain_ids) if key is None else created_by_key.get(key)
        if new_id is None:
            skipped.append(index)
        else:
            results[index] = EnqueueResult(str(new_id), "created", "pending")
    if skipped:
        keys = [prepared[i][6] for i in skipped]
        holders = {
            r[0]: (r[1], r[2]) for r in await conn.fetch(Q["live_jobs_by_unique_keys"], keys)
        }
        for index in skipped:
            holder = holders.get(prepared[index][6])
            if holder is not None:
                results[index] = EnqueueResult(str(holder[0]), "duplicate", holder[1])
            else:  # the holder ended between the statements: the key is free again
                results[index] = await insert_unique(conn, prepared[index], now)
    out = []
    for index, result in enumerate(results):
        if result is None:  # a repeat of a key earlier in the batch
            first = results[first_of_key[prepared[index][6]]]
            assert first is not None
            result = EnqueueResult(first.id, "duplicate", first.status)
        out.append(result)
    return out


async def insert_unique(conn: Any, row: tuple[Any, ...], now: float) -> EnqueueResult:
    """Insert one job unless a live job holds its unique key (then return that job)."""
    for _ in range(RACE_RETRIES):
        new_id = await conn.fetchval(Q["insert_unique_job"], *row, now)
        if new_id is not None:
            await count_enqueued(conn, [row[1]], now)
            return EnqueueResult(str(new_id), "created", "pending")
        holder = await conn.fetchrow(Q["live_job_by_unique_key"], row[6])
        if holder is not None:
            return EnqueueResult(str(holder[0]), "duplicate", holder[1])
        # The holder finished between the two statements: the key is free again.
    raise StorageError(f"unique key {row[6]!r} kept changing hands; try again")


def finish_arrays(batch: Mapping[int, Finish]) -> list[list[Any]]:
    """Column arrays for the ``finish`` statement ($2 … $10)."""
    fs = list(batch.values())
    return [
        list(batch),
        [f.attempt for f in fs],
        [f.status for f in fs],
        [f.event for f in fs],
        [f.result_json for f in fs],
        [f.error for f in fs],
        [f.traceback for f in fs],
        [f.scheduled_at for f in fs],
        [1 if f.refund_attempt else 0 for f in fs],
    ]


async def apply_knobs(conn: Any, name: str, knobs: Mapping[str, Any]) -> QueueConfig:
    """Update an existing queue row (inside the caller's transaction) and return it."""
    if knobs:
        sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(knobs, 2))  # keys are QUEUE_KNOBS
        await conn.execute(Q["set_queue_knobs"].replace("{sets}", sets), name, *knobs.values())
    found = await conn.fetchrow(Q["queue_config"], name)
    if found is None:
        raise UnknownQueue(f"unknown queue {name!r}")
    return rules.checked_config(rows.queue_config(found))


@functools.lru_cache(maxsize=32)
def claim_sql(arms: int, versions: bool = False) -> str:
    """The ``claim_kinds`` statement with ``arms`` arms (kinds are $6, $7, …; the code versions
    not to claim, when ``versions``, follow them)."""
    if not versions:
        return build_claim(Q["claim_kinds"], Q["claim_arm"], arms, lambda i: f"${6 + i}")
    arm = Q["claim_arm_versions"].replace("{excluded}", f"${6 + arms}")
    return build_claim(Q["claim_kinds"], arm, arms, lambda i: f"${6 + i}")


async def insert_extras(conn: Any, results: list[EnqueueResult], more: Extras) -> None:
    """The tag and context rows of a batch's created jobs, one statement each."""
    tag_rows = created_tag_rows(results, more.tags)
    if tag_rows:
        tags, keys = zip(*tag_rows, strict=True)
        await conn.execute(Q["insert_job_tag"], list(tags), list(keys))
    contexts = context_rows(results, more)
    if contexts:
        keys, texts = zip(*contexts, strict=True)
        await conn.execute(Q["insert_job_context"], list(keys), list(texts))


def outcome_log_arrays(finishes: Iterable[Finish]) -> tuple[list[Any], ...]:
    """finish_logged's log arrays, one entry per outcome (texts, lines, dropped, times;
    None where the run has no log to store)."""
    logs = [f.log for f in finishes]
    return (
        [None if log is None else log.text for log in logs],
        [None if log is None else log.lines for log in logs],
        [None if log is None else log.dropped for log in logs],
        [None if log is None else log.updated_at for log in logs],
    )


def log_arrays(logs: Sequence[tuple[int, JobLog]]) -> tuple[list[Any], ...]:
    """write_job_logs_batch's arrays (job ids, attempts, texts, lines, dropped, times)."""
    return (
        [key for key, _ in logs],
        [log.attempt for _, log in logs],
        [log.text for _, log in logs],
        [log.lines for _, log in logs],
        [log.dropped for _, log in logs],
        [log.updated_at for _, log in logs],
    )
