"""Storage contract, run unchanged on SQLite and Postgres: enqueue, bad input (nothing written) and unique keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from forge_nb.errors import PayloadError
from forge_nb.storage import Storage
from forge_nb.storage.records import (
    NewJob,
    QueueConfig,
)
from forge_nb.storage.validation import MAX_PAYLOAD_BYTES
from tests.storage.contract_support import (
    HOST,
    NOW,
    assert_nothing_stored,
    at,
    done,
    enqueue_one,
    failed,
    get,
    ids_of,
    job_in_status,
    new_job,
    run_job,
    ts,
    zero_counts,
)

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
    with pytest.raises(ValueError, match=message) as refused:
        await storage.enqueue(batch, NOW)
    assert str(refused.value).startswith("job 1 of 3: ")  # the error names the bad job
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
