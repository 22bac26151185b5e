"""Storage contract, run unchanged on SQLite and Postgres: reading jobs: one job, filtered pages, search, history."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from forge_nb.storage import Storage, open_storage, rows
from forge_nb.storage.records import (
    STATUSES,
    JobFilter,
)
from tests.storage.contract_support import (
    HOST,
    NOW,
    UNKNOWN_ID,
    claim_one,
    collect_pages,
    enqueue_one,
    failed,
    get,
    ids_of,
    job_in_status,
    new_job,
    run_job,
)

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


async def test_a_queues_pages_interleave_its_statuses_newest_first(storage: Storage) -> None:
    """A queue's page alone, a job of every status in it (both backends read it a status
    at a time: Postgres's migration 15, SQLite's 19)."""
    statuses = ["done", "running", "failed", "dead", "dead", "done"] + ["pending"] * 4
    wanted = []
    for i, status in enumerate(statuses):  # pending last: job_in_status claims the others
        made = await job_in_status(storage, status, queue="q" if i % 3 else "other")
        wanted += [made] if i % 3 else []
    for _ in range(3):  # waiting for a pending job
        [held] = await storage.enqueue([new_job(queue="q", depends_on=[wanted[-1]])], NOW)
        wanted.append(held.id)
    await enqueue_one(storage, queue="other")
    wanted.sort(key=int, reverse=True)
    assert {(await get(storage, m)).status for m in wanted} == set(STATUSES)
    for limit in (1, 2, 3, 7, 50):
        assert await collect_pages(storage, JobFilter(queue="q"), limit) == wanted, limit
    with pytest.raises(ValueError, match="cursor"):
        await storage.list_jobs(JobFilter(queue="q"), cursor="x")


async def test_a_statuss_pages_interleave_its_queues_newest_first(storage: Storage) -> None:
    """A status's page alone, its jobs spread over queues, some of which hold none of it
    (SQLite reads it a queue at a time since its migration 20)."""
    wanted = []
    for i in range(14):
        queue = ("a", "b", "c", "d")[i % 4]
        status = "dead" if i % 3 else "done"
        made = await job_in_status(storage, status, queue=queue)
        wanted += [made] if status == "dead" else []
    await job_in_status(storage, "done", queue="only_done")
    wanted.sort(key=int, reverse=True)
    assert len({(await get(storage, m)).queue for m in wanted}) == 4
    for limit in (1, 2, 3, 7, 50):
        assert await collect_pages(storage, JobFilter(status="dead"), limit) == wanted, limit
    assert await collect_pages(storage, JobFilter(status="waiting"), 5) == []
    with pytest.raises(ValueError, match="cursor"):
        await storage.list_jobs(JobFilter(status="dead"), cursor="x")


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
