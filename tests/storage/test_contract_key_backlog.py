"""Storage contract, run unchanged on SQLite and Postgres: a concurrency key's backlog waits
out of the claimable set (held: status waiting) and is promoted, in claim order, in the
transaction that frees one of the key's places (issue 20)."""

from __future__ import annotations

from forge_nb.storage import Storage
from forge_nb.storage.records import Finish
from tests.storage.contract_support import HOST, NOW, OTHER_HOST, done, get, new_job


async def statuses(storage: Storage, ids: list[str]) -> list[str]:
    return [(await get(storage, i)).status for i in ids]


async def test_a_key_by_key_backlog_runs_one_per_key_in_order(storage: Storage) -> None:
    jobs = [
        new_job(payload={"k": k, "i": i}, concurrency_key=k, key_limit=1)
        for k in "abc"
        for i in range(4)
    ]
    ids = [r.id for r in await storage.enqueue(jobs, NOW)]
    counts = (await storage.counts())["q"]
    assert (counts["pending"], counts["waiting"]) == (3, 9), "only each key's first is claimable"
    order: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    while True:
        claimed = await storage.claim("q", HOST, 10, NOW)
        if not claimed:
            break
        keys = [j.payload["k"] for j in claimed]
        assert len(keys) == len(set(keys)), "never two runs of one key"
        for job in claimed:
            order[job.payload["k"]].append(job.payload["i"])
        await storage.finish(HOST, [done(j) for j in claimed], NOW)
    assert order == {k: [0, 1, 2, 3] for k in "abc"}, "FIFO within each key"
    assert set(await statuses(storage, ids)) == {"done"}


async def test_a_batch_takes_each_keys_free_places_in_input_order(storage: Storage) -> None:
    """One enqueue of many keyed jobs admits, per key, as many as it has free places, in
    input order (as the same jobs one by one would be); the others are held."""
    [first] = await storage.enqueue([new_job(concurrency_key="a", key_limit=2)], NOW)
    batch = [
        new_job(concurrency_key="a", key_limit=2),
        new_job(concurrency_key="b", key_limit=2, expires_in=60),
        new_job(),
        new_job(concurrency_key="a", key_limit=2, priority=9),
        new_job(concurrency_key="b", key_limit=2),
        new_job(concurrency_key="a", key_limit=2),
        new_job(concurrency_key="b", key_limit=2),
    ]
    results = await storage.enqueue(batch, NOW)
    ids = [r.id for r in results]
    assert await statuses(storage, ids) == [
        "pending",
        "pending",
        "pending",
        "waiting",
        "pending",
        "waiting",
        "waiting",
    ]
    assert [r.status for r in results] == await statuses(storage, ids), "results tell held jobs"
    assert (await get(storage, ids[1])).expires_at.timestamp() == NOW + 60  # type: ignore[union-attr]
    counts = (await storage.counts())["q"]
    assert (counts["pending"], counts["waiting"]) == (5, 3)
    await storage.request_cancel(first.id, NOW)
    assert await statuses(storage, ids[3:4]) == ["pending"], "a freed place: priority first"
    await storage.request_cancel(ids[1], NOW)
    assert await statuses(storage, ids[4:]) == ["pending", "waiting", "pending"]
    # One at a time (the row path on both backends), a held job's result says so too.
    [alone] = await storage.enqueue([new_job(concurrency_key="a", key_limit=2)], NOW)
    assert alone.status == "waiting" == (await statuses(storage, [alone.id]))[0]


async def test_promotion_follows_priority_then_time_then_id(storage: Storage) -> None:
    first = new_job(payload={"n": 0}, concurrency_key="a", key_limit=1)
    low = new_job(payload={"n": 1}, concurrency_key="a", key_limit=1)
    high = new_job(payload={"n": 2}, concurrency_key="a", key_limit=1, priority=5)
    ids = [r.id for r in await storage.enqueue([first, low, high], NOW)]
    [running] = await storage.claim("q", HOST, 10, NOW)
    await storage.finish(HOST, [done(running)], NOW)
    assert await statuses(storage, ids) == ["done", "waiting", "pending"]


async def test_a_job_leaving_without_running_frees_its_place(storage: Storage) -> None:
    jobs = [new_job(concurrency_key="a", key_limit=1, expires_in=5) for _ in range(4)]
    ids = [r.id for r in await storage.enqueue(jobs, NOW)]
    assert await statuses(storage, ids) == ["pending", "waiting", "waiting", "waiting"]
    assert await storage.request_cancel(ids[0], NOW) == "dead"
    assert await statuses(storage, ids) == ["dead", "pending", "waiting", "waiting"]
    assert await storage.delete(ids[1]) == "pending"
    assert await statuses(storage, ids[2:]) == ["pending", "waiting"]
    assert await storage.request_cancel(ids[3], NOW) == "dead", "held: no place to free"
    assert await statuses(storage, ids[2:]) == ["pending", "dead"]
    more = [r.id for r in await storage.enqueue([new_job(concurrency_key="a", key_limit=1)], NOW)]
    assert await storage.expire_jobs(NOW + 6) == 1
    assert await statuses(storage, [ids[2], *more]) == ["dead", "pending"]


async def test_a_dead_run_frees_its_place_a_reaped_retry_keeps_it(storage: Storage) -> None:
    jobs = [new_job(concurrency_key="a", key_limit=1, max_attempts=2) for _ in range(2)]
    ids = [r.id for r in await storage.enqueue(jobs, NOW)]
    await storage.claim("q", HOST, 10, NOW)
    await storage.reap(NOW + 100, NOW + 50)
    assert await statuses(storage, ids) == ["failed", "waiting"], "the retry keeps its place"
    [again] = await storage.claim("q", OTHER_HOST, 10, NOW + 100)
    assert again.id == ids[0]
    await storage.reap(NOW + 200, NOW + 150)
    assert await statuses(storage, ids) == ["dead", "pending"], "attempts spent: place freed"


async def test_a_raised_limit_promotes_held_jobs(storage: Storage) -> None:
    ids = [
        r.id
        for r in await storage.enqueue(
            [new_job(concurrency_key="a", key_limit=1) for _ in range(4)], NOW
        )
    ]
    [extra] = await storage.enqueue([new_job(concurrency_key="a", key_limit=3)], NOW)
    assert await statuses(storage, [*ids, extra.id]) == [
        "pending",
        "pending",
        "pending",
        "waiting",
        "waiting",
    ]
    assert len(await storage.claim("q", HOST, 10, NOW)) == 3


async def test_a_lowered_limit_holds_new_jobs_and_caps_running(storage: Storage) -> None:
    await storage.enqueue([new_job(concurrency_key="a", key_limit=3) for _ in range(3)], NOW)
    [late] = await storage.enqueue([new_job(concurrency_key="a", key_limit=1)], NOW)
    # Held behind the lowered limit, and its enqueue result says so (it said "pending").
    assert late.status == "waiting" and (await get(storage, late.id)).status == "waiting"
    assert len(await storage.claim("q", HOST, 10, NOW)) == 1, "running stays within the limit"


async def test_a_retried_dead_job_of_a_full_key_is_held(storage: Storage) -> None:
    ids = [
        r.id
        for r in await storage.enqueue(
            [new_job(concurrency_key="a", key_limit=1, max_attempts=1) for _ in range(2)], NOW
        )
    ]
    [first] = await storage.claim("q", HOST, 10, NOW)
    await storage.finish(HOST, [Finish(first.id, 1, "dead", "dead", error="x")], NOW)
    assert await statuses(storage, ids) == ["dead", "pending"]
    assert await storage.retry(ids[0], NOW) == "dead"
    assert await statuses(storage, ids) == ["waiting", "pending"]
    [second] = await storage.claim("q", HOST, 10, NOW)
    await storage.finish(HOST, [done(second)], NOW)
    assert await statuses(storage, ids) == ["pending", "done"]


async def test_replace_reaches_a_held_job(storage: Storage) -> None:
    await storage.enqueue([new_job(concurrency_key="a", key_limit=1)], NOW)
    [held] = await storage.enqueue(
        [new_job(concurrency_key="a", key_limit=1, unique_key="u", payload={"n": 1})], NOW
    )
    [again] = await storage.enqueue(
        [
            new_job(
                concurrency_key="a",
                key_limit=1,
                unique_key="u",
                payload={"n": 2},
                on_conflict="replace",
            )
        ],
        NOW + 1,
    )
    assert (again.id, again.outcome) == (held.id, "replaced")
    job = await get(storage, held.id)
    assert (job.status, job.payload) == ("waiting", {"n": 2})
