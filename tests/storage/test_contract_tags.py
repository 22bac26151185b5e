"""Storage contract, both backends: job tags (stored, read back, filtered, paged, swept)."""

from __future__ import annotations

import pytest

from forge_nb.storage import Storage
from forge_nb.storage.records import JobFilter
from tests.storage.contract_support import (
    NOW,
    assert_nothing_stored,
    collect_pages,
    get,
    ids_of,
    new_job,
)


async def test_tags_are_stored_and_filtered_newest_first(storage: Storage) -> None:
    results = await storage.enqueue(
        [new_job(tags=["etl", "nightly"]), new_job(), new_job(tags=["etl"], queue="other")],
        NOW,
    )
    a, b, c = (r.id for r in results)
    assert (await get(storage, a)).tags == ("etl", "nightly")
    assert (await get(storage, b)).tags == ()
    assert await ids_of(storage, JobFilter(tag="etl")) == [c, a]
    assert await ids_of(storage, JobFilter(tag="nightly")) == [a]
    assert await ids_of(storage, JobFilter(tag="etl", queue="q")) == [a]
    assert await ids_of(storage, JobFilter(tag="missing")) == []
    page = await storage.list_jobs(JobFilter(tag="etl"), 50)
    assert [j.tags for j in page.jobs] == [("etl",), ("etl", "nightly")]
    everything = await storage.list_jobs(JobFilter(), 50)
    assert {j.id: j.tags for j in everything.jobs}[b] == ()


async def test_a_tag_filter_pages_by_cursor(storage: Storage) -> None:
    results = await storage.enqueue(
        [new_job(tags=["t"] if i % 3 == 0 else ["u"], payload={"i": i}) for i in range(30)], NOW
    )
    tagged = [r.id for i, r in enumerate(results) if i % 3 == 0][::-1]
    assert await collect_pages(storage, JobFilter(tag="t"), 3) == tagged
    assert await collect_pages(storage, JobFilter(tag="t", search="9"), 2) == [results[9].id]


async def test_tags_with_unique_keys_and_duplicates(storage: Storage) -> None:
    first = await storage.enqueue([new_job(unique_key="k", tags=["a"])], NOW)
    again = await storage.enqueue([new_job(unique_key="k", tags=["b"])], NOW)
    assert again[0].outcome == "duplicate" and again[0].id == first[0].id
    assert (await get(storage, first[0].id)).tags == ("a",)  # the duplicate added none
    assert await ids_of(storage, JobFilter(tag="b")) == []


@pytest.mark.parametrize(
    "tags",
    [
        "etl",  # a string, not a list
        [""],
        ["x\x00y"],
        [1],
        ["x" * 101],
        [f"t{i}" for i in range(17)],
    ],
)
async def test_bad_tags_write_nothing(storage: Storage, tags: object) -> None:
    with pytest.raises(ValueError, match="tag"):
        await storage.enqueue([new_job(), new_job(tags=tags)], NOW)
    await assert_nothing_stored(storage)


async def test_duplicate_tags_collapse(storage: Storage) -> None:
    [r] = await storage.enqueue([new_job(tags=["a", "a", "b"])], NOW)
    assert (await get(storage, r.id)).tags == ("a", "b")


async def test_deleting_jobs_drops_their_tags(storage: Storage) -> None:
    [kept, _gone] = await storage.enqueue([new_job(tags=["keep"]), new_job(tags=["drop"])], NOW)
    assert await storage.delete_many(JobFilter(tag="drop")) == 1
    assert await ids_of(storage, JobFilter(tag="drop")) == []
    assert await ids_of(storage, JobFilter()) == [kept.id]
    assert await storage.delete(kept.id) == "pending"
    assert await ids_of(storage, JobFilter(tag="keep")) == []


async def test_scheduled_view_filters_by_tag(storage: Storage) -> None:
    [a, _] = await storage.enqueue([new_job(delay=60, tags=["later"]), new_job(delay=60)], NOW)
    page = await storage.list_jobs(JobFilter(scheduled_after=NOW, tag="later"), 10)
    assert [j.id for j in page.jobs] == [a.id] and page.jobs[0].tags == ("later",)
