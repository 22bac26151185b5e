"""Storage contract, run unchanged on SQLite and Postgres: lifecycle, whole job lives, and the live counts kept as jobs move."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from forge_nb.storage import Storage, open_storage
from forge_nb.storage.records import (
    STATUSES,
    ClaimedJob,
    Finish,
    JobFilter,
    NewJob,
)
from tests.storage.contract_support import (
    HOST,
    NOW,
    UNKNOWN_ID,
    claim_one,
    done,
    enqueue_one,
    event_names,
    failed,
    get,
    ids_of,
    job_in_status,
    new_job,
    zero_counts,
)

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
    from forge_nb.storage.records import JobFilter

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
    from forge_nb.storage.records import JobFilter

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
    from_zero = await storage.list_jobs(JobFilter(queue="q", scheduled_after=0.0), limit=50)
    assert [j.id for j in from_zero.jobs] == [r.id for r in reversed(made[3:10])]  # not due
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
