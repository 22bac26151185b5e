"""Storage contract, run unchanged on SQLite and Postgres: a job record shows its flow
columns (SPEC §9.3): the expiry deadline and the concurrency key, in every job read."""

from __future__ import annotations

from forge_nb.storage import Storage
from forge_nb.storage.records import JobFilter
from tests.storage.contract_support import NOW, at, enqueue_one, get, new_job


async def test_a_job_record_shows_its_expiry_and_concurrency_key(storage: Storage) -> None:
    keyed = await enqueue_one(storage, expires_in=60, concurrency_key="c", key_limit=1)
    plain = await enqueue_one(storage)
    job = await get(storage, keyed)
    assert job.expires_at is not None and job.expires_at.timestamp() == at(NOW + 60)
    assert job.concurrency_key == "work/c"
    other = await get(storage, plain)
    assert (other.expires_at, other.concurrency_key) == (None, None)
    listed = {j.id: j for j in (await storage.list_jobs(JobFilter(queue="q"))).jobs}
    assert listed[keyed].concurrency_key == "work/c" and listed[keyed].expires_at is not None
    assert job.to_dict()["concurrency_key"] == "work/c"
    assert job.to_dict()["expires_at"] == job.expires_at.isoformat()


async def test_a_started_job_no_longer_shows_an_expiry(storage: Storage) -> None:
    await storage.enqueue([new_job(expires_in=60, concurrency_key="c", key_limit=1)], NOW)
    [claimed] = await storage.claim("q", "host", 1, NOW)
    job = await get(storage, claimed.id)
    assert (job.expires_at, job.concurrency_key) == (None, "work/c")
