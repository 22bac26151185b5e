"""Helpers shared by the storage contract tests (tests/storage/test_contract_*.py).

Every contract test gets a fresh database through the ``storage`` fixture (parametrized
``sqlite`` / ``postgres``). Time is a fake clock: the storage takes ``now`` from the caller,
so tests move it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from forge_nb.storage import Storage
from forge_nb.storage.records import (
    STATUSES,
    ClaimedJob,
    Finish,
    JobFilter,
    JobRecord,
    NewJob,
    Status,
)

NOW = 1_700_000_000.0
HOST = "host-a"
OTHER_HOST = "host-b"
UNKNOWN_ID = "987654321"


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
