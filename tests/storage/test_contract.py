"""The storage contract (`forge_nb.storage.base.Storage`), run unchanged on SQLite and Postgres.

Every test gets a fresh database through the ``storage`` fixture (parametrized ``sqlite`` /
``postgres``). Time is a fake clock: the storage takes ``now`` from the caller, so tests move it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from forge_nb.errors import PayloadError, UnknownQueue, UnknownRateLimit
from forge_nb.storage import Storage, open_storage, rows
from forge_nb.storage.records import (
    STATUSES,
    ClaimedJob,
    Finish,
    JobFilter,
    JobRecord,
    Lease,
    MetricRow,
    NewJob,
    ProcessRecord,
    QueueConfig,
    Schedule,
    Status,
)
from forge_nb.storage.validation import MAX_PAYLOAD_BYTES

NOW = 1_700_000_000.0
HOST = "host-a"
OTHER_HOST = "host-b"
UNKNOWN_ID = "987654321"


# -- helpers -------------------------------------------------------------------------------------


def at(seconds: float) -> Any:
    """Matches a time (epoch seconds) to the millisecond."""
    return pytest.approx(seconds, abs=1e-3)


def ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def new_job(kind: str = "work", queue: str = "q", **kw: Any) -> NewJob:
    return NewJob(kind=kind, queue=queue, **kw)


async def enqueue_one(storage: Storage, now: float = NOW, **kw: Any) -> str:
    """Enqueue one new job; its id."""
    [result] = await storage.enqueue([new_job(**kw)], now)
    assert result.outcome == "created"
    return result.id


async def get(storage: Storage, job_id: str) -> JobRecord:
    job = await storage.get_job(job_id)
    assert job is not None, f"job {job_id} is missing"
    return job


async def claim_one(
    storage: Storage, queue: str = "q", host: str = HOST, now: float = NOW
) -> ClaimedJob:
    claimed = await storage.claim(queue, host, 1, now)
    assert len(claimed) == 1, f"expected one runnable job in {queue!r}, got {claimed}"
    return claimed[0]


async def run_job(storage: Storage, host: str = HOST, now: float = NOW, **kw: Any) -> ClaimedJob:
    """Enqueue a job and claim it (the queue must hold no other runnable job)."""
    job_id = await enqueue_one(storage, now=now, **kw)
    job = await claim_one(storage, queue=kw.get("queue", "q"), host=host, now=now)
    assert job.id == job_id
    return job


def done(job: ClaimedJob, result: Any = None) -> Finish:
    return Finish(job.id, job.attempt, "done", "done", result_json=json.dumps(result))


def failed(job: ClaimedJob, retry_at: float, error: str = "boom") -> Finish:
    return Finish(job.id, job.attempt, "failed", "failed", error=error, scheduled_at=retry_at)


async def job_in_status(storage: Storage, status: Status, host: str = HOST, **kw: Any) -> str:
    """A job in ``status``. Non-pending ones are claimed, so make them before pending ones."""
    if status == "pending":
        return await enqueue_one(storage, **kw)
    job = await run_job(storage, host=host, **kw)
    outcome = {
        "running": None,
        "done": done(job, "ok"),
        "failed": failed(job, retry_at=NOW + 3600),
        "dead": Finish(job.id, job.attempt, "dead", "dead", error="fatal"),
    }[status]
    if outcome is not None:
        assert await storage.finish(host, [outcome], NOW) == [job.id]
    return job.id


async def event_names(storage: Storage, job_id: str) -> list[str]:
    return [e.event for e in await storage.job_events(job_id)]


async def ids_of(storage: Storage, filter: JobFilter = JobFilter()) -> list[str]:
    return [j.id for j in (await storage.list_jobs(filter, limit=1000)).jobs]


async def collect_pages(storage: Storage, filter: JobFilter, limit: int) -> list[str]:
    """Every id ``list_jobs`` yields, page after page, in order."""
    seen: list[str] = []
    cursor = None
    for _ in range(10_000):
        page = await storage.list_jobs(filter, limit=limit, cursor=cursor)
        assert len(page.jobs) <= limit
        seen.extend(j.id for j in page.jobs)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor
    raise AssertionError("pagination never ended")


def zero_counts(**n: int) -> dict[str, int]:
    return {status: n.get(status, 0) for status in STATUSES}


async def assert_nothing_stored(storage: Storage) -> None:
    assert await storage.counts() == {}
    assert await ids_of(storage) == []
    assert await storage.queues() == []
    assert await storage.read_metrics(0, NOW + 10**6) == [], "no enqueued metric either"


# -- lifecycle -------------------------------------------------------------------------------------


async def test_storage_implements_the_protocol(storage: Storage, db_url: str) -> None:
    assert isinstance(storage, Storage)
    assert storage.backend == ("sqlite" if db_url.startswith("sqlite") else "postgres")
    assert storage.safe_url.split("://")[0] == db_url.split("://")[0]


async def test_close_is_idempotent(db_url: str) -> None:
    from forge_nb.storage import open_storage

    storage = await open_storage(db_url)
    await storage.close()
    await storage.close()


# -- enqueue ---------------------------------------------------------------------------------------


async def test_enqueue_stores_every_field(storage: Storage) -> None:
    payload = {
        "text": "héllo wörld ✓ 日本語 🚀",
        "quote": 'it\'s "quoted" \\ back',
        "n": 3,
        "ratio": 0.25,
        "items": [1, None, True, {"deep": ["x"]}],
    }
    [result] = await storage.enqueue(
        [
            NewJob(
                kind="fetch",
                queue="net",
                payload=payload,
                priority=7,
                delay=30,
                max_attempts=3,
                unique_key="u-1",
            )
        ],
        NOW,
    )
    assert isinstance(result.id, str) and result.id
    assert (result.outcome, result.status) == ("created", "pending")

    job = await get(storage, result.id)
    assert job.id == result.id
    assert (job.kind, job.queue, job.payload) == ("fetch", "net", payload)
    assert (job.priority, job.max_attempts, job.unique_key) == (7, 3, "u-1")
    assert (job.status, job.attempts) == ("pending", 0)
    assert ts(job.created_at) == at(NOW)
    assert ts(job.scheduled_at) == at(NOW + 30)
    assert job.created_at.utcoffset() is not None, "times are timezone-aware"
    assert job.result is job.last_error is job.last_traceback is None
    assert job.progress is job.progress_message is None
    assert job.started_at is job.finished_at is job.claimed_by is job.cancel_requested_at is None


async def test_enqueue_defaults(storage: Storage) -> None:
    job = await get(storage, await enqueue_one(storage))
    assert (job.priority, job.max_attempts, job.unique_key, job.payload) == (0, 5, None, {})
    assert ts(job.scheduled_at) == at(NOW)


async def test_enqueue_many_returns_ids_in_input_order(storage: Storage) -> None:
    results = await storage.enqueue([new_job(payload={"i": i}) for i in range(6)], NOW)
    ids = [r.id for r in results]
    assert all(isinstance(i, str) for i in ids)
    assert len(set(ids)) == 6
    assert [(await get(storage, i)).payload for i in ids] == [{"i": i} for i in range(6)]
    assert [r.outcome for r in results] == ["created"] * 6


async def test_enqueue_of_an_empty_batch_does_nothing(storage: Storage) -> None:
    assert await storage.enqueue([], NOW) == []
    await assert_nothing_stored(storage)


async def test_absolute_scheduled_at_wins_over_delay(storage: Storage) -> None:
    job_id = await enqueue_one(storage, delay=5, scheduled_at=NOW + 3600)
    assert ts((await get(storage, job_id)).scheduled_at) == at(NOW + 3600)


async def test_enqueue_creates_its_queue_with_default_config(storage: Storage) -> None:
    await enqueue_one(storage, queue="emails")
    assert await storage.queues() == [QueueConfig(name="emails")]
    assert await storage.counts() == {"emails": zero_counts(pending=1)}


async def test_enqueue_keeps_the_config_of_an_existing_queue(storage: Storage) -> None:
    config = await storage.ensure_queue("emails", workers=2, paused=True)
    await enqueue_one(storage, queue="emails")
    assert await storage.queues() == [config]


async def test_counts_every_queue_and_every_status(storage: Storage) -> None:
    for status in ("running", "failed", "done", "dead", "pending"):
        await job_in_status(storage, status)
    await job_in_status(storage, "pending")
    await storage.ensure_queue("idle")
    assert await storage.counts() == {
        "q": zero_counts(pending=2, running=1, failed=1, done=1, dead=1),
        "idle": zero_counts(),
    }


# -- bad input writes nothing ----------------------------------------------------------------------

BAD_JOBS = [
    pytest.param({"payload": {"x": object()}}, "(?i)json", id="object-in-payload"),
    pytest.param({"payload": {"x": float("nan")}}, "(?i)json", id="nan-in-payload"),
    pytest.param({"payload": {"x": float("inf")}}, "(?i)json", id="inf-in-payload"),
    pytest.param({"payload": [1, 2]}, "payload", id="list-payload"),
    pytest.param({"payload": "text"}, "payload", id="str-payload"),
    pytest.param({"payload": None}, "payload", id="none-payload"),
    pytest.param({"delay": -1}, "delay", id="negative-delay"),
    pytest.param({"delay": float("nan")}, "delay", id="nan-delay"),
    pytest.param({"kind": ""}, "kind", id="empty-kind"),
    pytest.param({"kind": "   "}, "kind", id="blank-kind"),
    pytest.param({"queue": ""}, "queue", id="empty-queue"),
    pytest.param({"max_attempts": 0}, "max_attempts", id="zero-max-attempts"),
    pytest.param({"priority": "high"}, "priority", id="str-priority"),
    pytest.param({"priority": 2**63}, "priority", id="priority-beyond-64-bit"),
    pytest.param({"max_attempts": 2**63}, "max_attempts", id="max-attempts-beyond-64-bit"),
    pytest.param({"payload": {"s": "\ud800"}}, "payload", id="lone-surrogate-in-payload"),
    pytest.param({"payload": {"blob": "x" * MAX_PAYLOAD_BYTES}}, "payload", id="oversized-payload"),
    pytest.param(
        {"payload": {"blob": "é" * (MAX_PAYLOAD_BYTES // 2 + 1)}},
        "payload",
        id="oversized-multibyte-payload",
    ),
]


@pytest.mark.parametrize(("bad", "message"), BAD_JOBS)
async def test_bad_job_is_refused_and_nothing_is_written(
    storage: Storage, bad: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await storage.enqueue([new_job(**bad)], NOW)
    await assert_nothing_stored(storage)


@pytest.mark.parametrize(("bad", "message"), BAD_JOBS)
async def test_one_bad_job_in_a_batch_stores_none_of_the_batch(
    storage: Storage, bad: dict[str, Any], message: str
) -> None:
    batch = [new_job(payload={"i": 0}), new_job(**bad), new_job(payload={"i": 2})]
    with pytest.raises(ValueError, match=message):
        await storage.enqueue(batch, NOW)
    await assert_nothing_stored(storage)


async def test_payload_errors_are_payload_errors(storage: Storage) -> None:
    with pytest.raises(PayloadError):
        await storage.enqueue([new_job(payload={"when": datetime.now(UTC)})], NOW)
    assert issubclass(PayloadError, ValueError)


async def test_payload_at_the_size_limit_is_accepted(storage: Storage) -> None:
    overhead = len(json.dumps({"blob": ""}, separators=(",", ":")))
    payload = {"blob": "x" * (MAX_PAYLOAD_BYTES - overhead)}
    job_id = await enqueue_one(storage, payload=payload)
    assert (await get(storage, job_id)).payload == payload


# -- unique keys -----------------------------------------------------------------------------------


async def test_duplicate_unique_key_returns_the_live_job(storage: Storage) -> None:
    first = await enqueue_one(storage, unique_key="report:42", payload={"n": 1})
    [dup] = await storage.enqueue([new_job(unique_key="report:42", payload={"n": 2})], NOW + 1)
    assert (dup.id, dup.outcome, dup.status) == (first, "duplicate", "pending")
    assert await ids_of(storage) == [first]
    assert (await get(storage, first)).payload == {"n": 1}


async def test_unique_key_is_held_while_running_and_failed(storage: Storage) -> None:
    job = await run_job(storage, unique_key="k")
    [dup] = await storage.enqueue([new_job(unique_key="k")], NOW)
    assert (dup.id, dup.outcome, dup.status) == (job.id, "duplicate", "running")

    await storage.finish(HOST, [failed(job, retry_at=NOW + 60)], NOW)
    [dup] = await storage.enqueue([new_job(unique_key="k")], NOW)
    assert (dup.id, dup.outcome, dup.status) == (job.id, "duplicate", "failed")
    assert await ids_of(storage) == [job.id]


async def test_unique_key_is_free_again_once_the_holder_is_done(storage: Storage) -> None:
    job = await run_job(storage, unique_key="k")
    assert await storage.finish(HOST, [done(job)], NOW) == [job.id]
    [again] = await storage.enqueue([new_job(unique_key="k")], NOW + 1)
    assert again.outcome == "created"
    assert again.id != job.id
    assert set(await ids_of(storage)) == {job.id, again.id}


async def test_unique_key_is_free_again_once_the_holder_is_dead(storage: Storage) -> None:
    first = await enqueue_one(storage, unique_key="k")
    assert await storage.request_cancel(first, NOW) == "dead"
    [again] = await storage.enqueue([new_job(unique_key="k")], NOW + 1)
    assert again.outcome == "created" and again.id != first


async def test_duplicates_within_one_batch(storage: Storage) -> None:
    results = await storage.enqueue(
        [
            new_job(unique_key="a", payload={"i": 0}),
            new_job(unique_key="a", payload={"i": 1}),
            new_job(unique_key="b", payload={"i": 2}),
            new_job(payload={"i": 3}),
            new_job(unique_key="b", payload={"i": 4}),
        ],
        NOW,
    )
    assert [r.outcome for r in results] == [
        "created",
        "duplicate",
        "created",
        "created",
        "duplicate",
    ]
    assert results[1].id == results[0].id
    assert results[4].id == results[2].id
    assert len({results[0].id, results[2].id, results[3].id}) == 3
    assert len(await ids_of(storage)) == 3
    assert (await get(storage, results[0].id)).payload == {"i": 0}


async def test_jobs_without_unique_key_never_clash(storage: Storage) -> None:
    results = await storage.enqueue([new_job(), new_job()], NOW)
    assert [r.outcome for r in results] == ["created", "created"]
    assert results[0].id != results[1].id


# -- claim -----------------------------------------------------------------------------------------


async def test_finish_applies_the_latest_run_when_a_batch_also_holds_an_earlier_ones(
    storage: Storage,
) -> None:
    """An outcome held back through an outage, then the job reaped and claimed again."""
    job_id = await enqueue_one(storage)
    [first] = await storage.claim("q", HOST, 1, NOW)
    await storage.reap(NOW + 10, NOW + 10, [HOST])  # presumed dead: back to the retry path
    [second] = await storage.claim("q", HOST, 1, NOW + 11)
    assert (first.id, first.attempt, second.attempt) == (job_id, 1, 2)
    stale = Finish(job_id, 1, "done", "done", result_json='"first"')
    latest = Finish(job_id, 2, "done", "done", result_json='"second"')
    assert await storage.finish(HOST, [stale, latest], NOW + 12) == [job_id]
    job = await storage.get_job(job_id)
    assert job is not None and (job.status, job.result) == ("done", "second")


async def test_release_claims_gives_back_exactly_what_those_claims_took(
    storage: Storage,
) -> None:
    """A claim whose reply was lost: its jobs go back to pending, attempt refunded."""
    ids = [await enqueue_one(storage) for _ in range(5)]
    await enqueue_one(storage, queue="other")
    lost = await storage.claim("q", HOST, 2, NOW + 1.25)  # committed, reply never heard
    kept = await storage.claim("q", HOST, 1, NOW + 2.5)
    [elsewhere] = await storage.claim("other", HOST, 1, NOW + 1.25)
    [theirs] = await storage.claim("q", "host-b", 1, NOW + 1.25)
    finished = await storage.claim("q", HOST, 1, NOW + 3.75)
    await storage.finish(HOST, [Finish(finished[0].id, 1, "done", "done")], NOW + 4)
    assert await storage.release_claims("q", HOST, []) == []

    released = await storage.release_claims("q", HOST, [NOW + 1.25, NOW + 3.75, NOW + 9])
    assert released == sorted((j.id for j in lost), key=int)
    for job_id in released:
        job = await storage.get_job(job_id)
        assert job is not None and (job.status, job.attempts) == ("pending", 0)
    still_running = {kept[0].id, elsewhere.id, theirs.id}
    for job_id in still_running:
        job = await storage.get_job(job_id)
        assert job is not None and job.status == "running", job_id
    assert (await storage.get_job(finished[0].id)).status == "done"  # type: ignore[union-attr]
    assert (await storage.counts())["q"] == {
        "pending": 2,
        "running": 2,
        "failed": 0,
        "done": 1,
        "dead": 0,
    }
    again = await storage.claim("q", HOST, 5, NOW + 5)
    assert sorted((j.id for j in again), key=int) == released
    assert {j.attempt for j in again} == {1}, "the lost claim's attempt was given back"
    assert set(ids) >= set(released)


async def test_claim_order_is_priority_then_scheduled_at_then_id(storage: Storage) -> None:
    specs = [  # (label, priority, scheduled at NOW + offset)
        ("low-early", 0, -30),
        ("high-late", 5, -10),
        ("high-early", 5, -20),
        ("mid", 1, -40),
        ("high-late-2", 5, -10),
        ("low-late", 0, -5),
    ]
    for label, priority, offset in specs:
        await enqueue_one(
            storage, priority=priority, scheduled_at=NOW + offset, payload={"l": label}
        )
    order = [(await claim_one(storage)).payload["l"] for _ in specs]
    assert order == ["high-early", "high-late", "high-late-2", "mid", "low-early", "low-late"]


async def test_claim_of_a_batch_takes_the_best_jobs(storage: Storage) -> None:
    for priority in (0, 3, 1, 3, 2):
        await enqueue_one(storage, priority=priority, payload={"p": priority})
    claimed = await storage.claim("q", HOST, 3, NOW)
    assert sorted(j.payload["p"] for j in claimed) == [2, 3, 3]


async def test_claim_takes_at_most_limit_jobs(storage: Storage) -> None:
    await storage.enqueue([new_job(payload={"i": i}) for i in range(5)], NOW)
    first = await storage.claim("q", HOST, 2, NOW)
    rest = await storage.claim("q", HOST, 10, NOW)
    assert (len(first), len(rest)) == (2, 3)
    assert not {j.id for j in first} & {j.id for j in rest}
    assert await storage.claim("q", HOST, 10, NOW) == []
    assert (await storage.counts())["q"] == zero_counts(running=5)


async def test_claim_skips_jobs_scheduled_in_the_future(storage: Storage) -> None:
    job_id = await enqueue_one(storage, delay=60)
    assert await storage.claim("q", HOST, 10, NOW + 59) == []
    assert [j.id for j in await storage.claim("q", HOST, 10, NOW + 60)] == [job_id]


async def test_claim_only_takes_jobs_of_its_queue(storage: Storage) -> None:
    mine = await enqueue_one(storage, queue="mine")
    await enqueue_one(storage, queue="theirs")
    assert [j.id for j in await storage.claim("mine", HOST, 10, NOW)] == [mine]
    assert await storage.claim("nowhere", HOST, 10, NOW) == []


async def test_paused_queue_claims_nothing(storage: Storage) -> None:
    job_id = await enqueue_one(storage)
    await storage.update_queue("q", paused=True)
    assert await storage.claim("q", HOST, 10, NOW) == []
    assert (await get(storage, job_id)).status == "pending"
    await storage.update_queue("q", paused=False)
    assert [j.id for j in await storage.claim("q", HOST, 10, NOW)] == [job_id]


async def test_claim_takes_only_the_kinds_it_is_given(storage: Storage) -> None:
    slow = await enqueue_one(storage, kind="slow", priority=9)
    fast = await enqueue_one(storage, kind="fast")
    claimed = await storage.claim("q", HOST, 10, NOW, kinds=["fast", "other"])
    assert [j.id for j in claimed] == [fast]
    assert await storage.claim("q", HOST, 10, NOW, kinds=["other"]) == []
    assert await storage.claim("q", HOST, 10, NOW, kinds=[]) == [], "no kinds: nothing"
    assert [j.id for j in await storage.claim("q", HOST, 10, NOW, kinds={"slow"})] == [slow]


async def test_jobs_of_kinds_no_claimer_runs_stay_pending_with_attempts_unspent(
    storage: Storage,
) -> None:
    failed_id = await job_in_status(storage, "failed", kind="score")  # waiting for a retry
    foreign = [await enqueue_one(storage, kind=k, priority=5) for k in ("score", "slow_sync")]
    mine = [await enqueue_one(storage, kind="mine") for _ in range(3)]
    for t in range(3):  # claim after claim, as a worker does
        claimed = await storage.claim("q", HOST, 10, NOW + 7200 + t, kinds=["mine", "echo"])
        assert {j.id for j in claimed} == ({*mine} if t == 0 else set())
    for job_id in foreign:
        job = await get(storage, job_id)
        assert (job.status, job.attempts, job.claimed_by, job.started_at) == (
            "pending",
            0,
            None,
            None,
        )
    assert (await get(storage, failed_id)).status == "failed"
    assert (await storage.counts())["q"] == zero_counts(pending=2, running=3, failed=1)


async def test_claim_by_kind_keeps_claim_order_across_kinds(storage: Storage) -> None:
    specs = [  # (kind, priority, schedule offset)
        ("a", 0, -50),
        ("b", 5, -20),
        ("c", 5, -30),
        ("a", 5, -10),
        ("b", 0, -60),
        ("c", 0, -40),
        ("x", 9, -90),  # not claimed: a kind nobody here runs, ahead of everything
    ]
    for kind, priority, offset in specs:
        await enqueue_one(
            storage, kind=kind, priority=priority, scheduled_at=NOW + offset, payload={"k": kind}
        )
    order = []
    for _ in range(6):
        [job] = await storage.claim("q", HOST, 1, NOW, kinds=["a", "b", "c"])
        order.append((job.kind, job.priority, job.scheduled_at - NOW))
    assert order == [
        ("c", 5, at(-30)),
        ("b", 5, at(-20)),
        ("a", 5, at(-10)),
        ("b", 0, at(-60)),
        ("a", 0, at(-50)),
        ("c", 0, at(-40)),
    ]
    assert await storage.claim("q", HOST, 10, NOW, kinds=["a", "b", "c"]) == []


async def test_a_backlog_of_other_kinds_ahead_does_not_hide_runnable_jobs(
    storage: Storage,
) -> None:
    await storage.enqueue([new_job(kind="other", priority=1) for _ in range(300)], NOW - 10)
    mine = await storage.enqueue([new_job(kind="mine", payload={"i": i}) for i in range(30)], NOW)
    first = await storage.claim("q", HOST, 20, NOW, kinds=["mine"])
    rest = await storage.claim("q", HOST, 20, NOW, kinds=["mine"])
    assert [j.payload["i"] for j in first + rest] == list(range(30)), "in id order, all of them"
    assert {j.id for j in first + rest} == {r.id for r in mine}


@pytest.mark.parametrize("n_kinds", [1, 3, 5, 257, 600])
async def test_claim_by_kind_works_for_any_number_of_kinds(storage: Storage, n_kinds: int) -> None:
    kinds = [f"k{i:03d}" for i in range(n_kinds)]
    wanted = kinds[:: max(1, n_kinds // 4)]
    ids = [await enqueue_one(storage, kind=k, payload={"k": k}) for k in wanted]
    await enqueue_one(storage, kind="nobody")
    claimed = await storage.claim("q", HOST, 100, NOW, kinds=kinds)
    assert sorted(j.id for j in claimed) == sorted(ids)
    assert (await storage.counts())["q"]["pending"] == 1


async def test_claim_marks_the_job_running_and_counts_the_attempt(storage: Storage) -> None:
    job_id = await enqueue_one(
        storage, kind="fetch", payload={"url": "https://example.org"}, priority=2, max_attempts=4
    )
    job = await claim_one(storage, now=NOW + 5)
    assert job.id == job_id
    assert (job.kind, job.queue, job.payload) == ("fetch", "q", {"url": "https://example.org"})
    assert (job.attempt, job.max_attempts, job.priority) == (1, 4, 2)
    assert job.created_at == at(NOW) and job.scheduled_at == at(NOW)

    record = await get(storage, job_id)
    assert (record.status, record.attempts, record.claimed_by) == ("running", 1, HOST)
    assert ts(record.started_at) == at(NOW + 5)


async def test_failed_job_is_claimable_again_once_its_retry_time_passes(storage: Storage) -> None:
    job = await run_job(storage)
    await storage.finish(HOST, [failed(job, retry_at=NOW + 30)], NOW + 1)
    assert await storage.claim("q", HOST, 10, NOW + 29) == []
    again = await claim_one(storage, host=OTHER_HOST, now=NOW + 30)
    assert (again.id, again.attempt) == (job.id, 2)
    record = await get(storage, job.id)
    assert (record.status, record.attempts, record.claimed_by) == ("running", 2, OTHER_HOST)


# -- finish ----------------------------------------------------------------------------------------


async def test_finish_done_stores_the_result(storage: Storage) -> None:
    job = await run_job(storage)
    result = {"answer": 42, "text": "ünïcode ✓", "list": [1.5, None]}
    assert await storage.finish(HOST, [done(job, result)], NOW + 2) == [job.id]
    record = await get(storage, job.id)
    assert (record.status, record.result, record.attempts) == ("done", result, 1)
    assert ts(record.finished_at) == at(NOW + 2)
    assert (await storage.counts())["q"] == zero_counts(done=1)


async def test_finish_failed_schedules_a_retry_and_keeps_the_error(storage: Storage) -> None:
    job = await run_job(storage)
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: root'
    finish = Finish(
        job.id,
        job.attempt,
        "failed",
        "failed",
        error="top: middle: root",
        traceback=traceback,
        scheduled_at=NOW + 30,
    )
    assert await storage.finish(HOST, [finish], NOW + 1) == [job.id]
    record = await get(storage, job.id)
    assert (record.status, record.attempts) == ("failed", 1)
    assert (record.last_error, record.last_traceback) == ("top: middle: root", traceback)
    assert ts(record.scheduled_at) == at(NOW + 30)
    events = await storage.job_events(job.id)
    assert [(e.event, e.attempt, e.message) for e in events if e.event == "failed"] == [
        ("failed", 1, "top: middle: root")
    ]
    assert events[-1].at == at(NOW + 1)


async def test_finish_dead(storage: Storage) -> None:
    job = await run_job(storage)
    finish = Finish(job.id, job.attempt, "dead", "dead", error="gave up")
    assert await storage.finish(HOST, [finish], NOW + 1) == [job.id]
    record = await get(storage, job.id)
    assert (record.status, record.last_error) == ("dead", "gave up")
    assert ts(record.finished_at) == at(NOW + 1)
    assert "dead" in await event_names(storage, job.id)
    assert await storage.claim("q", HOST, 10, NOW + 10_000) == []


async def test_finish_pending_with_refund_gives_the_attempt_back(storage: Storage) -> None:
    job = await run_job(storage)
    throttled = Finish(
        job.id, job.attempt, "pending", "throttled", scheduled_at=NOW + 10, refund_attempt=True
    )
    assert await storage.finish(HOST, [throttled], NOW + 1) == [job.id]
    record = await get(storage, job.id)
    assert (record.status, record.attempts) == ("pending", 0)
    assert ts(record.scheduled_at) == at(NOW + 10)
    assert "throttled" in await event_names(storage, job.id)
    assert await storage.claim("q", HOST, 10, NOW + 9) == []
    assert (await claim_one(storage, now=NOW + 10)).attempt == 1


async def test_finish_from_another_host_is_ignored(storage: Storage) -> None:
    job = await run_job(storage)
    assert await storage.finish(OTHER_HOST, [done(job, "stolen")], NOW + 1) == []
    record = await get(storage, job.id)
    assert (record.status, record.result, record.claimed_by) == ("running", None, HOST)


async def test_finish_of_an_earlier_attempt_is_ignored(storage: Storage) -> None:
    first = await run_job(storage)
    await storage.finish(HOST, [failed(first, retry_at=NOW)], NOW)
    second = await claim_one(storage, now=NOW + 1)
    assert second.attempt == 2
    assert await storage.finish(HOST, [done(first, "late")], NOW + 2) == []
    record = await get(storage, first.id)
    assert (record.status, record.attempts, record.result) == ("running", 2, None)


async def test_finish_after_the_reaper_took_the_job_back_is_ignored(storage: Storage) -> None:
    job = await run_job(storage)
    reaped = await storage.reap(NOW + 1, stale_before=NOW, host_ids=[HOST])
    assert [r.id for r in reaped] == [job.id]
    assert await storage.finish(HOST, [done(job, "late")], NOW + 2) == []
    record = await get(storage, job.id)
    assert (record.status, record.result, record.last_error) == ("failed", None, "worker lost")


async def test_done_is_applied_exactly_once(storage: Storage) -> None:
    job = await run_job(storage)
    assert await storage.finish(HOST, [done(job, 1)], NOW + 1) == [job.id]
    assert await storage.finish(HOST, [done(job, 2)], NOW + 2) == []
    assert await storage.finish(HOST, [failed(job, retry_at=NOW)], NOW + 3) == []
    record = await get(storage, job.id)
    assert (record.status, record.result) == ("done", 1)
    assert ts(record.finished_at) == at(NOW + 1)


async def test_finish_batch_returns_only_the_runs_it_applied(storage: Storage) -> None:
    a = await run_job(storage)
    b = await run_job(storage)
    theirs = await run_job(storage, host=OTHER_HOST)
    finalized = await storage.finish(
        HOST, [done(a), failed(b, retry_at=NOW + 5), done(theirs)], NOW + 1
    )
    assert sorted(finalized) == sorted([a.id, b.id])
    assert (await get(storage, a.id)).status == "done"
    assert (await get(storage, b.id)).status == "failed"
    assert (await get(storage, theirs.id)).status == "running"


async def test_finish_of_nothing_does_nothing(storage: Storage) -> None:
    assert await storage.finish(HOST, [], NOW) == []


# -- progress --------------------------------------------------------------------------------------


async def test_progress_is_stored_for_running_jobs_only(storage: Storage) -> None:
    running = await run_job(storage)
    pending = await enqueue_one(storage)
    await storage.update_progress(
        [
            (running.id, 0.5, "halfway ✓"),
            (pending, 0.9, "not running"),
            (UNKNOWN_ID, 0.1, "unknown"),
            ("not-a-job", 0.1, "malformed"),
        ]
    )
    record = await get(storage, running.id)
    assert (record.progress, record.progress_message) == (0.5, "halfway ✓")
    record = await get(storage, pending)
    assert (record.progress, record.progress_message) == (None, None)

    await storage.update_progress([(running.id, 1.0, "")])
    assert (await get(storage, running.id)).progress == 1.0
    await storage.update_progress([])


# -- get_job / list_jobs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "job_id",
    [
        UNKNOWN_ID,
        "0",
        "-1",
        "abc",
        "",
        "1.5",
        "1; DROP TABLE forge_nb_jobs",
        "99999999999999999999999999999",
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    ],
)
async def test_get_job_of_an_unknown_or_malformed_id_is_none(storage: Storage, job_id: str) -> None:
    known = await enqueue_one(storage)
    assert await storage.get_job(job_id) is None
    assert (await get(storage, known)).id == known


async def test_list_jobs_is_newest_first(storage: Storage) -> None:
    ids = [await enqueue_one(storage, now=NOW + i, payload={"i": i}) for i in range(5)]
    page = await storage.list_jobs(JobFilter())
    assert [j.id for j in page.jobs] == ids[::-1]
    assert page.next_cursor is None
    assert page.jobs[0] == await get(storage, ids[-1])


async def test_list_jobs_filters_by_status_queue_and_kind(storage: Storage) -> None:
    running = await job_in_status(storage, "running", queue="q1", kind="a")
    failed_ = await job_in_status(storage, "failed", queue="q2", kind="a")
    done_ = await job_in_status(storage, "done", queue="q2", kind="b")
    dead = await job_in_status(storage, "dead", queue="q1", kind="a")
    pending = await job_in_status(storage, "pending", queue="q1", kind="b")

    async def ids(**kw: Any) -> set[str]:
        return set(await ids_of(storage, JobFilter(**kw)))

    assert await ids() == {running, failed_, done_, dead, pending}
    assert await ids(status="running") == {running}
    assert await ids(status="dead") == {dead}
    assert await ids(queue="q1") == {running, dead, pending}
    assert await ids(kind="b") == {done_, pending}
    assert await ids(queue="q1", kind="a") == {running, dead}
    assert await ids(queue="q2", kind="a", status="failed") == {failed_}
    assert await ids(queue="q2", status="pending") == set()
    assert await ids(queue="nowhere") == set()


async def test_list_jobs_search_is_a_literal_substring(storage: Storage) -> None:
    texts = {
        "percent": "100% done",
        "percent-decoy": "100x done",
        "underscore": "a_b",
        "underscore-decoy": "aXb",
        "quote": "it's here",
        "backslash": "C:\\temp",
        "plain": "hello world",
        "unicode": "café ☕",
    }
    ids = {label: await enqueue_one(storage, payload={"text": t}) for label, t in texts.items()}

    async def found(term: str) -> set[str]:
        labels = {v: k for k, v in ids.items()}
        return {labels[i] for i in await ids_of(storage, JobFilter(search=term))}

    assert await found("100%") == {"percent"}
    assert await found("%") == {"percent"}
    assert await found("a_b") == {"underscore"}
    assert await found("_") == {"underscore"}
    assert await found("it's") == {"quote"}
    assert await found("'") == {"quote"}
    assert await found("\\") == {"backslash"}
    assert await found("café") == {"unicode"}
    assert await found("HELLO") == {"plain"}, "search is case-insensitive for ASCII"
    assert await found("done") == {"percent", "percent-decoy"}
    assert await found("nothing like this") == set()
    assert await found("' OR '1'='1") == set()


async def test_search_combines_with_other_filters(storage: Storage) -> None:
    a = await enqueue_one(storage, queue="a", payload={"user": "alice"})
    await enqueue_one(storage, queue="b", payload={"user": "alice"})
    await enqueue_one(storage, queue="a", payload={"user": "bob"})
    assert await ids_of(storage, JobFilter(queue="a", search="alice")) == [a]


async def test_watch_hears_enqueues_from_another_connection(storage: Storage, db_url: str) -> None:
    """Workers wake when another process enqueues (Postgres NOTIFY, SQLite data_version)."""
    heard: list[str | None] = []
    await storage.watch(heard.append)
    other = await open_storage(db_url)
    try:
        await other.enqueue([new_job(queue="mail")], NOW)
        for _ in range(200):
            if heard:
                break
            await asyncio.sleep(0.01)
        assert heard, "no wake-up within 2 s"
        assert set(heard) <= {"mail", None}
        await storage.watch(None)
        heard.clear()
        await other.enqueue([new_job(queue="late")], NOW)
        await asyncio.sleep(0.3)
        assert heard == [], "watch(None) stops listening"
    finally:
        await other.close()


async def test_search_pages_scan_bounded_id_windows_and_miss_nothing(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rare search reads one window of ids per page; cursors walk every window."""
    monkeypatch.setattr(rows, "SEARCH_WINDOW", 10)
    payloads = [{"n": i, "tag": "needle" if i in (2, 19, 33) else "hay"} for i in range(37)]
    ids = [r.id for r in await storage.enqueue([new_job(payload=p) for p in payloads], NOW)]
    needles = [ids[33], ids[19], ids[2]]
    first = await storage.list_jobs(JobFilter(search="needle"), limit=50)
    assert [j.id for j in first.jobs] == [ids[33]], "only the newest 10 ids were read"
    assert first.next_cursor is not None
    assert await collect_pages(storage, JobFilter(search="needle"), 50) == needles
    assert await collect_pages(storage, JobFilter(search="needle"), 1) == needles
    assert await collect_pages(storage, JobFilter(search="hay"), 4) == [
        i for i in reversed(ids) if i not in needles
    ]
    assert await collect_pages(storage, JobFilter(search="absent"), 50) == []
    # Without a search, pages stay plain keyset pages over the whole table.
    assert len((await storage.list_jobs(JobFilter(), limit=50)).jobs) == 37


async def test_keyset_pagination_visits_every_job_once_newest_first(storage: Storage) -> None:
    ids = [await enqueue_one(storage, now=NOW + i, payload={"i": i}) for i in range(23)]
    for limit in (1, 5, 10, 23, 50):
        assert await collect_pages(storage, JobFilter(), limit) == ids[::-1], f"limit={limit}"


async def test_pagination_with_a_filter(storage: Storage) -> None:
    wanted = []
    for i in range(12):
        job_id = await enqueue_one(storage, now=NOW + i, queue="even" if i % 2 == 0 else "odd")
        if i % 2 == 0:
            wanted.append(job_id)
    assert await collect_pages(storage, JobFilter(queue="even"), 4) == wanted[::-1]


async def test_pagination_is_stable_while_new_jobs_arrive(storage: Storage) -> None:
    ids = [await enqueue_one(storage, now=NOW + i) for i in range(10)]
    page = await storage.list_jobs(JobFilter(), limit=4)
    assert [j.id for j in page.jobs] == ids[::-1][:4]
    for i in range(3):
        await enqueue_one(storage, now=NOW + 100 + i)
    rest: list[str] = []
    cursor = page.next_cursor
    while cursor is not None:
        page = await storage.list_jobs(JobFilter(), limit=4, cursor=cursor)
        rest.extend(j.id for j in page.jobs)
        cursor = page.next_cursor
    assert rest == ids[::-1][4:]


@pytest.mark.parametrize("limit", [0, -1, 2.5, "10", None])
async def test_list_jobs_rejects_a_bad_limit(storage: Storage, limit: Any) -> None:
    await enqueue_one(storage)
    with pytest.raises(ValueError, match="limit"):
        await storage.list_jobs(JobFilter(), limit=limit)


async def test_job_events_are_oldest_first(storage: Storage) -> None:
    job = await run_job(storage)
    await storage.finish(HOST, [failed(job, retry_at=NOW + 1, error="first")], NOW)
    job = await claim_one(storage, now=NOW + 1)
    await storage.finish(HOST, [failed(job, retry_at=NOW + 2, error="second")], NOW + 1)
    events = [e for e in await storage.job_events(job.id) if e.event == "failed"]
    assert [(e.attempt, e.message) for e in events] == [(1, "first"), (2, "second")]
    assert all(e.job_id == job.id for e in events)


# -- retry -----------------------------------------------------------------------------------------


async def test_retry_of_a_dead_job_resets_its_attempts(storage: Storage) -> None:
    job_id = await job_in_status(storage, "dead")
    assert await storage.retry(job_id, NOW + 100) == "dead"
    record = await get(storage, job_id)
    assert (record.status, record.attempts) == ("pending", 0)
    assert ts(record.scheduled_at) == at(NOW + 100)
    assert "retried" in await event_names(storage, job_id)
    assert (await claim_one(storage, now=NOW + 100)).attempt == 1


async def test_retry_of_a_failed_job_runs_it_now(storage: Storage) -> None:
    job_id = await job_in_status(storage, "failed")  # waits until NOW + 3600
    assert await storage.retry(job_id, NOW + 1) == "failed"
    record = await get(storage, job_id)
    assert (record.status, record.attempts) == ("pending", 0)
    assert [j.id for j in await storage.claim("q", HOST, 1, NOW + 1)] == [job_id]


@pytest.mark.parametrize("status", ["pending", "running", "done"])
async def test_retry_leaves_other_statuses_alone(storage: Storage, status: Status) -> None:
    job_id = await job_in_status(storage, status)
    before = await get(storage, job_id)
    assert await storage.retry(job_id, NOW + 100) == status
    assert await get(storage, job_id) == before
    assert "retried" not in await event_names(storage, job_id)


@pytest.mark.parametrize("job_id", [UNKNOWN_ID, "nonsense"])
async def test_retry_of_an_unknown_job_is_none(storage: Storage, job_id: str) -> None:
    assert await storage.retry(job_id, NOW) is None


async def test_retry_many_retries_matching_dead_and_failed_jobs(storage: Storage) -> None:
    dead_1 = await job_in_status(storage, "dead", queue="q1")
    dead_2 = await job_in_status(storage, "dead", queue="q1", kind="other")
    failed_1 = await job_in_status(storage, "failed", queue="q1")
    dead_q2 = await job_in_status(storage, "dead", queue="q2")
    done_1 = await job_in_status(storage, "done", queue="q1")
    running_1 = await job_in_status(storage, "running", queue="q1")
    pending_1 = await job_in_status(storage, "pending", queue="q1")

    async def status(job_id: str) -> tuple[Status, int]:
        record = await get(storage, job_id)
        return record.status, record.attempts

    assert await storage.retry_many(JobFilter(status="dead", queue="q1"), NOW + 1) == 2
    assert await status(dead_1) == await status(dead_2) == ("pending", 0)
    assert await status(failed_1) == ("failed", 1)
    assert await status(dead_q2) == ("dead", 1)

    assert await storage.retry_many(JobFilter(), NOW + 2) == 2  # failed_1 and dead_q2
    assert await status(failed_1) == await status(dead_q2) == ("pending", 0)
    assert await status(done_1) == ("done", 1)
    assert await status(running_1) == ("running", 1)
    assert await status(pending_1) == ("pending", 0)
    for job_id in (dead_1, dead_2, failed_1, dead_q2):
        assert "retried" in await event_names(storage, job_id)
    assert await storage.retry_many(JobFilter(), NOW + 3) == 0


async def test_retry_many_with_kind_and_search(storage: Storage) -> None:
    match = await job_in_status(storage, "dead", kind="mail", payload={"to": "alice"})
    await job_in_status(storage, "dead", kind="mail", payload={"to": "bob"})
    await job_in_status(storage, "dead", kind="sms", payload={"to": "alice"})
    assert await storage.retry_many(JobFilter(kind="mail", search="alice"), NOW) == 1
    assert (await get(storage, match)).status == "pending"
    assert (await storage.counts())["q"] == zero_counts(pending=1, dead=2)


# -- delete ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["pending", "failed", "done", "dead"])
async def test_delete_removes_a_job_that_is_not_running(storage: Storage, status: Status) -> None:
    job_id = await job_in_status(storage, status)
    assert await storage.delete(job_id) == status
    assert await storage.get_job(job_id) is None
    assert await storage.counts() == {"q": zero_counts()}
    assert await storage.delete(job_id) is None


async def test_delete_leaves_a_running_job_alone(storage: Storage) -> None:
    job = await run_job(storage)
    assert await storage.delete(job.id) == "running"
    assert (await get(storage, job.id)).status == "running"
    assert await storage.finish(HOST, [done(job)], NOW) == [job.id]


@pytest.mark.parametrize("job_id", [UNKNOWN_ID, "nonsense"])
async def test_delete_of_an_unknown_job_is_none(storage: Storage, job_id: str) -> None:
    assert await storage.delete(job_id) is None


async def test_delete_many_never_deletes_running_jobs(storage: Storage) -> None:
    for status in ("running", "failed", "done", "dead", "pending"):
        await job_in_status(storage, status, queue="q1")
    kept = await job_in_status(storage, "pending", queue="q2")
    assert await storage.delete_many(JobFilter(status="running")) == 0
    assert await storage.delete_many(JobFilter(queue="q1")) == 4
    assert await storage.counts() == {"q1": zero_counts(running=1), "q2": zero_counts(pending=1)}
    assert (await get(storage, kept)).status == "pending"


async def test_delete_many_by_status_and_search(storage: Storage) -> None:
    gone = await job_in_status(storage, "dead", payload={"x": "drop me"})
    kept_dead = await job_in_status(storage, "dead", payload={"x": "keep me"})
    kept_pending = await job_in_status(storage, "pending", payload={"x": "drop me"})
    assert await storage.delete_many(JobFilter(status="dead", search="drop")) == 1
    assert await storage.get_job(gone) is None
    assert set(await ids_of(storage)) == {kept_dead, kept_pending}


# -- cancel ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["pending", "failed"])
async def test_cancel_of_a_waiting_job_makes_it_dead_now(storage: Storage, status: Status) -> None:
    job_id = await job_in_status(storage, status)
    attempts = (await get(storage, job_id)).attempts
    assert await storage.request_cancel(job_id, NOW + 5) == "dead"
    record = await get(storage, job_id)
    assert (record.status, record.last_error) == ("dead", "cancelled")
    assert record.attempts == attempts, "cancelling spends no attempt"
    assert "cancelled" in await event_names(storage, job_id)
    assert await storage.claim("q", HOST, 10, NOW + 100_000) == []


async def test_cancel_of_a_running_job_flags_it_for_its_owner(storage: Storage) -> None:
    job = await run_job(storage)
    assert await storage.cancel_requests(HOST) == []
    assert await storage.request_cancel(job.id, NOW + 1) == "running"
    record = await get(storage, job.id)
    assert record.status == "running"
    assert ts(record.cancel_requested_at) == at(NOW + 1)
    assert await storage.cancel_requests(HOST) == [job.id]
    assert await storage.cancel_requests(OTHER_HOST) == []

    cancelled = Finish(
        job.id, job.attempt, "dead", "cancelled", error="cancelled", refund_attempt=True
    )
    assert await storage.finish(HOST, [cancelled], NOW + 2) == [job.id]
    assert await storage.cancel_requests(HOST) == []
    record = await get(storage, job.id)
    assert (record.status, record.last_error) == ("dead", "cancelled")


@pytest.mark.parametrize("status", ["done", "dead"])
async def test_cancel_of_a_finished_job_changes_nothing(storage: Storage, status: Status) -> None:
    job_id = await job_in_status(storage, status)
    before = await get(storage, job_id)
    assert await storage.request_cancel(job_id, NOW + 1) == status
    assert await get(storage, job_id) == before


@pytest.mark.parametrize("job_id", [UNKNOWN_ID, "nonsense"])
async def test_cancel_of_an_unknown_job_is_none(storage: Storage, job_id: str) -> None:
    assert await storage.request_cancel(job_id, NOW) is None


# -- queues ----------------------------------------------------------------------------------------


async def test_ensure_queue_is_idempotent_and_applies_knobs(storage: Storage) -> None:
    config = await storage.ensure_queue("gpu", workers=2, paused=True, backoff_base_seconds=2)
    assert config == QueueConfig("gpu", workers=2, paused=True, backoff_base_seconds=2.0)
    assert await storage.ensure_queue("gpu") == config, "ensure without knobs resets nothing"
    again = await storage.ensure_queue("gpu", workers=4)
    assert again == dataclasses.replace(config, workers=4)
    assert await storage.queues() == [again]


async def test_new_queue_has_the_default_config(storage: Storage) -> None:
    assert await storage.ensure_queue("plain") == QueueConfig("plain")
    assert await storage.counts() == {"plain": zero_counts()}


async def test_queues_are_listed_by_name(storage: Storage) -> None:
    for name in ("b", "a", "c"):
        await storage.ensure_queue(name)
    assert [q.name for q in await storage.queues()] == ["a", "b", "c"]


async def test_update_queue_changes_every_knob(storage: Storage) -> None:
    await storage.ensure_queue("q")
    knobs = {
        "workers": 0,
        "paused": True,
        "backoff_enabled": False,
        "backoff_base_seconds": 0.5,
        "backoff_max_seconds": 60,
        "backoff_jitter": False,
        "retain_done_seconds": 0,
        "retain_dead_seconds": 3600.5,
    }
    config = await storage.update_queue("q", **knobs)
    expected = QueueConfig(
        "q", **{k: float(v) if k.endswith("seconds") else v for k, v in knobs.items()}
    )
    assert config == expected
    assert await storage.queues() == [expected]
    assert isinstance(config.backoff_max_seconds, float)


BAD_KNOBS = [
    pytest.param({"colour": "red"}, "colour", id="unknown-knob"),
    pytest.param({"workers": 5, "colour": "red"}, "colour", id="unknown-knob-with-valid-one"),
    pytest.param({"workers": -1}, "workers", id="negative-workers"),
    pytest.param({"workers": "3"}, "workers", id="str-workers"),
    pytest.param({"workers": 2.5}, "workers", id="float-workers"),
    pytest.param({"workers": True}, "workers", id="bool-workers"),
    pytest.param({"paused": "yes"}, "paused", id="str-paused"),
    pytest.param({"paused": 1}, "paused", id="int-paused"),
    pytest.param({"backoff_base_seconds": "1"}, "backoff_base_seconds", id="str-seconds"),
    pytest.param({"backoff_max_seconds": -5.0}, "backoff_max_seconds", id="negative-seconds"),
    pytest.param({"retain_done_seconds": float("nan")}, "retain_done_seconds", id="nan-seconds"),
]


@pytest.mark.parametrize(("knobs", "message"), BAD_KNOBS)
async def test_update_queue_rejects_bad_knobs_and_changes_nothing(
    storage: Storage, knobs: dict[str, Any], message: str
) -> None:
    before = await storage.ensure_queue("q", workers=3)
    with pytest.raises(ValueError, match=message):
        await storage.update_queue("q", **knobs)
    assert await storage.queues() == [before]


@pytest.mark.parametrize(("knobs", "message"), BAD_KNOBS)
async def test_ensure_queue_with_bad_knobs_creates_nothing(
    storage: Storage, knobs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await storage.ensure_queue("new", **knobs)
    assert await storage.queues() == []


@pytest.mark.parametrize("name", ["", "   "])
async def test_ensure_queue_rejects_a_blank_name(storage: Storage, name: str) -> None:
    with pytest.raises(ValueError, match="queue"):
        await storage.ensure_queue(name)
    assert await storage.queues() == []


@pytest.mark.parametrize("knobs", [{}, {"paused": True}])
async def test_update_of_an_unknown_queue(storage: Storage, knobs: dict[str, Any]) -> None:
    await storage.ensure_queue("known")
    with pytest.raises(UnknownQueue, match="nope"):
        await storage.update_queue("nope", **knobs)
    assert issubclass(UnknownQueue, ValueError)
    assert [q.name for q in await storage.queues()] == ["known"]


# -- processes and the reaper ----------------------------------------------------------------------


def dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def slot(
    host: str, n: int = 0, queue: str = "q", heartbeat: float = NOW, **kw: Any
) -> ProcessRecord:
    fields: dict[str, Any] = {
        "hostname": f"box-{host}",
        "pid": 4321,
        "current_job": None,
        "started_at": dt(NOW - 600),
        "version": "0.1.0",
        **kw,
    }
    return ProcessRecord(
        id=f"{queue}-{n}-{host}",
        host_id=host,
        queue=queue,
        last_heartbeat=dt(heartbeat),
        **fields,
    )


async def processes_by_id(storage: Storage) -> dict[str, ProcessRecord]:
    return {p.id: p for p in await storage.processes()}


async def test_register_heartbeat_and_unregister_processes(storage: Storage) -> None:
    slots = [slot("A", 0), slot("A", 1), slot("B", 0, queue="other", hostname="elsewhere")]
    await storage.register_processes(slots)
    assert await processes_by_id(storage) == {s.id: s for s in slots}

    job = await run_job(storage, host="A")
    await storage.heartbeat("A", NOW + 10, {"q-0-A": job.id, "q-1-A": None})
    found = await processes_by_id(storage)
    assert (found["q-0-A"].current_job, ts(found["q-0-A"].last_heartbeat)) == (job.id, at(NOW + 10))
    assert (found["q-1-A"].current_job, ts(found["q-1-A"].last_heartbeat)) == (None, at(NOW + 10))
    assert found["other-0-B"] == slots[2], "other hosts are untouched"

    await storage.heartbeat("A", NOW + 20, {"q-0-A": None})
    found = await processes_by_id(storage)
    assert found["q-0-A"].current_job is None
    assert ts(found["q-0-A"].last_heartbeat) == at(NOW + 20)

    await storage.unregister_processes(["q-1-A"])
    assert set(await processes_by_id(storage)) == {"q-0-A", "other-0-B"}
    await storage.unregister_processes(["q-0-A", "other-0-B", "never-registered"])
    assert await storage.processes() == []


async def test_processes_register_the_kinds_they_run_and_heartbeats_replace_them(
    storage: Storage,
) -> None:
    await storage.register_processes(
        [slot("A", 0, kinds=("a", "b")), slot("A", 1, kinds=("a", "b")), slot("B")]
    )
    found = await processes_by_id(storage)
    assert (found["q-0-A"].kinds, found["q-1-A"].kinds, found["q-0-B"].kinds) == (
        ("a", "b"),
        ("a", "b"),
        (),
    )
    assert found["q-0-A"].to_dict()["kinds"] == ["a", "b"]

    await storage.heartbeat("A", NOW + 10, {}, kinds=["a", "b", "c"])
    await storage.heartbeat("B", NOW + 10, {})  # no kinds given: unchanged
    found = await processes_by_id(storage)
    assert found["q-0-A"].kinds == found["q-1-A"].kinds == ("a", "b", "c")
    assert found["q-0-B"].kinds == ()
    assert ts(found["q-0-A"].last_heartbeat) == at(NOW + 10)


async def test_stranded_kinds_are_waiting_kinds_no_live_process_of_the_queue_runs(
    storage: Storage,
) -> None:
    assert await storage.stranded_kinds(NOW - 30) == []
    await job_in_status(storage, "done", kind="finished")  # not waiting: never stranded
    await job_in_status(storage, "failed", kind="retrying")  # waiting for its retry
    await storage.enqueue([new_job(kind="score") for _ in range(3)], NOW)
    await storage.enqueue([new_job(kind="mine"), new_job(kind="done-kind")], NOW)
    await storage.enqueue([new_job(kind="mine", queue="other")], NOW)
    no_worker = await storage.stranded_kinds(NOW - 30)
    assert [(s.queue, s.kind, s.jobs, s.capped) for s in no_worker] == [
        ("other", "mine", 1, False),
        ("q", "done-kind", 1, False),
        ("q", "mine", 1, False),
        ("q", "retrying", 1, False),
        ("q", "score", 3, False),
    ]
    assert no_worker[-1].describe() == (
        "3 pending jobs of kind `score` in queue `q`: no live worker runs it"
    )

    await storage.register_processes(
        [
            slot("A", kinds=("mine", "retrying", "done-kind")),
            slot("B", queue="other", kinds=("elsewhere",)),
            slot("C", heartbeat=NOW - 60, kinds=("score",)),  # silent: not live
        ]
    )
    stranded = await storage.stranded_kinds(NOW - 30)
    assert [(s.queue, s.kind, s.jobs) for s in stranded] == [
        ("other", "mine", 1),
        ("q", "score", 3),
    ]
    assert [s.kind for s in await storage.stranded_kinds(NOW - 90)] == ["mine"]
    [capped] = await storage.stranded_kinds(NOW - 30, count_up_to=2, limit=1)
    assert (capped.queue, capped.kind, capped.jobs, capped.capped) == ("other", "mine", 1, False)
    capped = (await storage.stranded_kinds(NOW - 30, count_up_to=2))[-1]
    assert (capped.kind, capped.jobs, capped.capped) == ("score", 2, True)
    assert capped.describe().startswith("2+ pending jobs of kind `score`")


async def test_registering_a_slot_again_replaces_it(storage: Storage) -> None:
    await storage.register_processes([slot("A", pid=1)])
    await storage.register_processes([slot("A", pid=2, heartbeat=NOW + 5)])
    [found] = await storage.processes()
    assert (found.pid, ts(found.last_heartbeat)) == (2, at(NOW + 5))


async def test_reap_takes_back_the_jobs_of_a_silent_host(storage: Storage) -> None:
    await storage.register_processes([slot("A", heartbeat=NOW - 100), slot("B", heartbeat=NOW)])
    retryable = await run_job(storage, host="A", kind="k1", max_attempts=5)
    used_up = await run_job(storage, host="A", kind="k2", max_attempts=1)
    healthy = await run_job(storage, host="B")

    reaped = await storage.reap(NOW + 1, stale_before=NOW - 30)
    assert sorted((r.id, r.kind, r.queue, r.status, r.host_id) for r in reaped) == sorted(
        [
            (retryable.id, "k1", "q", "failed", "A"),
            (used_up.id, "k2", "q", "dead", "A"),
        ]
    )
    record = await get(storage, retryable.id)
    assert (record.status, record.last_error, record.attempts) == ("failed", "worker lost", 1)
    assert record.scheduled_at.timestamp() <= NOW + 1.001, "retried right away"
    events = await storage.job_events(retryable.id)
    assert any("worker lost" in f"{e.event.replace('_', ' ')} {e.message}" for e in events)

    record = await get(storage, used_up.id)
    assert (record.status, record.last_error) == ("dead", "worker lost")

    record = await get(storage, healthy.id)
    assert (record.status, record.claimed_by) == ("running", "B")
    assert set(await processes_by_id(storage)) == {"q-0-B"}, "the silent host's slots are removed"

    again = await claim_one(storage, now=NOW + 1)
    assert (again.id, again.attempt) == (retryable.id, 2)


async def test_reap_takes_back_jobs_of_a_host_without_slot_rows(storage: Storage) -> None:
    await storage.register_processes([slot("B")])
    orphan = await run_job(storage, host="ghost")
    reaped = await storage.reap(NOW + 1, stale_before=NOW - 30)
    assert [(r.id, r.host_id, r.status) for r in reaped] == [(orphan.id, "ghost", "failed")]


async def test_reap_of_named_hosts_even_when_they_look_alive(storage: Storage) -> None:
    await storage.register_processes([slot("A", 0), slot("A", 1), slot("B")])
    mine = await run_job(storage, host="A")
    theirs = await run_job(storage, host="B")
    reaped = await storage.reap(NOW + 1, stale_before=NOW - 30, host_ids=["A"])
    assert [r.id for r in reaped] == [mine.id]
    assert (await get(storage, mine.id)).status == "failed"
    assert (await get(storage, theirs.id)).status == "running"
    assert set(await processes_by_id(storage)) == {"q-0-B"}


async def test_reap_with_every_host_alive_changes_nothing(storage: Storage) -> None:
    await storage.register_processes([slot("A", heartbeat=NOW - 10)])
    job = await run_job(storage, host="A")
    before = await get(storage, job.id)
    assert await storage.reap(NOW, stale_before=NOW - 30) == []
    assert await get(storage, job.id) == before
    assert set(await processes_by_id(storage)) == {"q-0-A"}


async def test_one_fresh_slot_keeps_a_host_alive(storage: Storage) -> None:
    await storage.register_processes([slot("A", 0, heartbeat=NOW - 100), slot("A", 1)])
    job = await run_job(storage, host="A")
    assert await storage.reap(NOW, stale_before=NOW - 30) == []
    assert (await get(storage, job.id)).status == "running"


async def test_a_job_that_keeps_killing_workers_ends_dead(storage: Storage) -> None:
    job_id = await enqueue_one(storage, max_attempts=2)
    await claim_one(storage, host="A")
    [first] = await storage.reap(NOW + 1, stale_before=NOW + 1, host_ids=["A"])
    assert (first.id, first.status) == (job_id, "failed")
    assert (await claim_one(storage, host="B", now=NOW + 2)).attempt == 2
    [second] = await storage.reap(NOW + 3, stale_before=NOW + 3, host_ids=["B"])
    assert (second.id, second.status) == (job_id, "dead")
    record = await get(storage, job_id)
    assert (record.status, record.attempts, record.last_error) == ("dead", 2, "worker lost")


# -- cron schedules --------------------------------------------------------------------------------


async def test_schedules_upsert_list_enable_and_record_fires(storage: Storage) -> None:
    nightly = Schedule(
        name="nightly",
        cron="0 3 * * *",
        kind="report",
        payload={"to": "ops ✓"},
        queue="q",
        next_fire_at=NOW + 3600,
    )
    hourly = Schedule(
        name="hourly", cron="0 * * * *", kind="ping", payload={}, queue="q", enabled=False
    )
    assert await storage.upsert_schedule(nightly) == nightly
    assert await storage.upsert_schedule(hourly) == hourly
    assert await storage.schedules() == [hourly, nightly], "listed by name"

    await storage.record_fire("nightly", NOW + 3600, NOW + 90_000)
    fired = (await storage.schedules())[1]
    assert (fired.last_fire_at, fired.next_fire_at) == (at(NOW + 3600), at(NOW + 90_000))

    changed = dataclasses.replace(
        nightly, cron="30 4 * * *", payload={"to": "dev"}, next_fire_at=NOW + 95_000
    )
    stored = await storage.upsert_schedule(changed)
    assert (stored.cron, stored.payload) == ("30 4 * * *", {"to": "dev"})
    assert stored.last_fire_at == at(NOW + 3600), "an update keeps the last fire"
    assert stored.next_fire_at == at(NOW + 95_000)
    assert (await storage.schedules())[1] == stored

    assert await storage.set_schedule_enabled("hourly", True) is True
    assert (await storage.schedules())[0].enabled is True
    assert await storage.set_schedule_enabled("nightly", False) is True
    assert (await storage.schedules())[1].enabled is False
    assert await storage.set_schedule_enabled("nope", False) is False
    assert [s.name for s in await storage.schedules()] == ["hourly", "nightly"]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"name": ""}, id="empty-name"),
        pytest.param({"payload": {"x": object()}}, id="non-json-payload"),
    ],
)
async def test_bad_schedule_is_refused(storage: Storage, bad: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "name": "s",
        "cron": "* * * * *",
        "kind": "k",
        "payload": {},
        "queue": "q",
    }
    with pytest.raises(ValueError):
        await storage.upsert_schedule(Schedule(**{**fields, **bad}))
    assert await storage.schedules() == []


async def nightly_schedule(storage: Storage, next_fire_at: float = NOW + 60, **kw: Any) -> Schedule:
    schedule = Schedule(
        name="nightly",
        cron="* * * * *",
        kind="report",
        payload={"to": "ops"},
        queue="q",
        next_fire_at=next_fire_at,
        **kw,
    )
    return await storage.upsert_schedule(schedule)


def cron_job(fire_at: float, name: str = "nightly") -> NewJob:
    return new_job(kind="report", payload={"to": "ops"}, unique_key=f"cron:{name}:{fire_at}")


async def test_fire_schedule_advances_the_schedule_and_enqueues_the_job(storage: Storage) -> None:
    await nightly_schedule(storage, next_fire_at=NOW + 60)
    fired = await storage.fire_schedule(
        "nightly", NOW + 60, NOW + 60, NOW + 120, cron_job(NOW + 60), now=NOW + 61
    )
    assert fired is True
    [schedule] = await storage.schedules()
    assert (schedule.last_fire_at, schedule.next_fire_at) == (at(NOW + 60), at(NOW + 120))
    [job] = (await storage.list_jobs(JobFilter())).jobs
    assert (job.kind, job.queue, job.payload, job.status) == (
        "report",
        "q",
        {"to": "ops"},
        "pending",
    )
    assert job.unique_key == f"cron:nightly:{NOW + 60}"
    assert ts(job.created_at) == at(NOW + 61)


async def test_a_tick_fires_only_once(storage: Storage) -> None:
    await nightly_schedule(storage, next_fire_at=NOW + 60)
    args = ("nightly", NOW + 60, NOW + 60, NOW + 120, cron_job(NOW + 60))
    assert await storage.fire_schedule(*args, now=NOW + 61) is True
    assert await storage.fire_schedule(*args, now=NOW + 62) is False, "next_fire_at moved on"
    assert len(await ids_of(storage)) == 1
    [schedule] = await storage.schedules()
    assert schedule.next_fire_at == at(NOW + 120)


async def test_two_leaders_racing_for_a_tick_fire_it_once(db_url: str, storage: Storage) -> None:
    from forge_nb.storage import open_storage

    await nightly_schedule(storage, next_fire_at=NOW + 60)
    other = await open_storage(db_url)
    try:
        fired = await asyncio.gather(
            *(
                s.fire_schedule(
                    "nightly", NOW + 60, NOW + 60, NOW + 120, cron_job(NOW + 60), now=NOW + 61
                )
                for s in (storage, other, storage, other)
            )
        )
    finally:
        await other.close()
    assert sorted(fired) == [False, False, False, True]
    assert len(await ids_of(storage)) == 1


async def test_a_disabled_or_unknown_schedule_does_not_fire(storage: Storage) -> None:
    await nightly_schedule(storage, next_fire_at=NOW + 60, enabled=False)
    args = (NOW + 60, NOW + 60, NOW + 120, cron_job(NOW + 60))
    assert await storage.fire_schedule("nightly", *args, now=NOW + 61) is False
    assert await storage.fire_schedule("unknown", *args, now=NOW + 61) is False
    assert await ids_of(storage) == []
    [schedule] = await storage.schedules()
    assert (schedule.last_fire_at, schedule.next_fire_at) == (None, at(NOW + 60))


async def test_a_bad_cron_job_fires_nothing(storage: Storage) -> None:
    await nightly_schedule(storage, next_fire_at=NOW + 60)
    bad = new_job(payload={"x": object()})
    with pytest.raises(ValueError):
        await storage.fire_schedule("nightly", NOW + 60, NOW + 60, NOW + 120, bad, now=NOW + 61)
    [schedule] = await storage.schedules()
    assert (schedule.last_fire_at, schedule.next_fire_at) == (None, at(NOW + 60))
    assert await ids_of(storage) == []


async def test_a_fire_whose_job_is_still_live_is_not_doubled(storage: Storage) -> None:
    await nightly_schedule(storage, next_fire_at=NOW + 60)
    [held] = await storage.enqueue([cron_job(NOW + 60)], NOW)
    await storage.fire_schedule(
        "nightly", NOW + 60, NOW + 60, NOW + 120, cron_job(NOW + 60), now=NOW + 61
    )
    assert await ids_of(storage) == [held.id]


# -- leases ----------------------------------------------------------------------------------------


async def test_a_lease_is_exclusive_until_it_expires(storage: Storage) -> None:
    assert await storage.acquire_lease("cron", "A", ttl=15, now=NOW) is True
    assert await storage.leases() == [Lease("cron", "A", at(NOW + 15))]
    assert await storage.acquire_lease("cron", "B", 15, NOW + 5) is False
    assert await storage.acquire_lease("cron", "A", 15, NOW + 10) is True, "the holder renews"
    assert await storage.leases() == [Lease("cron", "A", at(NOW + 25))]
    assert await storage.acquire_lease("cron", "B", 15, NOW + 24) is False
    assert await storage.acquire_lease("cron", "B", 15, NOW + 26) is True, "expired: taken over"
    assert await storage.leases() == [Lease("cron", "B", at(NOW + 41))]
    assert await storage.acquire_lease("cron", "A", 15, NOW + 27) is False


async def test_release_lease_only_by_its_holder(storage: Storage) -> None:
    assert await storage.acquire_lease("cron", "A", 15, NOW)
    await storage.release_lease("cron", "B")
    assert [lease.holder for lease in await storage.leases()] == ["A"]
    await storage.release_lease("cron", "A")
    assert await storage.leases() == []
    assert await storage.acquire_lease("cron", "B", 15, NOW + 1) is True
    await storage.release_lease("never-held", "B")


async def test_leases_are_independent_by_name(storage: Storage) -> None:
    assert await storage.acquire_lease("cron", "A", 15, NOW)
    assert await storage.acquire_lease("retention", "B", 15, NOW)
    assert sorted((lease.name, lease.holder) for lease in await storage.leases()) == [
        ("cron", "A"),
        ("retention", "B"),
    ]


# -- rate limits -----------------------------------------------------------------------------------


async def test_a_bucket_starts_full_and_empties(storage: Storage) -> None:
    bucket = await storage.ensure_rate_limit("api", capacity=3, refill_per_second=0.5, now=NOW)
    assert (bucket.scope, bucket.capacity, bucket.refill_per_second, bucket.tokens) == (
        "api",
        3.0,
        0.5,
        3.0,
    )
    for _ in range(3):
        assert await storage.take_tokens("api", 1, NOW) == 0.0
    assert await storage.take_tokens("api", 1, NOW) == pytest.approx(2.0, rel=0.05)
    assert await storage.take_tokens("api", 2, NOW) == pytest.approx(4.0, rel=0.05)


async def test_a_bucket_refills_over_time_up_to_its_capacity(storage: Storage) -> None:
    await storage.ensure_rate_limit("api", capacity=2, refill_per_second=1, now=NOW)
    assert await storage.take_tokens("api", 2, NOW) == 0.0
    assert await storage.take_tokens("api", 1, NOW + 0.5) == pytest.approx(0.5, rel=0.05)
    assert await storage.take_tokens("api", 1, NOW + 1) == 0.0
    assert await storage.take_tokens("api", 1, NOW + 1) == pytest.approx(1.0, rel=0.05)
    assert await storage.take_tokens("api", 2, NOW + 1000) == 0.0
    assert await storage.take_tokens("api", 1, NOW + 1000) > 0, "never more than capacity"


async def test_drain_holds_the_bucket_empty_until_hold_until(storage: Storage) -> None:
    await storage.ensure_rate_limit("slack", capacity=5, refill_per_second=10, now=NOW)
    await storage.drain_rate_limit("slack", hold_until=NOW + 30, now=NOW)
    wait = await storage.take_tokens("slack", 1, NOW + 1)
    assert 0 < wait <= 30
    assert await storage.take_tokens("slack", 1, NOW + 29.5) > 0
    assert await storage.take_tokens("slack", 1, NOW + 31) == 0.0


async def test_taking_from_an_unknown_scope(storage: Storage) -> None:
    with pytest.raises(UnknownRateLimit, match="nope"):
        await storage.take_tokens("nope", 1, NOW)
    assert issubclass(UnknownRateLimit, ValueError)


async def test_ensure_rate_limit_updates_an_existing_bucket(storage: Storage) -> None:
    await storage.ensure_rate_limit("api", capacity=3, refill_per_second=1, now=NOW)
    await storage.ensure_rate_limit("other", capacity=1, refill_per_second=1, now=NOW)
    updated = await storage.ensure_rate_limit("api", capacity=10, refill_per_second=2, now=NOW + 1)
    assert (updated.capacity, updated.refill_per_second) == (10.0, 2.0)
    buckets = await storage.rate_limits()
    assert [(b.scope, b.capacity, b.refill_per_second) for b in buckets] == [
        ("api", 10.0, 2.0),
        ("other", 1.0, 1.0),
    ]


@pytest.mark.parametrize(("capacity", "refill"), [(0, 1), (-1, 1), (1, -1), (float("nan"), 1)])
async def test_ensure_rate_limit_rejects_bad_numbers(
    storage: Storage, capacity: float, refill: float
) -> None:
    with pytest.raises(ValueError):
        await storage.ensure_rate_limit("api", capacity=capacity, refill_per_second=refill, now=NOW)
    assert await storage.rate_limits() == []


# -- metrics ---------------------------------------------------------------------------------------

MINUTE = int(NOW // 60)


def metric_key(row: MetricRow) -> tuple[int, str, str]:
    return (row.minute, row.queue, row.host_id)


async def read(
    storage: Storage, since: float, until: float, queue: str | None = None
) -> list[MetricRow]:
    return sorted(await storage.read_metrics(since, until, queue), key=metric_key)


async def test_metrics_round_trip_and_filter_by_range_and_queue(storage: Storage) -> None:
    rows = [
        MetricRow(
            MINUTE,
            "q",
            "A",
            enqueued=5,
            started=4,
            completed=3,
            failed=1,
            retried=1,
            throttled=2,
            dead=0,
            processing_hist={0: 2, 7: 1, 31: 1},
            e2e_hist={3: 4},
        ),
        MetricRow(MINUTE, "q", "B", completed=2, processing_hist={1: 2}),
        MetricRow(MINUTE, "other", "A", enqueued=1),
        MetricRow(MINUTE + 1, "q", "A", dead=1, e2e_hist={12: 1}),
        MetricRow(MINUTE + 10, "q", "A", started=9),
    ]
    await storage.write_metrics(rows)
    assert await read(storage, MINUTE * 60, (MINUTE + 1) * 60) == sorted(rows[:4], key=metric_key)
    assert await read(storage, MINUTE * 60, (MINUTE + 1) * 60, "q") == sorted(
        [rows[0], rows[1], rows[3]], key=metric_key
    )
    assert await read(storage, MINUTE * 60, (MINUTE + 10) * 60) == sorted(rows, key=metric_key)
    assert await read(storage, (MINUTE + 2) * 60, (MINUTE + 9) * 60) == []
    assert await read(storage, MINUTE * 60, (MINUTE + 10) * 60, "nowhere") == []

    [first] = [r for r in await read(storage, MINUTE * 60, MINUTE * 60, "q") if r.host_id == "A"]
    assert all(isinstance(k, int) and isinstance(v, int) for k, v in first.processing_hist.items())


async def test_write_metrics_replaces_the_row_of_a_minute_queue_and_host(storage: Storage) -> None:
    await storage.write_metrics([MetricRow(MINUTE, "q", "A", enqueued=1, processing_hist={1: 1})])
    latest = MetricRow(MINUTE, "q", "A", enqueued=7, completed=3, processing_hist={2: 5})
    await storage.write_metrics([latest])
    assert await read(storage, MINUTE * 60, MINUTE * 60) == [latest]
    await storage.write_metrics([])


async def test_sum_metrics_adds_hosts_and_minutes_up_per_bucket_and_queue(
    storage: Storage,
) -> None:
    base = MINUTE // 5 * 5
    await storage.write_metrics(
        [
            MetricRow(base, "q", "A", enqueued=1, completed=2, processing_hist={3: 1}),
            MetricRow(base, "q", "B", completed=5, dead=1),
            MetricRow(base + 4, "q", "A", failed=3, retried=2, throttled=1, started=7),
            MetricRow(base + 5, "q", "A", completed=1),
            MetricRow(base, "other", "A", enqueued=4),
            MetricRow(base + 20, "q", "A", completed=100),  # outside the range read below
        ]
    )
    until = (base + 19) * 60
    assert await storage.sum_metrics(1, base * 60, until, "q") == [
        MetricRow(base, "q", "*", enqueued=1, completed=7, dead=1),
        MetricRow(base + 4, "q", "*", failed=3, retried=2, throttled=1, started=7),
        MetricRow(base + 5, "q", "*", completed=1),
    ], "per minute: hosts added up, histograms left empty"
    assert await storage.sum_metrics(5, base * 60, until) == [
        MetricRow(base, "other", "*", enqueued=4),
        MetricRow(
            base,
            "q",
            "*",
            enqueued=1,
            started=7,
            completed=7,
            failed=3,
            retried=2,
            throttled=1,
            dead=1,
        ),
        MetricRow(base + 5, "q", "*", completed=1),
    ], "5-minute buckets, oldest first, queues by name"
    assert await storage.sum_metrics(5, base * 60, until, "nowhere") == []


async def test_sum_histograms_adds_buckets_up_over_minutes_or_rollups(storage: Storage) -> None:
    await storage.write_metrics(
        [
            MetricRow(MINUTE, "q", "A", processing_hist={3: 1, 40: 2}, e2e_hist={50: 1}),
            MetricRow(MINUTE, "q", "B", processing_hist={3: 4}),
            MetricRow(MINUTE + 1, "q", "A", e2e_hist={50: 2, 51: 1}),
            MetricRow(MINUTE + 1, "other", "A", processing_hist={9: 9}),
            MetricRow(MINUTE + 2, "q", "A", processing_hist={3: 100}),
        ]
    )
    span = (MINUTE * 60, (MINUTE + 1) * 60)
    assert await storage.sum_histograms(1, *span, "q") == ({3: 5, 40: 2}, {50: 3, 51: 1})
    assert await storage.sum_histograms(1, *span) == ({3: 5, 9: 9, 40: 2}, {50: 3, 51: 1})
    assert await storage.sum_histograms(1, *span, "nowhere") == ({}, {})
    await storage.write_rollups(
        60,
        [
            MetricRow(MINUTE, "q", "*", processing_hist={1: 2}, e2e_hist={2: 3}),
            MetricRow(MINUTE + 60, "q", "*", processing_hist={1: 5}),
        ],
        MINUTE + 120,
    )
    assert await storage.sum_histograms(60, MINUTE * 60, (MINUTE + 60) * 60) == (
        {1: 7},
        {2: 3},
    ), "roll-ups of that step only, never minute rows"
    assert await storage.sum_histograms(5, MINUTE * 60, (MINUTE + 60) * 60) == ({}, {})


async def test_purge_metrics_removes_only_older_minutes(storage: Storage) -> None:
    rows = [
        MetricRow(MINUTE, "q", "A"),
        MetricRow(MINUTE, "q", "B"),
        MetricRow(MINUTE + 1, "q", "A"),
        MetricRow(MINUTE + 2, "other", "A"),
    ]
    await storage.write_metrics(rows)
    assert await storage.purge_metrics(MINUTE + 1) == 2
    assert await read(storage, 0, (MINUTE + 100) * 60) == rows[2:]
    assert await storage.purge_metrics(MINUTE + 1) == 0


async def test_enqueue_counts_created_jobs_in_the_enqueued_metric(storage: Storage) -> None:
    await storage.enqueue([new_job(unique_key="k"), new_job(unique_key="k"), new_job()], NOW)
    await storage.enqueue([new_job(), new_job(queue="other")], NOW + 1)
    await storage.enqueue([new_job()], NOW + 60)

    def enqueued(rows: list[MetricRow]) -> dict[tuple[int, str], int]:
        totals: dict[tuple[int, str], int] = {}
        for row in rows:
            totals[row.minute, row.queue] = totals.get((row.minute, row.queue), 0) + row.enqueued
        return totals

    minute = int(NOW // 60)
    assert enqueued(await storage.read_metrics(NOW, NOW + 60)) == {
        (minute, "q"): 3,  # the duplicate is not counted
        (minute, "other"): 1,
        (int((NOW + 60) // 60), "q"): 1,
    }
    # One row per enqueuing connection (Postgres: '*' + backend pid, so no shared row lock).
    assert all(row.host_id.startswith("*") for row in await storage.read_metrics(NOW, NOW + 60))


async def test_a_large_batch_keeps_input_order_and_is_counted(storage: Storage) -> None:
    """Big batches take the bulk path (SQLite: chunked INSERTs, Postgres: COPY) unchanged."""
    jobs = [
        new_job(queue="big" if i % 3 else "other", payload={"i": i}, priority=i % 5)
        for i in range(2500)
    ]
    results = await storage.enqueue(jobs, NOW)
    ids = [int(r.id) for r in results]
    assert ids == sorted(ids) and len(set(ids)) == 2500
    assert all(r.outcome == "created" and r.status == "pending" for r in results)
    for index in (0, 1, 1234, 2499):
        job = await get(storage, results[index].id)
        assert (job.queue, job.payload, job.priority) == (
            jobs[index].queue,
            {"i": index},
            index % 5,
        )
    assert await storage.counts() == {
        "big": zero_counts(pending=1666),
        "other": zero_counts(pending=834),
    }
    enqueued = {r.queue: r.enqueued for r in await storage.read_metrics(NOW, NOW + 60)}
    assert enqueued == {"big": 1666, "other": 834}
    [first] = await storage.claim("big", HOST, 1, NOW)
    assert first.id == results[4].id  # priority 4, then the oldest


async def test_samples_round_trip_by_kind_and_range(storage: Storage) -> None:
    resources = {"cpu_percent": 12.5, "rss_bytes": 123_456_789, "disk": {"free": 1.5e9}}
    db = {"read_p50_ms": 0.4, "ops": 1200, "pool": [2, 1, 0]}
    await storage.write_samples(
        [
            (MINUTE, "A", "resources", resources),
            (MINUTE, "B", "resources", {"cpu_percent": 1.0}),
            (MINUTE, "A", "db", db),
            (MINUTE + 1, "A", "resources", {"cpu_percent": 99.0}),
            (MINUTE + 30, "A", "resources", {"cpu_percent": 50.0}),
        ]
    )
    found = await storage.read_samples("resources", MINUTE * 60, (MINUTE + 1) * 60)
    assert [m for m, _, _ in found] == sorted(m for m, _, _ in found), "oldest first"
    assert sorted(found, key=lambda s: (s[0], s[1])) == [
        (MINUTE, "A", resources),
        (MINUTE, "B", {"cpu_percent": 1.0}),
        (MINUTE + 1, "A", {"cpu_percent": 99.0}),
    ]
    assert await storage.read_samples("db", MINUTE * 60, (MINUTE + 60) * 60) == [(MINUTE, "A", db)]
    assert await storage.read_samples("nothing", 0, (MINUTE + 60) * 60) == []


async def test_write_samples_replaces_a_minute_host_and_kind(storage: Storage) -> None:
    await storage.write_samples([(MINUTE, "A", "resources", {"cpu_percent": 1.0})])
    await storage.write_samples([(MINUTE, "A", "resources", {"cpu_percent": 2.0})])
    assert await storage.read_samples("resources", MINUTE * 60, MINUTE * 60) == [
        (MINUTE, "A", {"cpu_percent": 2.0})
    ]
    await storage.write_samples([])


async def test_purge_metrics_also_removes_old_samples(storage: Storage) -> None:
    await storage.write_metrics([MetricRow(MINUTE, "q", "A"), MetricRow(MINUTE + 5, "q", "A")])
    await storage.write_samples(
        [(MINUTE, "A", "resources", {}), (MINUTE, "A", "db", {}), (MINUTE + 5, "A", "db", {})]
    )
    assert await storage.purge_metrics(MINUTE + 1) == 3
    assert await storage.read_samples("db", 0, (MINUTE + 10) * 60) == [(MINUTE + 5, "A", {})]
    assert await storage.read_samples("resources", 0, (MINUTE + 10) * 60) == []


async def test_rollups_replace_buckets_and_move_the_mark_together(storage: Storage) -> None:
    assert await storage.rollup_marks() == {}
    first = MetricRow(MINUTE, "q", "*", completed=3, processing_hist={4: 3})
    await storage.write_rollups(5, [first, MetricRow(MINUTE, "other", "*", dead=1)], MINUTE + 5)
    assert await storage.rollup_marks() == {5: MINUTE + 5}
    rebuilt = MetricRow(MINUTE, "q", "*", completed=4, e2e_hist={9: 4})
    await storage.write_rollups(5, [rebuilt], MINUTE + 10)
    await storage.write_rollups(60, [MetricRow(MINUTE, "q", "*", started=99)], MINUTE + 60)
    assert await storage.rollup_marks() == {5: MINUTE + 10, 60: MINUTE + 60}
    assert await storage.read_rollups(5, MINUTE * 60, MINUTE * 60, "q") == [rebuilt]
    assert [r.queue for r in await storage.read_rollups(5, 0, (MINUTE + 9) * 60)] == ["other", "q"]
    assert await storage.read_rollups(60, 0, (MINUTE + 99) * 60) == [
        MetricRow(MINUTE, "q", "*", started=99)
    ]
    assert await storage.read_rollups(5, (MINUTE + 1) * 60, (MINUTE + 9) * 60) == []
    # Per-minute rows are a different table: roll-ups never show up there.
    assert await storage.read_metrics(0, (MINUTE + 99) * 60) == []


async def test_purge_metrics_also_removes_old_rollups(storage: Storage) -> None:
    await storage.write_rollups(
        5, [MetricRow(MINUTE, "q", "*"), MetricRow(MINUTE + 5, "q", "*")], MINUTE + 10
    )
    assert await storage.purge_metrics(MINUTE + 1) == 1
    assert await storage.read_rollups(5, 0, (MINUTE + 99) * 60) == [MetricRow(MINUTE + 5, "q", "*")]
    assert await storage.rollup_marks() == {5: MINUTE + 10}, "the mark stays"


async def test_pool_capacity_is_a_positive_int(storage: Storage) -> None:
    capacity = storage.pool_capacity()
    assert isinstance(capacity, int) and capacity >= 1


# -- retention -------------------------------------------------------------------------------------


async def finished_job(storage: Storage, outcome: str, finished_at: float, **kw: Any) -> str:
    job = await run_job(storage, **kw)
    finish = done(job) if outcome == "done" else Finish(job.id, 1, "dead", "dead", error="x")
    assert await storage.finish(HOST, [finish], finished_at) == [job.id]
    return job.id


async def test_purge_deletes_only_old_finished_jobs_up_to_the_limit(storage: Storage) -> None:
    old = [await finished_job(storage, "done", NOW + i) for i in range(5)]
    recent = await finished_job(storage, "done", NOW + 100)
    old_dead = await finished_job(storage, "dead", NOW)
    other_queue = await finished_job(storage, "done", NOW, queue="other")
    running = await run_job(storage)
    pending = await enqueue_one(storage)

    assert await storage.purge("q", "done", finished_before=NOW + 50, limit=3) == 3
    assert await storage.purge("q", "done", finished_before=NOW + 50, limit=3) == 2
    assert await storage.purge("q", "done", finished_before=NOW + 50, limit=3) == 0
    for job_id in old:
        assert await storage.get_job(job_id) is None
    assert set(await ids_of(storage)) == {recent, old_dead, other_queue, running.id, pending}

    assert await storage.purge("q", "dead", finished_before=NOW + 50, limit=10) == 1
    assert await storage.get_job(old_dead) is None
    assert set(await ids_of(storage)) == {recent, other_queue, running.id, pending}


# -- a whole job life, end to end ------------------------------------------------------------------


async def test_job_history_of_a_full_life(storage: Storage) -> None:
    job_id = await enqueue_one(storage, max_attempts=2)
    first = await claim_one(storage)
    await storage.finish(HOST, [failed(first, retry_at=NOW + 1, error="flaky")], NOW)
    second = await claim_one(storage, now=NOW + 1)
    await storage.finish(
        HOST, [Finish(job_id, second.attempt, "dead", "dead", error="flaky again")], NOW + 2
    )
    assert await storage.retry(job_id, NOW + 3) == "dead"
    third = await claim_one(storage, now=NOW + 3)
    assert third.attempt == 1
    assert await storage.finish(HOST, [done(third, {"ok": True})], NOW + 4) == [job_id]

    record = await get(storage, job_id)
    assert (record.status, record.attempts, record.result) == ("done", 1, {"ok": True})
    names = await event_names(storage, job_id)
    assert [n for n in names if n in {"failed", "dead", "retried"}] == ["failed", "dead", "retried"]
    events = await storage.job_events(job_id)
    assert [e.at for e in events] == sorted(e.at for e in events)


def _counts_shape(counts: Mapping[str, Mapping[str, int]]) -> bool:
    return all(set(per_queue) == set(STATUSES) for per_queue in counts.values())


async def test_counts_always_hold_all_five_statuses(storage: Storage) -> None:
    await job_in_status(storage, "done", queue="a")
    await job_in_status(storage, "pending", queue="b")
    counts = await storage.counts()
    assert set(counts) == {"a", "b"}
    assert _counts_shape(counts)


async def test_nul_characters_are_refused_in_names_and_filters(storage: Storage) -> None:
    """Postgres text cannot hold NUL: both backends refuse it up front, as bad input."""
    from forge_nb.storage.records import JobFilter, NewJob

    with pytest.raises(ValueError, match="NUL"):
        await storage.enqueue([NewJob(kind="a\x00b", queue="q")], 1000.0)
    for field in ("queue", "kind", "search"):
        with pytest.raises(ValueError, match="NUL"):
            await storage.list_jobs(JobFilter(**{field: "x\x00"}))
    # Inside a payload NUL is just an escaped JSON character, and round-trips.
    [made] = await storage.enqueue([NewJob(kind="k", queue="q", payload={"s": "a\x00b"})], 1000.0)
    assert (await storage.get_job(made.id)).payload == {"s": "a\x00b"}
    assert (await storage.counts())["q"]["pending"] == 1


async def test_scheduled_view_lists_future_pending_jobs_soonest_first(storage: Storage) -> None:
    from forge_nb.storage.records import JobFilter, NewJob

    now = 1_000_000.0
    due = [NewJob(kind="k", queue="q", scheduled_at=now - 10) for _ in range(3)]
    later = [NewJob(kind="k", queue="q", scheduled_at=now + 100 - i) for i in range(7)]
    same_time = [NewJob(kind="k2", queue="q2", scheduled_at=now + 500) for _ in range(3)]
    made = await storage.enqueue(due + later + same_time, now)
    seen: list[str] = []
    cursor = None
    while True:
        page = await storage.list_jobs(JobFilter(scheduled_after=now), limit=4, cursor=cursor)
        seen += [j.id for j in page.jobs]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    expected = [r.id for r in reversed(made[3:10])] + [r.id for r in made[10:]]
    assert seen == expected  # soonest first, ties by id, each exactly once, no due job
    only_q2 = await storage.list_jobs(JobFilter(queue="q2", scheduled_after=now))
    assert [j.id for j in only_q2.jobs] == [r.id for r in made[10:]]
    with pytest.raises(ValueError):
        await storage.list_jobs(JobFilter(status="dead", scheduled_after=now))
    with pytest.raises(ValueError):
        await storage.list_jobs(JobFilter(scheduled_after=now), cursor="not-a-cursor")


# -- counts are kept as jobs move ------------------------------------------------------------------


async def true_counts(storage: Storage) -> dict[str, dict[str, int]]:
    """Counts from the jobs themselves (every page of `list_jobs`), queues with jobs only."""
    out: dict[str, dict[str, int]] = {}
    cursor = None
    while True:
        page = await storage.list_jobs(JobFilter(), limit=200, cursor=cursor)
        for job in page.jobs:
            per_queue = out.setdefault(job.queue, zero_counts())
            per_queue[job.status] += 1
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


async def test_counts_stay_exact_through_every_way_a_job_moves(storage: Storage) -> None:
    """Seeded random walk over every write that adds, moves or removes jobs, on two queues."""
    import random

    rng = random.Random(7)
    queues = ("q", "r")
    clock = NOW

    async def running(queue: str) -> list[ClaimedJob]:
        return await storage.claim(queue, HOST, rng.randint(1, 4), clock)

    for step in range(60):
        clock += 1
        queue = rng.choice(queues)
        action = rng.choice(
            [
                "enqueue",
                "enqueue",
                "unique",
                "run",
                "run",
                "reap",
                "cancel",
                "retry",
                "retry_many",
                "delete",
                "delete_many",
                "purge",
            ]
        )
        if action == "enqueue":
            await storage.enqueue([new_job(queue=queue) for _ in range(rng.randint(1, 5))], clock)
        elif action == "unique":
            key = f"k{rng.randint(1, 3)}"
            await storage.enqueue([new_job(queue=queue, unique_key=key)] * 2, clock)
        elif action == "run":
            claimed = await running(queue)
            outcomes = [
                rng.choice(
                    [
                        done(job),
                        failed(job, retry_at=clock + rng.choice([0, 60])),
                        Finish(job.id, job.attempt, "dead", "dead", error="fatal"),
                        Finish(
                            job.id,
                            job.attempt,
                            "pending",
                            "released",
                            scheduled_at=clock,
                            refund_attempt=True,
                        ),
                        None,  # left running
                    ]
                )
                for job in claimed
            ]
            await storage.finish(HOST, [o for o in outcomes if o is not None], clock)
        elif action == "reap":
            await storage.reap(clock, clock, [HOST])
        else:
            ids = await ids_of(storage, JobFilter(queue=queue))
            target = rng.choice(ids) if ids else UNKNOWN_ID
            if action == "cancel":
                await storage.request_cancel(target, clock)
            elif action == "retry":
                try:
                    await storage.retry(target, clock)
                except ValueError:  # its unique key is held again: a clear refusal, no change
                    pass
            elif action == "retry_many":
                try:
                    await storage.retry_many(JobFilter(queue=queue, status="dead"), clock)
                except ValueError:
                    pass
            elif action == "delete":
                await storage.delete(target)
            elif action == "delete_many":
                await storage.delete_many(
                    JobFilter(queue=queue, status=rng.choice(["done", "dead"]))
                )
            else:
                await storage.purge(queue, rng.choice(["done", "dead"]), clock, rng.randint(1, 3))
        expected = await true_counts(storage)
        counts = await storage.counts()
        assert {q: c for q, c in counts.items() if any(c.values())} == expected, (step, action)


async def test_folding_the_counts_changes_none(storage: Storage, db_url: str) -> None:
    """Counts written through a connection that has since closed survive the leader's fold."""
    other = await open_storage(db_url)
    await other.enqueue([new_job(queue="q") for _ in range(3)], NOW)
    [job] = await other.claim("q", HOST, 1, NOW)
    await other.finish(HOST, [done(job)], NOW)
    await other.close()
    await storage.enqueue([new_job(queue="r")], NOW)
    before = await storage.counts()
    assert before == {"q": zero_counts(pending=2, done=1), "r": zero_counts(pending=1)}
    folded = await storage.fold_counts()
    if storage.backend == "postgres":
        assert folded > 0  # the closed connections' rows were folded, the open one's kept
    assert await storage.fold_counts() == 0
    assert await storage.counts() == before
