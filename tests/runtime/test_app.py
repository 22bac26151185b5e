"""The runtime in one process, on both backends: enqueue, run, outcomes, pools, cancel, shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

import forge_nb as fnb
from forge_nb.runtime.outcomes import backoff_delay
from forge_nb.storage.records import QueueConfig

FAST = {"heartbeat_interval": 0.2, "poll_interval": 0.2, "tick_interval": 0.1}


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[fnb.App]:
    application = fnb.App(db_url, **FAST)
    try:
        yield application
    finally:
        await application.close(timeout=2)


async def eventually(check, timeout: float = 10.0, interval: float = 0.02):
    """Await ``check()`` until it returns a truthy value (or fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        await asyncio.sleep(interval)


async def fast_retries(app: fnb.App, queue: str = "default", **knobs) -> None:
    await app.ensure_queue(queue, backoff_base_seconds=0.01, backoff_max_seconds=0.02, **knobs)


# -- enqueue ---------------------------------------------------------------------------------


async def test_enqueue_binds_positional_arguments_to_names(app: fnb.App) -> None:
    @app.job(queue="default")
    async def fetch(ctx: fnb.JobCtx, url: str, retries: int = 3) -> str:
        return url

    ref = await fetch.enqueue("https://example.org", retries=1)
    job = await app.job(ref.id)
    assert isinstance(ref.id, str)
    assert job.payload == {"url": "https://example.org", "retries": 1}
    assert job.kind == "test_enqueue_binds_positional_arguments_to_names.<locals>.fetch"
    assert job.status == "pending" and job.queue == "default"


async def test_arguments_that_do_not_fit_are_a_type_error_and_store_nothing(app: fnb.App) -> None:
    @app.job(kind="fetch")
    async def fetch(ctx: fnb.JobCtx, url: str) -> str:
        return url

    with pytest.raises(TypeError, match="fetch"):
        await fetch.enqueue("a", "b")
    with pytest.raises(TypeError):
        await fetch.enqueue(nope=1)
    with pytest.raises(TypeError):
        await app.enqueue(fnb.EnqueueRequest(kind="fetch", payload={"wrong": 1}))
    with pytest.raises(ValueError):
        await fetch.options(delay=-1).enqueue("a")
    with pytest.raises(ValueError, match="JSON"):
        await fetch.enqueue(object())
    assert await app.jobs() == []


async def test_options_and_enqueue_many(app: fnb.App) -> None:
    @app.job(kind="k", queue="q1")
    async def k(ctx: fnb.JobCtx, x: int) -> int:
        return x

    before = datetime.now(UTC)
    ref = await k.options(delay=30, priority=5, unique_key="u1").enqueue(1)
    again = await k.options(unique_key="u1").enqueue(2)
    job = await app.job(ref.id)
    assert job.priority == 5 and job.unique_key == "u1"
    assert job.scheduled_at >= before + timedelta(seconds=29)
    assert again.id == ref.id and again.outcome == "duplicate"

    refs = await k.enqueue_many([(1,), (2,), {"x": 3}])
    assert [(await app.job(r.id)).payload for r in refs] == [{"x": 1}, {"x": 2}, {"x": 3}]
    reqs = await app.enqueue_many(
        [fnb.EnqueueRequest(kind="k", payload={"x": i}, queue="other") for i in range(3)]
    )
    assert {(await app.job(r.id)).queue for r in reqs} == {"other"}
    with pytest.raises(TypeError):  # one bad request: none stored
        await app.enqueue_many(
            [fnb.EnqueueRequest(kind="k", payload={"x": 9}), fnb.EnqueueRequest(kind="k")]
        )
    assert len(await app.jobs(limit=100)) == 7


async def test_every_enqueue_option_reaches_the_stored_job(app: fnb.App) -> None:
    """Each option lands in its own field (the runtime builds the storage's record by
    position, for speed: a shifted field would store one option as another)."""

    @app.job(kind="all", concurrency_key="customer", key_limit=2)
    async def every(ctx: fnb.JobCtx, customer: str) -> None:
        pass

    dep = await every.enqueue("c0")
    before = datetime.now(UTC)
    ref = await every.options(
        queue="q9",
        priority=7,
        delay=60,
        max_attempts=9,
        unique_key="u9",
        depends_on=[dep],
        expires_in=600,
        tags=["t9"],
    ).enqueue("c9")
    job = await app.job(ref.id)
    assert (job.kind, job.queue, job.payload, job.priority) == ("all", "q9", {"customer": "c9"}, 7)
    assert (job.max_attempts, job.unique_key, job.tags) == (9, "u9", ("t9",))
    assert job.dependencies == 1 and job.concurrency_key is not None
    assert "c9" in job.concurrency_key
    assert before + timedelta(seconds=59) <= job.scheduled_at <= before + timedelta(seconds=70)
    assert job.expires_at is not None and job.expires_at > job.scheduled_at


async def test_routers_pick_queues(db_url: str) -> None:
    router = fnb.KindPrefixRouter({"slack.": "slack", "slack.dm.": "dm", "gh.": "github"})
    async with fnb.App(db_url, router=router) as app:
        refs = await app.enqueue_many(
            [
                fnb.EnqueueRequest(kind="slack.post"),
                fnb.EnqueueRequest(kind="slack.dm.send"),
                fnb.EnqueueRequest(kind="gh.issue"),
                fnb.EnqueueRequest(kind="other"),
                fnb.EnqueueRequest(kind="slack.post", queue="explicit"),
            ]
        )
        queues = [(await app.job(r.id)).queue for r in refs]
    assert queues == ["slack", "dm", "github", "default", "explicit"]
    assert fnb.DefaultRouter().route("anything") == "default"


# -- running ------------------------------------------------------------------------------------


async def test_start_returns_at_once_and_runs_async_and_sync_jobs(app: fnb.App) -> None:
    @app.job
    async def add(ctx: fnb.JobCtx, a: int, b: int) -> int:
        return a + b

    @app.job
    def mul(ctx: fnb.JobCtx, a: int, b: int) -> int:
        assert threading.current_thread() is not threading.main_thread()
        return a * b

    handle = await app.start()
    assert await app.start() is handle  # idempotent
    assert await (await add.enqueue(2, 3)).wait(10) == 5
    assert await (await mul.enqueue(4, 5)).wait(10) == 20
    job = await app.job((await add.enqueue(1, 1)).id)
    await fnb.JobRef(app, job.id).wait(10)
    done = await app.job(job.id)
    assert done.status == "done" and done.attempts == 1 and done.result == 2
    assert done.started_at is not None and done.finished_at >= done.started_at


async def test_sync_job_does_not_stall_the_loop(app: fnb.App) -> None:
    @app.job
    def blocking(ctx: fnb.JobCtx) -> str:
        time.sleep(0.6)
        return "ok"

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.02)

    await app.start()
    ref = await blocking.enqueue()
    task = asyncio.create_task(ticker())
    await eventually(lambda: _status_is(ref, "running"))
    ticks = 0
    assert await ref.wait(10) == "ok"
    task.cancel()
    assert ticks >= 10  # the loop kept ticking while the thread slept


async def _status_is(ref: fnb.JobRef, *statuses: str) -> bool:
    return await ref.status() in statuses


async def test_handlers_receive_ctx_and_report_progress(app: fnb.App) -> None:
    seen = {}
    release = asyncio.Event()

    @app.job(queue="work")
    async def step(ctx: fnb.JobCtx) -> None:
        seen.update(
            job_id=ctx.job_id,
            kind=ctx.kind,
            queue=ctx.queue,
            attempt=ctx.attempt,
            process_id=ctx.process_id,
            host_id=ctx.host_id,
        )
        await ctx.progress(0.5, "halfway")
        await release.wait()

    await app.start()
    ref = await step.enqueue()
    job = await eventually(lambda: _progress(app, ref.id))
    assert job.progress == 0.5 and job.progress_message == "halfway"
    release.set()
    await ref.wait(10)
    assert seen["job_id"] == ref.id and seen["queue"] == "work" and seen["attempt"] == 1
    assert seen["process_id"] == f"work-0-{app.host_id}" and seen["host_id"] == app.host_id


async def _progress(app: fnb.App, job_id: str):
    job = await app.job(job_id)
    return job if job.progress is not None else None


async def test_reregistering_a_kind_runs_the_new_code(app: fnb.App) -> None:
    @app.job(kind="greet")
    async def greet_v1(ctx: fnb.JobCtx) -> str:
        return "v1"

    @app.job(kind="greet")
    async def greet_v2(ctx: fnb.JobCtx) -> str:
        return "v2"

    await app.start()
    assert await (await greet_v1.enqueue()).wait(10) == "v2"


async def test_class_based_handler(app: fnb.App) -> None:
    class Upper:
        kind = "upper"

        async def run(self, ctx: fnb.JobCtx, payload: dict) -> str:
            return payload["text"].upper()

    app.handlers.register(Upper())
    await app.start()
    ref = await app.enqueue(fnb.EnqueueRequest(kind="upper", payload={"text": "hi"}))
    assert await ref.wait(10) == "HI"
    with pytest.raises(TypeError):
        app.handlers.register(object())  # type: ignore[arg-type]


async def test_enqueued_in_process_starts_without_waiting_for_a_poll(db_url: str) -> None:
    async with fnb.App(db_url, poll_interval=60) as app:

        @app.job
        async def quick(ctx: fnb.JobCtx) -> str:
            return "ok"

        await app.ensure_queue("default")
        await app.start()
        await asyncio.sleep(0.2)  # the pool is idle, waiting on a 60 s poll
        assert await (await quick.enqueue()).wait(timeout=10) == "ok"


async def test_jobs_of_a_claim_whose_reply_was_lost_still_run_once(
    app: fnb.App, caplog: pytest.LogCaptureFixture
) -> None:
    """The claim commits, then the connection drops its reply: the worker hears an error.

    The database is real; only the reply is thrown away, the way a connection that breaks
    after the commit (a Postgres restart, a network cut) throws it away.
    """
    ran: list[str] = []

    @app.job(queue="default")
    async def work(ctx: fnb.JobCtx, n: int) -> None:
        ran.append(ctx.job_id)

    refs = [await work.enqueue(n) for n in range(3)]
    storage = await app.storage()
    real_claim = storage.claim
    dropped: list[list[str]] = []

    async def claim_losing_the_first_reply(*args, **kwargs):  # type: ignore[no-untyped-def]
        jobs = await real_claim(*args, **kwargs)
        if jobs and not dropped:
            dropped.append([j.id for j in jobs])
            raise fnb.StorageError("connection lost after the claim committed (test)")
        return jobs

    storage.claim = claim_losing_the_first_reply  # type: ignore[method-assign]
    with caplog.at_level("WARNING", logger="forge_nb.worker"):
        await app.start()

        async def all_done() -> bool:
            jobs = [await app.job(r.id) for r in refs]
            return all(j is not None and j.status == "done" for j in jobs)

        await eventually(all_done, timeout=15)
    assert dropped and set(dropped[0]) <= {r.id for r in refs}
    assert sorted(ran) == sorted(r.id for r in refs), "each job ran exactly once"
    jobs = [await app.job(r.id) for r in refs]
    assert [j.attempts for j in jobs] == [1, 1, 1], "the lost claim's attempt is refunded"
    assert any("reply was lost" in r.message for r in caplog.records)


# -- outcomes ---------------------------------------------------------------------------------


async def test_failures_retry_with_backoff_then_die_with_the_error_chain(app: fnb.App) -> None:
    calls = []

    @app.job(max_attempts=3)
    async def flaky(ctx: fnb.JobCtx) -> None:
        calls.append(ctx.attempt)
        try:
            raise KeyError("root")
        except KeyError as exc:
            try:
                raise ValueError("middle") from exc
            except ValueError as exc2:
                raise RuntimeError("top") from exc2

    await fast_retries(app)
    await app.start()
    ref = await flaky.enqueue()
    with pytest.raises(fnb.JobDead) as info:
        await ref.wait(10)
    job = info.value.job
    assert calls == [1, 2, 3]
    assert job.status == "dead" and job.attempts == 3
    assert job.last_error == "RuntimeError: top: ValueError: middle: KeyError: 'root'"
    assert "RuntimeError: top" in job.last_traceback and "KeyError" in job.last_traceback
    history = [e.event for e in await app.job_history(ref.id)]
    assert history.count("failed") == 2 and "dead" in history and history[0] == "enqueued"


async def test_failed_job_waits_for_its_backoff(app: fnb.App) -> None:
    @app.job(max_attempts=5)
    async def once(ctx: fnb.JobCtx) -> None:
        raise RuntimeError("nope")

    await app.ensure_queue("default", backoff_base_seconds=60, backoff_jitter=False)
    await app.start()
    ref = await once.enqueue()
    job = await eventually(lambda: _with_status(app, ref.id, "failed"))
    assert job.attempts == 1 and job.last_error == "RuntimeError: nope"
    delay = job.scheduled_at - job.finished_at
    assert timedelta(seconds=59) < delay < timedelta(seconds=61)


async def _with_status(app: fnb.App, job_id: str, status: str):
    job = await app.job(job_id)
    return job if job is not None and job.status == status else None


def test_backoff_curve() -> None:
    config = QueueConfig("q", backoff_base_seconds=1, backoff_max_seconds=300, backoff_jitter=False)
    assert [backoff_delay(config, n) for n in (1, 2, 3, 4, 10, 40)] == [1, 2, 4, 8, 300, 300]
    jittered = QueueConfig("q", backoff_base_seconds=8)
    assert all(0 <= backoff_delay(jittered, 1) <= 8 for _ in range(100))
    assert backoff_delay(QueueConfig("q", backoff_enabled=False), 5) == 0


async def test_throttled_spends_no_attempt_and_dead_skips_retries(app: fnb.App) -> None:
    runs = []

    @app.job(max_attempts=5)
    async def polite(ctx: fnb.JobCtx) -> str:
        runs.append(ctx.attempt)
        if len(runs) < 3:
            raise fnb.Throttled(retry_after=0.05)
        return "through"

    @app.job(max_attempts=5)
    async def hopeless(ctx: fnb.JobCtx) -> None:
        raise fnb.Dead("bad input, never retry")

    await app.ensure_queue("default", backoff_enabled=False)
    await app.start()
    ref = await polite.enqueue()
    assert await ref.wait(10) == "through"
    assert runs == [1, 1, 1]  # each throttled run gave its attempt back
    assert (await app.job(ref.id)).attempts == 1
    assert [e.event for e in await app.job_history(ref.id)].count("throttled") == 2

    dead = await hopeless.enqueue()
    with pytest.raises(fnb.JobDead, match="never retry"):
        await dead.wait(10)
    assert (await app.job(dead.id)).attempts == 1


async def test_base_exceptions_do_not_kill_the_worker(app: fnb.App) -> None:
    class Weird(BaseException):
        pass

    @app.job(max_attempts=1)
    async def exits(ctx: fnb.JobCtx) -> None:
        raise SystemExit(3)

    @app.job(max_attempts=1)
    async def interrupts(ctx: fnb.JobCtx) -> None:
        raise KeyboardInterrupt

    @app.job(max_attempts=1)
    async def weird(ctx: fnb.JobCtx) -> None:
        raise Weird("odd")

    @app.job(max_attempts=1)
    async def not_json(ctx: fnb.JobCtx) -> object:
        return object()

    @app.job
    async def fine(ctx: fnb.JobCtx) -> str:
        return "still alive"

    await app.start()
    refs = [await f.enqueue() for f in (exits, interrupts, weird, not_json)]
    for ref in refs:
        with pytest.raises(fnb.JobDead):
            await ref.wait(10)
    assert "not JSON" in (await app.job(refs[3].id)).last_error
    assert await (await fine.enqueue()).wait(10) == "still alive"


# -- kinds: a process claims only what it can run ----------------------------------------------


async def test_a_job_of_a_kind_this_process_lacks_waits_until_its_handler_is_registered(
    app: fnb.App,
) -> None:
    @app.job
    async def fine(ctx: fnb.JobCtx) -> str:
        return "ran"

    await app.start()
    unknown = await app.enqueue(fnb.EnqueueRequest(kind="nobody.home", payload={"n": 1}))
    assert await (await fine.enqueue()).wait(10) == "ran"
    await asyncio.sleep(3 * FAST["poll_interval"])  # several claims go by
    job = await app.job(unknown.id)
    assert (job.status, job.attempts, job.last_error) == ("pending", 0, None)
    assert [(s.kind, s.jobs) for s in await app.stranded_kinds()] == [("nobody.home", 1)]

    @app.job(kind="nobody.home")  # registered at runtime (a cell run later): the next claim
    async def home(ctx: fnb.JobCtx, n: int) -> int:
        return n + 1

    assert await unknown.wait(10) == 2
    assert (await app.job(unknown.id)).attempts == 1

    async def flag_cleared() -> bool:
        return await app.stranded_kinds() == []

    await eventually(flag_cleared)


async def test_process_rows_list_the_kinds_and_follow_registrations(app: fnb.App) -> None:
    @app.job(kind="first")
    async def first(ctx: fnb.JobCtx) -> None:
        pass

    await app.ensure_queue("default", workers=2)
    await app.start()
    rows = await app.processes()
    assert rows and {r.kinds for r in rows} == {("first", "forge_nb.echo")}

    @app.job(kind="second")
    async def second(ctx: fnb.JobCtx) -> None:
        pass

    async def listed() -> bool:
        return {r.kinds for r in await app.processes()} == {("first", "forge_nb.echo", "second")}

    await eventually(listed, timeout=5)
    app.handlers.remove("first")

    async def dropped() -> bool:
        return {r.kinds for r in await app.processes()} == {("forge_nb.echo", "second")}

    await eventually(dropped, timeout=5)


async def test_a_job_whose_handler_is_dropped_while_claimed_goes_back_with_its_attempt(
    app: fnb.App,
) -> None:
    """The one way a claimed job can lack a handler: unregistered between claim and run."""
    ran: list[int] = []

    @app.job(kind="fleeting")
    async def fleeting(ctx: fnb.JobCtx) -> None:
        ran.append(ctx.attempt)

    ref = await fleeting.enqueue()
    storage = await app.storage()
    real_claim = storage.claim
    dropped: list[str] = []

    async def claim_then_drop_the_handler(*args, **kwargs):  # type: ignore[no-untyped-def]
        jobs = await real_claim(*args, **kwargs)
        if jobs and not dropped:
            dropped.append(jobs[0].id)
            app.handlers.remove("fleeting")  # lands between the claim and the run
        return jobs

    storage.claim = claim_then_drop_the_handler  # type: ignore[method-assign]
    await app.start()

    async def released() -> fnb.JobRecord | None:
        job = await app.job(ref.id)
        return job if job.status == "pending" and job.last_error else None

    job = await eventually(released)
    assert job.attempts == 0 and "no handler for kind fleeting" in job.last_error
    assert "released" in [e.event for e in await app.job_history(ref.id)]
    assert ran == [] and dropped == [ref.id]
    app.handlers.add(fleeting._handler)  # back: the job runs, as attempt 1
    await ref.wait(10)
    assert ran == [1] and (await app.job(ref.id)).attempts == 1


async def test_timeout_bounds_a_handler(app: fnb.App) -> None:
    @app.job(timeout=0.2, max_attempts=1)
    async def forever(ctx: fnb.JobCtx) -> None:
        await asyncio.sleep(3600)

    await app.start()
    ref = await forever.enqueue()
    with pytest.raises(fnb.JobDead, match="timed out after 0.2 s"):
        await ref.wait(10)


# -- pools and limits -------------------------------------------------------------------------


class Gauge:
    """Counts concurrent runs and remembers the peak."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    async def hold(self, seconds: float) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.now -= 1


async def test_worker_count_is_live_config(app: fnb.App) -> None:
    gauge = Gauge()

    @app.job
    async def work(ctx: fnb.JobCtx) -> None:
        await gauge.hold(0.05)

    await app.ensure_queue("default", workers=2)
    await app.start()
    refs = await work.enqueue_many([() for _ in range(30)])
    await asyncio.gather(*(r.wait(20) for r in refs))
    assert gauge.peak == 2

    await app.set_queue_config("default", workers=5)
    await asyncio.sleep(0.4)  # next tick
    gauge.peak = 0
    refs = await work.enqueue_many([() for _ in range(40)])
    await asyncio.gather(*(r.wait(20) for r in refs))
    assert gauge.peak == 5
    slots = [p.id for p in await app.processes() if p.host_id == app.host_id]
    assert sorted(slots) == sorted(f"default-{i}-{app.host_id}" for i in range(5))


async def test_paused_queue_claims_nothing_until_resumed(app: fnb.App) -> None:
    @app.job
    async def work(ctx: fnb.JobCtx) -> str:
        return "ran"

    await app.ensure_queue("default")
    await app.pause_queue("default")
    await app.start()
    ref = await work.enqueue()
    await asyncio.sleep(0.6)
    assert await ref.status() == "pending"
    await app.resume_queue("default")
    assert await ref.wait(10) == "ran"
    with pytest.raises(fnb.UnknownQueue):
        await app.pause_queue("no-such-queue")


async def test_per_kind_concurrency_and_process_cap(db_url: str) -> None:
    async with fnb.App(db_url, max_concurrency=3, **FAST) as app:
        solo, capped = Gauge(), Gauge()

        @app.job(concurrency=1)
        async def one_at_a_time(ctx: fnb.JobCtx) -> None:
            await solo.hold(0.03)

        @app.job(queue="other")
        async def many(ctx: fnb.JobCtx) -> None:
            await capped.hold(0.03)

        await app.ensure_queue("default", workers=10)
        await app.ensure_queue("other", workers=10)
        await app.start()
        refs = await one_at_a_time.enqueue_many([() for _ in range(10)])
        refs += await many.enqueue_many([() for _ in range(30)])
        await asyncio.gather(*(r.wait(30) for r in refs))
        assert solo.peak == 1
        assert capped.peak <= 3 and capped.peak >= 2


# -- cancellation and shutdown ----------------------------------------------------------------


async def test_cancel_pending_and_running_jobs(app: fnb.App) -> None:
    started = asyncio.Event()

    @app.job
    async def long(ctx: fnb.JobCtx) -> None:
        started.set()
        await asyncio.sleep(3600)

    @app.job
    def stubborn(ctx: fnb.JobCtx) -> str:
        time.sleep(0.3)  # ignores its token
        return "finished anyway"

    pending = await long.options(delay=3600).enqueue()
    assert await pending.cancel() == "dead"
    job = await app.job(pending.id)
    assert job.status == "dead" and job.last_error == "cancelled" and job.attempts == 0

    await app.start()
    running = await long.enqueue()
    await asyncio.wait_for(started.wait(), 10)
    assert await app.cancel(running.id) == "running"
    with pytest.raises(fnb.JobDead, match="cancelled"):
        await running.wait(5)
    job = await app.job(running.id)
    assert job.attempts == 0  # cancellation spends no attempt

    sync_ref = await stubborn.enqueue()
    await eventually(lambda: _status_is(sync_ref, "running"))
    await sync_ref.cancel()
    with pytest.raises(fnb.JobDead, match="cancelled"):
        await sync_ref.wait(5)
    assert await app.cancel("999999") is None


async def test_graceful_shutdown_finishes_or_returns_jobs(app: fnb.App) -> None:
    @app.job
    async def short(ctx: fnb.JobCtx) -> str:
        await asyncio.sleep(0.2)
        return "done"

    @app.job
    async def too_long(ctx: fnb.JobCtx) -> str:
        await asyncio.sleep(3600)
        return "never"

    handle = await app.start()
    a = await short.enqueue()
    b = await too_long.enqueue()
    await eventually(lambda: _both_running(a, b))
    await handle.shutdown(timeout=1.0)
    assert not handle.running
    assert (await app.job(a.id)).status == "done"
    back = await app.job(b.id)
    assert back.status == "pending" and back.attempts == 0
    assert [p for p in await app.processes() if p.host_id == app.host_id] == []
    # a new start picks it up again
    assert await app.start() is not handle


async def _both_running(a: fnb.JobRef, b: fnb.JobRef) -> bool:
    return await a.status() == "running" and await b.status() == "running"


async def test_admin_retry_delete_counts_and_frames(app: fnb.App) -> None:
    @app.job(max_attempts=1)
    async def broken(ctx: fnb.JobCtx, n: int) -> None:
        raise RuntimeError(f"broken {n}")

    await app.start()
    refs = await broken.enqueue_many([(i,) for i in range(4)])
    for ref in refs:
        with pytest.raises(fnb.JobDead):
            await ref.wait(10)
    counts = await app.counts()
    assert counts["default"] == {
        "waiting": 0,
        "pending": 0,
        "running": 0,
        "failed": 0,
        "done": 0,
        "dead": 4,
    }
    frame = await app.jobs_frame(status="dead")
    assert len(frame) == 4 and set(frame["last_error"]) == {
        f"RuntimeError: broken {i}" for i in range(4)
    }

    await app.handle.shutdown(1)
    job = await app.retry(refs[0].id)
    assert job.status == "pending" and job.attempts == 0
    with pytest.raises(ValueError, match="only dead or failed"):
        await app.retry(refs[0].id)
    assert await app.retry_all("dead") == 3
    assert await app.delete(refs[1].id) is True
    assert await app.job(refs[1].id) is None
    assert await app.delete("424242") is False
    with pytest.raises(LookupError):
        await app.retry("424242")
    assert sum((await app.counts())["default"].values()) == 3


async def test_a_blocked_loop_is_reported_with_the_job_kind(
    app: fnb.App, caplog: pytest.LogCaptureFixture
) -> None:
    @app.job(kind="oops.sync_in_async")
    async def oops(ctx: fnb.JobCtx) -> None:
        time.sleep(0.8)  # blocking call in an async handler

    await app.start()
    with caplog.at_level("WARNING", logger="forge_nb.runtime"):
        await (await oops.enqueue()).wait(10)
        await asyncio.sleep(0.3)
    assert any("blocked" in r.message and "oops.sync_in_async" in r.message for r in caplog.records)


async def test_jobs_and_jobs_frame_read_every_search_window(
    app: fnb.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``app.jobs(search=…)`` fills its limit across windows; ``jobs_page`` is one window."""
    from forge_nb.storage import rows

    monkeypatch.setattr(rows, "SEARCH_WINDOW", 5)
    refs = await app.enqueue_many(
        [
            fnb.EnqueueRequest("t.x", payload={"tag": "rare" if i % 9 == 0 else "x"})
            for i in range(30)
        ]
    )
    expected = [refs[i].id for i in (27, 18, 9, 0)]
    assert [j.id for j in await app.jobs(search="rare", limit=50)] == expected
    assert [j.id for j in await app.jobs(search="rare", limit=2)] == expected[:2]
    first = await app.jobs_page(search="rare", limit=50)
    assert [j.id for j in first.jobs] == expected[:1], "one window: the newest 5 ids"
    assert first.next_cursor is not None
    assert list((await app.jobs_frame(search="rare")).index) == expected
