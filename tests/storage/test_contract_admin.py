"""Storage contract, run unchanged on SQLite and Postgres: retry, delete and cancel."""

from __future__ import annotations

import pytest

from forge_nb.storage import Storage
from forge_nb.storage.records import (
    Finish,
    JobFilter,
    Status,
)
from tests.storage.contract_support import (
    HOST,
    NOW,
    OTHER_HOST,
    UNKNOWN_ID,
    at,
    claim_one,
    done,
    event_names,
    get,
    ids_of,
    job_in_status,
    run_job,
    ts,
    zero_counts,
)

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


async def test_delete_many_by_status_takes_it_from_every_queue(storage: Storage) -> None:
    dead = [await job_in_status(storage, "dead", queue=q) for q in ("q1", "q2", "q3")]
    kept = [await job_in_status(storage, s, queue="q2") for s in ("done", "failed", "pending")]
    assert await storage.delete_many(JobFilter(status="dead")) == 3
    for job_id in dead:
        assert await storage.get_job(job_id) is None
    assert set(await ids_of(storage)) == set(kept)


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
