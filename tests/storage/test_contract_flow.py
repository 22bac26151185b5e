"""Storage contract, run unchanged on SQLite and Postgres: flow control (SPEC §9.3):
expiry, unique windows, replace, per-key concurrency, and their bad input."""

from __future__ import annotations

from typing import Any

import pytest

from forge_nb.errors import UnknownRateLimit
from forge_nb.storage import Storage
from forge_nb.storage.records import Finish
from tests.storage.contract_support import (
    HOST,
    NOW,
    OTHER_HOST,
    assert_nothing_stored,
    at,
    done,
    enqueue_one,
    get,
    new_job,
)

# -- expires_in -----------------------------------------------------------------------------------


async def test_an_expired_job_is_never_claimed_and_ends_dead_expired(storage: Storage) -> None:
    late = await enqueue_one(storage, expires_in=10)
    fine = await enqueue_one(storage)
    assert [j.id for j in await storage.claim("q", HOST, 10, NOW + 11)] == [fine]
    assert (await get(storage, late)).status == "pending"
    assert await storage.expire_jobs(NOW + 11) == 1
    job = await get(storage, late)
    assert (job.status, job.last_error, job.attempts) == ("dead", "expired", 0)
    assert await storage.expire_jobs(NOW + 12) == 0
    assert (await storage.counts())["q"]["dead"] == 1


async def test_a_job_started_in_time_never_expires(storage: Storage) -> None:
    job_id = await enqueue_one(storage, expires_in=10)
    [claimed] = await storage.claim("q", HOST, 1, NOW + 5)
    assert claimed.id == job_id
    await storage.finish(
        HOST, [Finish(job_id, 1, "failed", "failed", error="x", scheduled_at=NOW + 20)], NOW + 6
    )
    assert await storage.expire_jobs(NOW + 30) == 0
    assert [j.id for j in await storage.claim("q", HOST, 1, NOW + 30)] == [job_id]


async def test_expiry_sweeps_in_bounded_steps(storage: Storage) -> None:
    await storage.enqueue([new_job(expires_in=1) for _ in range(5)], NOW)
    assert await storage.expire_jobs(NOW + 2, limit=3) == 3
    assert await storage.expire_jobs(NOW + 2, limit=3) == 2
    assert (await storage.counts())["q"]["dead"] == 5


# -- unique_for and on_conflict ------------------------------------------------------------------


async def test_unique_for_holds_the_key_after_the_holder_is_done(storage: Storage) -> None:
    first = await enqueue_one(storage, unique_key="k", unique_for=60)
    [claimed] = await storage.claim("q", HOST, 1, NOW)
    await storage.finish(HOST, [done(claimed)], NOW + 1)
    [again] = await storage.enqueue([new_job(unique_key="k")], NOW + 30)
    assert (again.id, again.outcome, again.status) == (first, "duplicate", "done")
    [later] = await storage.enqueue([new_job(unique_key="k", unique_for=60)], NOW + 62)
    assert later.outcome == "created" and later.id != first


async def test_without_a_window_a_finished_holder_frees_the_key(storage: Storage) -> None:
    await enqueue_one(storage, unique_key="k", unique_for=0)
    [claimed] = await storage.claim("q", HOST, 1, NOW)
    await storage.finish(HOST, [done(claimed)], NOW + 1)
    [again] = await storage.enqueue([new_job(unique_key="k")], NOW + 1.5)
    assert again.outcome == "created"


async def test_replace_updates_the_pending_holders_payload_and_time(storage: Storage) -> None:
    first = await enqueue_one(storage, unique_key="k", payload={"n": 1}, delay=5)
    [result] = await storage.enqueue(
        [new_job(unique_key="k", payload={"n": 2}, delay=30, on_conflict="replace")], NOW + 1
    )
    assert (result.id, result.outcome, result.status) == (first, "replaced", "pending")
    job = await get(storage, first)
    assert job.payload == {"n": 2} and job.scheduled_at.timestamp() == at(NOW + 31)
    assert (await storage.counts())["q"]["pending"] == 1
    [ignored] = await storage.enqueue([new_job(unique_key="k", payload={"n": 3})], NOW + 2)
    assert ignored.outcome == "duplicate" and (await get(storage, first)).payload == {"n": 2}


async def test_replace_leaves_a_running_holder_alone(storage: Storage) -> None:
    first = await enqueue_one(storage, unique_key="k", payload={"n": 1})
    await storage.claim("q", HOST, 1, NOW)
    [result] = await storage.enqueue(
        [new_job(unique_key="k", payload={"n": 2}, on_conflict="replace")], NOW
    )
    assert (result.id, result.outcome, result.status) == (first, "duplicate", "running")
    assert (await get(storage, first)).payload == {"n": 1}


# -- per-key concurrency ------------------------------------------------------------------------


async def test_a_key_at_its_limit_is_skipped_and_other_keys_run(storage: Storage) -> None:
    jobs = [
        new_job(payload={"i": i}, concurrency_key=c, key_limit=1)
        for i, c in enumerate(["a", "a", "b", "a", "b"])
    ]
    ids = [r.id for r in await storage.enqueue(jobs, NOW)]
    first = await storage.claim("q", HOST, 10, NOW)
    assert sorted(j.id for j in first) == sorted([ids[0], ids[2]]), "one per key, one claim"
    assert await storage.claim("q", OTHER_HOST, 10, NOW) == []
    a = next(j for j in first if j.id == ids[0])
    await storage.finish(HOST, [done(a)], NOW)
    assert [j.id for j in await storage.claim("q", OTHER_HOST, 10, NOW)] == [ids[1]]


async def test_a_failed_run_keeps_its_keys_place_until_it_ends(storage: Storage) -> None:
    jobs = [new_job(concurrency_key="a", key_limit=2, max_attempts=3) for _ in range(3)]
    ids = [r.id for r in await storage.enqueue(jobs, NOW)]
    assert (await get(storage, ids[2])).status == "waiting", "beyond the limit: held"
    running = await storage.claim("q", HOST, 10, NOW)
    assert [j.id for j in running] == ids[:2]
    fail = Finish(running[0].id, 1, "failed", "failed", error="x", scheduled_at=NOW + 100)
    await storage.finish(HOST, [fail], NOW)
    assert await storage.claim("q", HOST, 10, NOW) == [], "the retry keeps its place (FIFO)"
    [retry] = await storage.claim("q", HOST, 10, NOW + 100)
    assert retry.id == ids[0]
    await storage.finish(HOST, [done(retry)], NOW + 100)
    assert [j.id for j in await storage.claim("q", HOST, 10, NOW + 100)] == [ids[2]]


async def test_a_released_claim_and_a_reaped_job_give_their_slots_back(storage: Storage) -> None:
    ids = [
        r.id
        for r in await storage.enqueue(
            [new_job(concurrency_key="a", key_limit=1, max_attempts=5) for _ in range(2)], NOW
        )
    ]
    [running] = await storage.claim("q", HOST, 10, NOW)
    assert await storage.release_claims("q", HOST, [NOW]) == [running.id]
    [again] = await storage.claim("q", HOST, 10, NOW + 1)
    assert again.id == ids[0]
    await storage.reap(NOW + 100, NOW + 50)
    assert (await get(storage, ids[0])).status in ("failed", "pending")
    claimed = await storage.claim("q", OTHER_HOST, 10, NOW + 10_000)
    assert len(claimed) == 1, "the reaped job's slot is free again: one of the key runs"


# -- bad input -----------------------------------------------------------------------------------

BAD_FLOW = [
    pytest.param({"unique_key": "k", "unique_for": -1}, "unique_for", id="negative-unique-for"),
    pytest.param({"unique_for": 5}, "unique_key", id="unique-for-without-key"),
    pytest.param({"unique_key": "k", "on_conflict": "merge"}, "on_conflict", id="unknown-conflict"),
    pytest.param({"on_conflict": "replace"}, "unique_key", id="replace-without-key"),
    pytest.param({"concurrency_key": "a", "key_limit": 0}, "key_limit", id="key-limit-zero"),
    pytest.param({"concurrency_key": "a"}, "key_limit", id="key-without-limit"),
    pytest.param({"expires_in": 0}, "expires_in", id="zero-expiry"),
    pytest.param({"expires_in": float("nan")}, "expires_in", id="nan-expiry"),
]


@pytest.mark.parametrize(("flow", "message"), BAD_FLOW)
async def test_bad_flow_options_are_clear_errors_that_write_nothing(
    storage: Storage, flow: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as refused:
        await storage.enqueue([new_job(), new_job(**flow)], NOW)
    assert str(refused.value).startswith("job 1 of 2: ")  # the error names the bad job
    await assert_nothing_stored(storage)


# -- rate-limit templates ------------------------------------------------------------------------


async def test_a_template_makes_one_bucket_per_scope(storage: Storage) -> None:
    made = await storage.ensure_rate_limit("stripe:*", capacity=2, refill_per_second=1, now=NOW)
    assert (made.scope, made.template, made.capacity) == ("stripe:*", "stripe:*", 2.0)
    for scope in ("stripe:a", "stripe:b"):
        assert await storage.take_tokens(scope, 1, NOW) == 0.0
        assert await storage.take_tokens(scope, 1, NOW) == 0.0
        assert await storage.take_tokens(scope, 1, NOW) > 0, "each scope has its own budget"
    busiest = await storage.busiest_rate_limits()
    assert sorted((b.scope, b.template, b.tokens) for b in busiest) == [
        ("stripe:a", "stripe:*", at(0.0)),
        ("stripe:b", "stripe:*", at(0.0)),
    ]
    assert await storage.rate_limits() == [], "template buckets are listed apart"
    [template] = await storage.rate_limit_templates()
    assert (template.pattern, template.capacity, template.refill_per_second) == (
        "stripe:*",
        2.0,
        1.0,
    )


async def test_the_longest_matching_template_wins(storage: Storage) -> None:
    await storage.ensure_rate_limit("api:*", capacity=1, refill_per_second=1, now=NOW)
    await storage.ensure_rate_limit("api:slow:*", capacity=5, refill_per_second=1, now=NOW)
    await storage.take_tokens("api:slow:x", 1, NOW)
    await storage.take_tokens("api:fast", 1, NOW)
    buckets = {b.scope: b for b in await storage.busiest_rate_limits()}
    assert (buckets["api:slow:x"].template, buckets["api:slow:x"].capacity) == ("api:slow:*", 5)
    assert (buckets["api:fast"].template, buckets["api:fast"].capacity) == ("api:*", 1)


async def test_a_scope_without_bucket_or_template_is_still_unknown(storage: Storage) -> None:
    await storage.ensure_rate_limit("stripe:*", capacity=2, refill_per_second=1, now=NOW)
    with pytest.raises(UnknownRateLimit, match="paypal:x"):
        await storage.take_tokens("paypal:x", 1, NOW)
    with pytest.raises(UnknownRateLimit, match="paypal:x"):
        await storage.drain_rate_limit("paypal:x", NOW + 5, NOW)
    await storage.drain_rate_limit("stripe:new", NOW + 5, NOW)  # made from the template
    assert await storage.take_tokens("stripe:new", 1, NOW + 1) > 0


async def test_changing_a_template_retunes_its_live_buckets(storage: Storage) -> None:
    await storage.ensure_rate_limit("u:*", capacity=10, refill_per_second=1, now=NOW)
    await storage.take_tokens("u:1", 1, NOW)
    await storage.ensure_rate_limit("u:*", capacity=3, refill_per_second=2, now=NOW)
    [bucket] = await storage.busiest_rate_limits()
    assert (bucket.capacity, bucket.refill_per_second, bucket.tokens) == (3, 2, at(3.0))


async def test_idle_template_buckets_are_swept_once_full_again(storage: Storage) -> None:
    await storage.ensure_rate_limit("u:*", capacity=2, refill_per_second=1, now=NOW)
    await storage.ensure_rate_limit("named", capacity=2, refill_per_second=1, now=NOW)
    await storage.take_tokens("u:idle", 2, NOW)
    await storage.take_tokens("u:busy", 2, NOW + 100)
    await storage.take_tokens("named", 2, NOW)
    assert await storage.sweep_rate_limits(NOW + 1, NOW + 50) == 0, "u:idle is not full yet"
    assert await storage.sweep_rate_limits(NOW + 101, NOW + 50) == 1
    assert [b.scope for b in await storage.busiest_rate_limits()] == ["u:busy"]
    assert [b.scope for b in await storage.rate_limits()] == ["named"], "named ones stay"
    assert await storage.take_tokens("u:idle", 2, NOW + 102) == 0.0, "made anew, full"


@pytest.mark.parametrize("scope", ["stripe", "stripe:x"])
async def test_a_template_without_a_star_is_a_clear_error(storage: Storage, scope: str) -> None:
    with pytest.raises(ValueError, match=r"needs a '\*'"):
        await storage.ensure_rate_limit(
            scope, capacity=1, refill_per_second=1, now=NOW, template=True
        )
    assert await storage.rate_limit_templates() == [] and await storage.rate_limits() == []


# -- global_limit slots ---------------------------------------------------------------------------


async def _live(storage: Storage, *hosts: str, queue: str = "q") -> None:
    from datetime import UTC, datetime

    from forge_nb.storage.records import ProcessRecord

    at_now = datetime.fromtimestamp(NOW, UTC)
    await storage.register_processes(
        [ProcessRecord(f"{queue}-0-{h}", h, "box", 1, queue, None, at_now, at_now) for h in hosts]
    )


async def test_slots_split_fairly_and_never_twice(storage: Storage) -> None:
    await storage.ensure_queue("q", global_limit=5)
    await _live(storage, "h1", "h2")
    assert await storage.plan_queue_slots("q", "h1", 5, NOW - 1) == (3, 0, 0)
    assert await storage.take_queue_slots("q", "h1", 3, 5) == 3
    assert await storage.plan_queue_slots("q", "h2", 5, NOW - 1) == (2, 0, 0)
    assert await storage.take_queue_slots("q", "h2", 9, 5) == 2, "only the free ones"
    await _live(storage, "h3")
    share, held, usable = await storage.plan_queue_slots("q", "h1", 5, NOW - 1)
    assert (share, held, usable) == (2, 3, 3)
    await storage.release_queue_slots("q", "h1", 1)
    assert await storage.held_queue_slots("q", "h1", 5) == (2, 2)
    assert await storage.take_queue_slots("q", "h3", 1, 5) == 1
    assert await storage.take_queue_slots("q", "h3", 1, 5) == 0


async def test_a_dead_process_frees_its_slots_once_its_jobs_are_reaped(storage: Storage) -> None:
    await storage.ensure_queue("q", global_limit=2)
    await _live(storage, "h1")
    await storage.plan_queue_slots("q", "h1", 2, NOW - 1)
    assert await storage.take_queue_slots("q", "h1", 2, 2) == 2
    await storage.enqueue([new_job()], NOW)
    await storage.claim("q", "h1", 1, NOW)
    # h1 stops heartbeating: its slots stay taken while its job still runs
    await storage.plan_queue_slots("q", "h2", 2, NOW + 100)
    assert await storage.take_queue_slots("q", "h2", 2, 2) == 0
    await storage.reap(NOW + 100, NOW + 50)
    await storage.plan_queue_slots("q", "h2", 2, NOW + 100)
    assert await storage.take_queue_slots("q", "h2", 2, 2) == 2


async def test_a_lower_limit_drops_free_slots_and_stops_counting_the_rest(
    storage: Storage,
) -> None:
    await storage.ensure_queue("q", global_limit=4)
    await _live(storage, "h1")
    await storage.plan_queue_slots("q", "h1", 4, NOW - 1)
    assert await storage.take_queue_slots("q", "h1", 2, 4) == 2
    assert await storage.plan_queue_slots("q", "h1", 1, NOW - 1) == (1, 2, 1)


async def test_a_new_key_limit_applies_from_the_next_start(storage: Storage) -> None:
    jobs = [new_job(concurrency_key="a", key_limit=1) for _ in range(2)]
    ids = [r.id for r in await storage.enqueue(jobs, NOW)]
    assert [j.id for j in await storage.claim("q", HOST, 10, NOW)] == [ids[0]]
    await storage.enqueue([new_job(concurrency_key="a", key_limit=3)], NOW)
    assert len(await storage.claim("q", HOST, 10, NOW)) == 2, "limit 3 now: two more start"
