"""Storage contract, run unchanged on SQLite and Postgres: claims (order, kinds, pauses), finishing runs, progress."""

from __future__ import annotations

import pytest

from forge_nb.storage import Storage
from forge_nb.storage.records import (
    Finish,
    JobFilter,
    JobLog,
)
from tests.storage.contract_support import (
    HOST,
    NOW,
    OTHER_HOST,
    UNKNOWN_ID,
    at,
    claim_one,
    done,
    enqueue_one,
    event_names,
    failed,
    get,
    job_in_status,
    new_job,
    run_job,
    ts,
    zero_counts,
)

# -- claim -----------------------------------------------------------------------------------------


async def test_finish_applies_the_latest_run_when_a_batch_also_holds_an_earlier_ones(
    storage: Storage,
) -> None:
    """An outcome held back through an outage, then the job reaped and claimed again."""
    job_id = await enqueue_one(storage)
    [first] = await storage.claim("q", HOST, 1, NOW)
    await storage.reap(NOW + 10, NOW + 10, [HOST])  # presumed dead: back to the retry path
    [second] = await storage.claim("q", HOST, 1, NOW + 11)
    assert (first.id, first.attempt, second.attempt) == (job_id, 1, 2)
    stale = Finish(job_id, 1, "done", "done", result_json='"first"')
    latest = Finish(job_id, 2, "done", "done", result_json='"second"')
    assert await storage.finish(HOST, [stale, latest], NOW + 12) == [job_id]
    job = await storage.get_job(job_id)
    assert job is not None and (job.status, job.result) == ("done", "second")


async def test_release_claims_gives_back_exactly_what_those_claims_took(
    storage: Storage,
) -> None:
    """A claim whose reply was lost: its jobs go back to pending, attempt refunded."""
    ids = [await enqueue_one(storage) for _ in range(5)]
    await enqueue_one(storage, queue="other")
    lost = await storage.claim("q", HOST, 2, NOW + 1.25)  # committed, reply never heard
    kept = await storage.claim("q", HOST, 1, NOW + 2.5)
    [elsewhere] = await storage.claim("other", HOST, 1, NOW + 1.25)
    [theirs] = await storage.claim("q", "host-b", 1, NOW + 1.25)
    finished = await storage.claim("q", HOST, 1, NOW + 3.75)
    await storage.finish(HOST, [Finish(finished[0].id, 1, "done", "done")], NOW + 4)
    assert await storage.release_claims("q", HOST, []) == []

    released = await storage.release_claims("q", HOST, [NOW + 1.25, NOW + 3.75, NOW + 9])
    assert released == sorted((j.id for j in lost), key=int)
    for job_id in released:
        job = await storage.get_job(job_id)
        assert job is not None and (job.status, job.attempts) == ("pending", 0)
    still_running = {kept[0].id, elsewhere.id, theirs.id}
    for job_id in still_running:
        job = await storage.get_job(job_id)
        assert job is not None and job.status == "running", job_id
    assert (await storage.get_job(finished[0].id)).status == "done"  # type: ignore[union-attr]
    assert (await storage.counts())["q"] == {
        "waiting": 0,
        "pending": 2,
        "running": 2,
        "failed": 0,
        "done": 1,
        "dead": 0,
    }
    again = await storage.claim("q", HOST, 5, NOW + 5)
    assert sorted((j.id for j in again), key=int) == released
    assert {j.attempt for j in again} == {1}, "the lost claim's attempt was given back"
    assert set(ids) >= set(released)


async def test_claim_order_is_priority_then_scheduled_at_then_id(storage: Storage) -> None:
    specs = [  # (label, priority, scheduled at NOW + offset)
        ("low-early", 0, -30),
        ("high-late", 5, -10),
        ("high-early", 5, -20),
        ("mid", 1, -40),
        ("high-late-2", 5, -10),
        ("low-late", 0, -5),
    ]
    for label, priority, offset in specs:
        await enqueue_one(
            storage, priority=priority, scheduled_at=NOW + offset, payload={"l": label}
        )
    order = [(await claim_one(storage)).payload["l"] for _ in specs]
    assert order == ["high-early", "high-late", "high-late-2", "mid", "low-early", "low-late"]


async def test_claim_of_a_batch_takes_the_best_jobs(storage: Storage) -> None:
    for priority in (0, 3, 1, 3, 2):
        await enqueue_one(storage, priority=priority, payload={"p": priority})
    claimed = await storage.claim("q", HOST, 3, NOW)
    assert sorted(j.payload["p"] for j in claimed) == [2, 3, 3]


async def test_claim_takes_at_most_limit_jobs(storage: Storage) -> None:
    await storage.enqueue([new_job(payload={"i": i}) for i in range(5)], NOW)
    first = await storage.claim("q", HOST, 2, NOW)
    rest = await storage.claim("q", HOST, 10, NOW)
    assert (len(first), len(rest)) == (2, 3)
    assert not {j.id for j in first} & {j.id for j in rest}
    assert await storage.claim("q", HOST, 10, NOW) == []
    assert (await storage.counts())["q"] == zero_counts(running=5)


async def test_claim_skips_jobs_scheduled_in_the_future(storage: Storage) -> None:
    job_id = await enqueue_one(storage, delay=60)
    assert await storage.claim("q", HOST, 10, NOW + 59) == []
    assert [j.id for j in await storage.claim("q", HOST, 10, NOW + 60)] == [job_id]


async def test_claim_only_takes_jobs_of_its_queue(storage: Storage) -> None:
    mine = await enqueue_one(storage, queue="mine")
    await enqueue_one(storage, queue="theirs")
    assert [j.id for j in await storage.claim("mine", HOST, 10, NOW)] == [mine]
    assert await storage.claim("nowhere", HOST, 10, NOW) == []


async def test_paused_queue_claims_nothing(storage: Storage) -> None:
    job_id = await enqueue_one(storage)
    await storage.update_queue("q", paused=True)
    assert await storage.claim("q", HOST, 10, NOW) == []
    assert (await get(storage, job_id)).status == "pending"
    await storage.update_queue("q", paused=False)
    assert [j.id for j in await storage.claim("q", HOST, 10, NOW)] == [job_id]


async def test_claim_takes_only_the_kinds_it_is_given(storage: Storage) -> None:
    slow = await enqueue_one(storage, kind="slow", priority=9)
    fast = await enqueue_one(storage, kind="fast")
    claimed = await storage.claim("q", HOST, 10, NOW, kinds=["fast", "other"])
    assert [j.id for j in claimed] == [fast]
    assert await storage.claim("q", HOST, 10, NOW, kinds=["other"]) == []
    assert await storage.claim("q", HOST, 10, NOW, kinds=[]) == [], "no kinds: nothing"
    assert [j.id for j in await storage.claim("q", HOST, 10, NOW, kinds={"slow"})] == [slow]


async def test_jobs_of_kinds_no_claimer_runs_stay_pending_with_attempts_unspent(
    storage: Storage,
) -> None:
    failed_id = await job_in_status(storage, "failed", kind="score")  # waiting for a retry
    foreign = [await enqueue_one(storage, kind=k, priority=5) for k in ("score", "slow_sync")]
    mine = [await enqueue_one(storage, kind="mine") for _ in range(3)]
    for t in range(3):  # claim after claim, as a worker does
        claimed = await storage.claim("q", HOST, 10, NOW + 7200 + t, kinds=["mine", "echo"])
        assert {j.id for j in claimed} == ({*mine} if t == 0 else set())
    for job_id in foreign:
        job = await get(storage, job_id)
        assert (job.status, job.attempts, job.claimed_by, job.started_at) == (
            "pending",
            0,
            None,
            None,
        )
    assert (await get(storage, failed_id)).status == "failed"
    assert (await storage.counts())["q"] == zero_counts(pending=2, running=3, failed=1)


async def test_claim_by_kind_keeps_claim_order_across_kinds(storage: Storage) -> None:
    specs = [  # (kind, priority, schedule offset)
        ("a", 0, -50),
        ("b", 5, -20),
        ("c", 5, -30),
        ("a", 5, -10),
        ("b", 0, -60),
        ("c", 0, -40),
        ("x", 9, -90),  # not claimed: a kind nobody here runs, ahead of everything
    ]
    for kind, priority, offset in specs:
        await enqueue_one(
            storage, kind=kind, priority=priority, scheduled_at=NOW + offset, payload={"k": kind}
        )
    order = []
    for _ in range(6):
        [job] = await storage.claim("q", HOST, 1, NOW, kinds=["a", "b", "c"])
        order.append((job.kind, job.priority, job.scheduled_at - NOW))
    assert order == [
        ("c", 5, at(-30)),
        ("b", 5, at(-20)),
        ("a", 5, at(-10)),
        ("b", 0, at(-60)),
        ("a", 0, at(-50)),
        ("c", 0, at(-40)),
    ]
    assert await storage.claim("q", HOST, 10, NOW, kinds=["a", "b", "c"]) == []


async def test_a_backlog_of_other_kinds_ahead_does_not_hide_runnable_jobs(
    storage: Storage,
) -> None:
    await storage.enqueue([new_job(kind="other", priority=1) for _ in range(300)], NOW - 10)
    mine = await storage.enqueue([new_job(kind="mine", payload={"i": i}) for i in range(30)], NOW)
    first = await storage.claim("q", HOST, 20, NOW, kinds=["mine"])
    rest = await storage.claim("q", HOST, 20, NOW, kinds=["mine"])
    assert [j.payload["i"] for j in first + rest] == list(range(30)), "in id order, all of them"
    assert {j.id for j in first + rest} == {r.id for r in mine}


@pytest.mark.parametrize("n_kinds", [1, 3, 5, 257, 600])
async def test_claim_by_kind_works_for_any_number_of_kinds(storage: Storage, n_kinds: int) -> None:
    kinds = [f"k{i:03d}" for i in range(n_kinds)]
    wanted = kinds[:: max(1, n_kinds // 4)]
    ids = [await enqueue_one(storage, kind=k, payload={"k": k}) for k in wanted]
    await enqueue_one(storage, kind="nobody")
    claimed = await storage.claim("q", HOST, 100, NOW, kinds=kinds)
    assert sorted(j.id for j in claimed) == sorted(ids)
    assert (await storage.counts())["q"]["pending"] == 1


async def test_claim_marks_the_job_running_and_counts_the_attempt(storage: Storage) -> None:
    job_id = await enqueue_one(
        storage, kind="fetch", payload={"url": "https://example.org"}, priority=2, max_attempts=4
    )
    job = await claim_one(storage, now=NOW + 5)
    assert job.id == job_id
    assert (job.kind, job.queue, job.payload) == ("fetch", "q", {"url": "https://example.org"})
    assert (job.attempt, job.max_attempts, job.priority) == (1, 4, 2)
    assert job.created_at == at(NOW) and job.scheduled_at == at(NOW)

    record = await get(storage, job_id)
    assert (record.status, record.attempts, record.claimed_by) == ("running", 1, HOST)
    assert ts(record.started_at) == at(NOW + 5)


async def test_failed_job_is_claimable_again_once_its_retry_time_passes(storage: Storage) -> None:
    job = await run_job(storage)
    await storage.finish(HOST, [failed(job, retry_at=NOW + 30)], NOW + 1)
    assert await storage.claim("q", HOST, 10, NOW + 29) == []
    again = await claim_one(storage, host=OTHER_HOST, now=NOW + 30)
    assert (again.id, again.attempt) == (job.id, 2)
    record = await get(storage, job.id)
    assert (record.status, record.attempts, record.claimed_by) == ("running", 2, OTHER_HOST)


# -- finish ----------------------------------------------------------------------------------------


async def test_finish_done_stores_the_result(storage: Storage) -> None:
    job = await run_job(storage)
    result = {"answer": 42, "text": "ünïcode ✓", "list": [1.5, None]}
    assert await storage.finish(HOST, [done(job, result)], NOW + 2) == [job.id]
    record = await get(storage, job.id)
    assert (record.status, record.result, record.attempts) == ("done", result, 1)
    assert ts(record.finished_at) == at(NOW + 2)
    assert (await storage.counts())["q"] == zero_counts(done=1)


async def test_finish_failed_schedules_a_retry_and_keeps_the_error(storage: Storage) -> None:
    job = await run_job(storage)
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: root'
    finish = Finish(
        job.id,
        job.attempt,
        "failed",
        "failed",
        error="top: middle: root",
        traceback=traceback,
        scheduled_at=NOW + 30,
    )
    assert await storage.finish(HOST, [finish], NOW + 1) == [job.id]
    record = await get(storage, job.id)
    assert (record.status, record.attempts) == ("failed", 1)
    assert (record.last_error, record.last_traceback) == ("top: middle: root", traceback)
    assert ts(record.scheduled_at) == at(NOW + 30)
    events = await storage.job_events(job.id)
    assert [(e.event, e.attempt, e.message) for e in events if e.event == "failed"] == [
        ("failed", 1, "top: middle: root")
    ]
    assert events[-1].at == at(NOW + 1)


async def test_finish_dead(storage: Storage) -> None:
    job = await run_job(storage)
    finish = Finish(job.id, job.attempt, "dead", "dead", error="gave up")
    assert await storage.finish(HOST, [finish], NOW + 1) == [job.id]
    record = await get(storage, job.id)
    assert (record.status, record.last_error) == ("dead", "gave up")
    assert ts(record.finished_at) == at(NOW + 1)
    assert "dead" in await event_names(storage, job.id)
    assert await storage.claim("q", HOST, 10, NOW + 10_000) == []


async def test_finish_pending_with_refund_gives_the_attempt_back(storage: Storage) -> None:
    job = await run_job(storage)
    throttled = Finish(
        job.id, job.attempt, "pending", "throttled", scheduled_at=NOW + 10, refund_attempt=True
    )
    assert await storage.finish(HOST, [throttled], NOW + 1) == [job.id]
    record = await get(storage, job.id)
    assert (record.status, record.attempts) == ("pending", 0)
    assert ts(record.scheduled_at) == at(NOW + 10)
    assert "throttled" in await event_names(storage, job.id)
    assert await storage.claim("q", HOST, 10, NOW + 9) == []
    assert (await claim_one(storage, now=NOW + 10)).attempt == 1


async def test_finish_from_another_host_is_ignored(storage: Storage) -> None:
    job = await run_job(storage)
    assert await storage.finish(OTHER_HOST, [done(job, "stolen")], NOW + 1) == []
    record = await get(storage, job.id)
    assert (record.status, record.result, record.claimed_by) == ("running", None, HOST)


async def test_finish_of_an_earlier_attempt_is_ignored(storage: Storage) -> None:
    first = await run_job(storage)
    await storage.finish(HOST, [failed(first, retry_at=NOW)], NOW)
    second = await claim_one(storage, now=NOW + 1)
    assert second.attempt == 2
    assert await storage.finish(HOST, [done(first, "late")], NOW + 2) == []
    record = await get(storage, first.id)
    assert (record.status, record.attempts, record.result) == ("running", 2, None)


async def test_finish_after_the_reaper_took_the_job_back_is_ignored(storage: Storage) -> None:
    job = await run_job(storage)
    reaped = await storage.reap(NOW + 1, stale_before=NOW, host_ids=[HOST])
    assert [r.id for r in reaped] == [job.id]
    assert await storage.finish(HOST, [done(job, "late")], NOW + 2) == []
    record = await get(storage, job.id)
    assert (record.status, record.result, record.last_error) == ("failed", None, "worker lost")


async def test_done_is_applied_exactly_once(storage: Storage) -> None:
    job = await run_job(storage)
    assert await storage.finish(HOST, [done(job, 1)], NOW + 1) == [job.id]
    assert await storage.finish(HOST, [done(job, 2)], NOW + 2) == []
    assert await storage.finish(HOST, [failed(job, retry_at=NOW)], NOW + 3) == []
    record = await get(storage, job.id)
    assert (record.status, record.result) == ("done", 1)
    assert ts(record.finished_at) == at(NOW + 1)


async def test_finish_batch_returns_only_the_runs_it_applied(storage: Storage) -> None:
    a = await run_job(storage)
    b = await run_job(storage)
    theirs = await run_job(storage, host=OTHER_HOST)
    finalized = await storage.finish(
        HOST, [done(a), failed(b, retry_at=NOW + 5), done(theirs)], NOW + 1
    )
    assert sorted(finalized) == sorted([a.id, b.id])
    assert (await get(storage, a.id)).status == "done"
    assert (await get(storage, b.id)).status == "failed"
    assert (await get(storage, theirs.id)).status == "running"


async def test_finish_of_nothing_does_nothing(storage: Storage) -> None:
    assert await storage.finish(HOST, [], NOW) == []


# -- logs stored with outcomes ---------------------------------------------------------------------


def logged(finish: Finish, text: str, at_time: float) -> Finish:
    finish.log = JobLog(finish.job_id, finish.attempt, text, text.count("\n") + 1, 0, at_time)
    return finish


async def test_an_outcome_stores_its_attempts_log_in_the_same_batch(storage: Storage) -> None:
    a, b, silent = await run_job(storage), await run_job(storage), await run_job(storage)
    finishes = [
        logged(done(a), "a: one\na: two", NOW + 1),
        logged(failed(b, retry_at=NOW + 5), "b: boom", NOW + 1),
        done(silent),
    ]
    assert sorted(await storage.finish(HOST, finishes, NOW + 1)) == sorted([a.id, b.id, silent.id])
    [log_a] = await storage.job_logs(a.id)
    assert (log_a.attempt, log_a.text, log_a.lines) == (1, "a: one\na: two", 2)
    assert [g.text for g in await storage.job_logs(b.id)] == ["b: boom"]
    assert await storage.job_logs(silent.id) == []


async def test_an_outcomes_log_does_not_replace_a_newer_one(storage: Storage) -> None:
    """A line written after the run ended (a stray thread) was flushed first: it stays."""
    job = await run_job(storage)
    await storage.write_job_logs([JobLog(job.id, 1, "end\nstray", 2, 0, NOW + 2)])
    assert await storage.finish(HOST, [logged(done(job), "end", NOW + 1)], NOW + 1) == [job.id]
    assert [g.text for g in await storage.job_logs(job.id)] == ["end\nstray"]
    await storage.write_job_logs([JobLog(job.id, 1, "end\nstray\nlater", 3, 0, NOW + 3)])
    assert [g.text for g in await storage.job_logs(job.id)] == ["end\nstray\nlater"]


async def test_logs_go_with_their_job_by_every_way_jobs_are_deleted(storage: Storage) -> None:
    one, many, old = [await run_job(storage, queue=q) for q in ("one", "many", "old")]
    kept = await run_job(storage, queue="kept")
    finishes = [logged(done(j), f"log of {j.queue}", NOW + 1) for j in (one, many, old, kept)]
    await storage.finish(HOST, finishes, NOW + 1)
    assert await storage.delete(one.id) == "done"
    assert await storage.delete_many(JobFilter(queue="many")) == 1
    assert await storage.purge("old", "done", NOW + 2, 100) == 1
    for gone in (one, many, old):
        assert await storage.job_logs(gone.id) == []
    assert [g.text for g in await storage.job_logs(kept.id)] == ["log of kept"]


async def test_a_run_taken_back_keeps_its_log_and_a_deleted_jobs_is_dropped(
    storage: Storage,
) -> None:
    job = await run_job(storage)
    gone = await run_job(storage)
    await storage.reap(NOW + 1, stale_before=NOW, host_ids=[HOST])
    assert await storage.delete(gone.id)
    finishes = [logged(done(job), "late but true", NOW + 2), logged(done(gone), "lost", NOW + 2)]
    assert await storage.finish(HOST, finishes, NOW + 2) == []
    assert [g.text for g in await storage.job_logs(job.id)] == ["late but true"]
    assert (await get(storage, job.id)).status == "failed"  # the outcome itself was not applied
    assert await storage.job_logs(gone.id) == []


async def test_every_attempts_log_is_kept_through_retries_and_a_retry_by_hand(
    storage: Storage,
) -> None:
    """A job's attempts each keep their own log; after a retry by hand (attempts counted
    afresh) a new first attempt's log replaces the old first one, and the rest stay."""
    job = await run_job(storage)
    await storage.finish(HOST, [logged(failed(job, retry_at=NOW + 1), "first", NOW + 1)], NOW + 1)
    again = await claim_one(storage, now=NOW + 2)
    assert again.attempt == 2
    await storage.finish(HOST, [logged(failed(again, retry_at=NOW), "second", NOW + 3)], NOW + 3)
    third = await claim_one(storage, now=NOW + 4)
    await storage.finish(HOST, [logged(done(third), "third", NOW + 5)], NOW + 5)
    logs = await storage.job_logs(job.id)
    assert [(g.attempt, g.text) for g in logs] == [(1, "first"), (2, "second"), (3, "third")]

    assert await storage.delete(job.id) == "done"  # the queue holds the next job alone
    job = await run_job(storage, now=NOW + 7)
    await storage.finish(HOST, [logged(failed(job, retry_at=NOW + 8), "a", NOW + 8)], NOW + 8)
    again = await claim_one(storage, now=NOW + 9)
    await storage.finish(HOST, [logged(failed(again, retry_at=NOW), "b", NOW + 9)], NOW + 9)
    assert await storage.retry(job.id, NOW + 10) == "failed"
    fresh = await claim_one(storage, now=NOW + 10)
    assert fresh.attempt == 1
    await storage.finish(HOST, [logged(done(fresh), "a again", NOW + 11)], NOW + 11)
    logs = await storage.job_logs(job.id)
    assert [(g.attempt, g.text) for g in logs] == [(1, "a again"), (2, "b")]


async def test_a_log_flushed_while_running_is_replaced_by_its_outcomes(storage: Storage) -> None:
    """The live copy and the outcome's make one log: the outcome's."""
    job = await run_job(storage)
    await storage.write_job_logs([JobLog(job.id, 1, "working", 1, 0, NOW + 1)])
    finish = logged(done(job), "working\nend", NOW + 2)
    assert await storage.finish(HOST, [finish], NOW + 2) == [job.id]
    [log] = await storage.job_logs(job.id)
    assert (log.attempt, log.text, log.lines) == (1, "working\nend", 2)


# -- progress --------------------------------------------------------------------------------------


async def test_progress_is_stored_for_running_jobs_only(storage: Storage) -> None:
    running = await run_job(storage)
    pending = await enqueue_one(storage)
    await storage.update_progress(
        [
            (running.id, 0.5, "halfway ✓"),
            (pending, 0.9, "not running"),
            (UNKNOWN_ID, 0.1, "unknown"),
            ("not-a-job", 0.1, "malformed"),
        ]
    )
    record = await get(storage, running.id)
    assert (record.progress, record.progress_message) == (0.5, "halfway ✓")
    record = await get(storage, pending)
    assert (record.progress, record.progress_message) == (None, None)

    await storage.update_progress([(running.id, 1.0, "")])
    assert (await get(storage, running.id)).progress == 1.0
    await storage.update_progress([])
