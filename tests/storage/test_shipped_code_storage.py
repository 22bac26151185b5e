"""Storage contract for shipped code (issue 16): code rows, and code versions on jobs.

Runs unchanged on SQLite and Postgres (the ``storage`` fixture is parametrized).
"""

from __future__ import annotations

import pytest

from forge_nb.storage import Storage
from forge_nb.storage.records import JobFilter, NewJob, ShippedCode

NOW = 1_000.0
V1 = "1" * 16
V2 = "2" * 16


def code(
    version: str, kind: str = "work", at: float = NOW, blob: bytes = b"\x00code"
) -> ShippedCode:
    return ShippedCode(
        version=version,
        kind=kind,
        python="3.11",
        forge_nb_version="0.1.0",
        signature="ab" * 32,
        created_at=at,
        code=blob,
    )


async def test_code_rows_round_trip_and_publishing_twice_changes_nothing(storage: Storage) -> None:
    assert await storage.code_stamp() == (0, None)
    assert await storage.publish_code(code(V1, blob=b"\x00\xffbytes"))
    assert not await storage.publish_code(code(V1, blob=b"other", at=NOW + 5))
    assert await storage.publish_code(code(V2, kind="other", at=NOW + 1))
    stored = await storage.get_code(V1)
    assert stored == code(V1, blob=b"\x00\xffbytes")
    catalogue = await storage.code_catalogue()
    assert [(c.version, c.kind, c.code) for c in catalogue] == [
        (V1, "work", None),
        (V2, "other", None),
    ]
    assert await storage.code_stamp() == (2, NOW + 1)
    assert await storage.get_code("f" * 16) is None


@pytest.mark.parametrize("batch", [1, 3, 1200])
async def test_jobs_keep_their_code_version_on_every_enqueue_path(
    storage: Storage, batch: int
) -> None:
    jobs = [
        NewJob(kind="work", queue="q", code_version=V1 if i % 2 == 0 else None)
        for i in range(batch)
    ]
    results = await storage.enqueue(jobs, NOW)
    first = await storage.get_job(results[0].id)
    assert first is not None and first.code_version == V1
    if batch > 1:
        second = await storage.get_job(results[1].id)
        assert second is not None and second.code_version is None
    page = await storage.list_jobs(JobFilter(kind="work"), limit=2)
    assert {j.code_version for j in page.jobs} <= {V1, None}
    claimed = await storage.claim("q", "h", 2, NOW, kinds=["work"])
    assert [j.code_version for j in claimed] == [V1, None][: min(batch, 2)]


async def test_unique_jobs_keep_their_code_version(storage: Storage) -> None:
    [r] = await storage.enqueue(
        [NewJob(kind="work", queue="q", unique_key="u", code_version=V2)], NOW
    )
    job = await storage.get_job(r.id)
    assert job is not None and job.code_version == V2


async def test_a_bad_code_version_is_refused_and_nothing_is_written(storage: Storage) -> None:
    with pytest.raises(ValueError, match="code_version"):
        await storage.enqueue([NewJob(kind="work", queue="q", code_version="not hex!")], NOW)
    assert (await storage.list_jobs(JobFilter())).jobs == []


@pytest.mark.parametrize("n_kinds", [1, 3, 600])
async def test_claim_leaves_excluded_code_versions_pending(storage: Storage, n_kinds: int) -> None:
    kinds = [f"k{i:03d}" for i in range(n_kinds)]
    bad = await storage.enqueue(
        [NewJob(kind=kinds[0], queue="q", priority=5, code_version=V1)], NOW
    )
    good = await storage.enqueue(
        [
            NewJob(kind=kinds[0], queue="q", code_version=V2),
            NewJob(kind=kinds[-1], queue="q"),
        ],
        NOW,
    )
    claimed = await storage.claim("q", "h", 10, NOW, kinds=kinds, exclude_versions=[V1])
    assert sorted(j.id for j in claimed) == sorted(r.id for r in good)
    left = await storage.get_job(bad[0].id)
    assert left is not None and left.status == "pending" and left.attempts == 0
    # Without the exclusion it is claimable (and first: its priority is the highest).
    [again] = await storage.claim("q", "h", 10, NOW, kinds=kinds)
    assert again.id == bad[0].id and again.code_version == V1
