"""Flow control in one process, on both backends (SPEC §9.3): expiry, unique windows and
replace through the App, retry_on and backoff run by the worker, and bad arguments."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import forge_nb as fnb
from tests.runtime.test_app import FAST, eventually


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[fnb.App]:
    application = fnb.App(db_url, **FAST)
    try:
        yield application
    finally:
        await application.close(timeout=2)


async def test_a_job_not_started_in_time_ends_dead_expired_and_never_runs(app: fnb.App) -> None:
    ran: list[int] = []

    @app.job(queue="slow")
    async def work(ctx: fnb.JobCtx, n: int) -> None:
        ran.append(n)

    await app.ensure_queue("slow", paused=True)
    late = await work.options(expires_in=0.3).enqueue(1)
    kept = await work.enqueue(2)
    await app.start()
    await asyncio.sleep(0.6)
    await app.resume_queue("slow")
    assert await kept.wait(10) is None
    job = await eventually(lambda: _dead(app, late.id))
    assert job.last_error == "expired" and job.attempts == 0
    with pytest.raises(fnb.JobDead):
        await late.wait(5)
    assert ran == [2]


async def _dead(app: fnb.App, job_id: str) -> fnb.JobRecord | None:
    job = await app.job(job_id)
    return job if job is not None and job.status == "dead" else None


async def test_unique_for_and_replace_through_the_app(app: fnb.App) -> None:
    @app.job
    async def notify(ctx: fnb.JobCtx, text: str) -> str:
        return text

    first = await notify.options(unique_key="u1", unique_for=3600).enqueue("a")
    await app.start()
    assert await first.wait(10) == "a"
    again = await notify.options(unique_key="u1").enqueue("b")
    assert (again.id, again.outcome) == (first.id, "duplicate"), "held an hour after done"

    debounced = await notify.options(unique_key="u2", delay=60).enqueue("x")
    replaced = await notify.options(unique_key="u2", on_conflict="replace", delay=0).enqueue("y")
    assert (replaced.id, replaced.outcome) == (debounced.id, "replaced")
    assert await replaced.wait(10) == "y"


async def test_retry_on_sends_other_errors_straight_to_dead(app: fnb.App) -> None:
    attempts: dict[str, int] = {}

    @app.job(max_attempts=5, retry_on=(TimeoutError,), backoff=lambda attempt: 0.0)
    async def call(ctx: fnb.JobCtx, error: str) -> str:
        attempts[error] = ctx.attempt
        if ctx.attempt < 3:
            raise TimeoutError("slow") if error == "timeout" else KeyError("missing")
        return "ok"

    await app.start()
    assert await (await call.enqueue("timeout")).wait(10) == "ok"
    ref = await call.enqueue("key")
    with pytest.raises(fnb.JobDead):
        await ref.wait(10)
    assert attempts == {"timeout": 3, "key": 1}
    job = await app.job(ref.id)
    assert job.attempts == 1 and "KeyError" in job.last_error


async def test_a_kinds_backoff_overrides_the_queue_curve(app: fnb.App) -> None:
    seen: list[int] = []

    def wait(attempt: int) -> float:
        seen.append(attempt)
        return 3600.0 if attempt == 2 else 0.0

    @app.job(max_attempts=5, backoff=wait)
    async def flaky(ctx: fnb.JobCtx) -> None:
        raise RuntimeError(f"attempt {ctx.attempt}")

    await app.ensure_queue("default", base_seconds=100, max_seconds=100, jitter=False)
    await app.start()
    ref = await flaky.enqueue()

    async def parked() -> fnb.JobRecord | None:
        job = await app.job(ref.id)
        return job if job.attempts == 2 and job.status == "failed" else None

    job = await eventually(parked)
    assert seen == [1, 2]
    wait_s = job.scheduled_at.timestamp() - job.finished_at.timestamp()
    assert 3590 < wait_s < 3610, "the kind's backoff, not the queue's 100 s"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency_key": "c", "key_limit": 0}, "key_limit"),
        ({"concurrency_key": "c"}, "key_limit"),
        ({"concurrency_key": 5, "key_limit": 1}, "concurrency_key"),
        ({"retry_on": ("TimeoutError",)}, "retry_on"),
        ({"backoff": 5}, "backoff"),
    ],
)
async def test_bad_kind_policies_register_nothing(
    app: fnb.App, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises((ValueError, TypeError), match=message):

        @app.job(kind="bad", **kwargs)  # type: ignore[arg-type]
        async def bad(ctx: fnb.JobCtx) -> None: ...

    assert app.handlers.get("bad") is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"unique_key": "k", "unique_for": -1}, "unique_for"),
        ({"unique_key": "k", "on_conflict": "merge"}, "on_conflict"),
        ({"expires_in": -5}, "expires_in"),
    ],
)
async def test_bad_flow_options_store_nothing(
    app: fnb.App, options: dict[str, object], message: str
) -> None:
    @app.job
    async def work(ctx: fnb.JobCtx) -> None: ...

    with pytest.raises(ValueError, match=message):
        await work.options(**options).enqueue()  # type: ignore[arg-type]
    assert await app.jobs() == []


def test_each_kinds_policy_is_described_for_the_dashboard(tmp_path: object) -> None:
    from forge_nb.dashboard.pages.processes import KIND_COLUMNS
    from forge_nb.runtime.flow import kind_policies

    app = fnb.App(f"sqlite:///{tmp_path}/x.db")

    def backoff_by_attempt(attempt: int) -> float:
        return 2.0**attempt

    @app.job(kind="charge", concurrency_key="customer", key_limit=1, retry_on=(TimeoutError,))
    async def charge(ctx: fnb.JobCtx, customer: str) -> None: ...

    @app.job(kind="sync", backoff=backoff_by_attempt, concurrency=2)
    def sync(ctx: fnb.JobCtx) -> None: ...

    @app.job(kind="plain")
    async def plain(ctx: fnb.JobCtx) -> None: ...

    rows = {row["kind"]: row for row in kind_policies(app.handlers)}
    assert set(rows) == {"charge", "sync", "plain"}
    assert rows["charge"]["policy"] == "1 per customer; retry on TimeoutError"
    assert rows["sync"]["policy"] == "backoff backoff_by_attempt"
    assert rows["sync"]["per process"] == 2 and rows["plain"]["policy"] == ""
    assert all(set(row) == set(KIND_COLUMNS) for row in rows.values())


async def test_a_process_holds_no_more_global_slots_than_its_workers(app: fnb.App) -> None:
    @app.job
    async def work(ctx: fnb.JobCtx) -> None: ...

    await app.ensure_queue("default", workers=1, global_limit=3)
    handle = await app.start()
    storage = await app.storage()
    assert await storage.held_queue_slots("default", handle.host_id, 3) == (1, 1)
    await app.set_queue_config("default", workers=2)

    async def two() -> bool:
        return await storage.held_queue_slots("default", handle.host_id, 3) == (2, 2)

    await eventually(two)
    await app.set_queue_config("default", global_limit=0)

    async def none() -> bool:
        return await storage.held_queue_slots("default", handle.host_id, 3) == (0, 0)

    await eventually(none)
    assert handle.pools["default"].global_cap is None


async def test_flow_options_keep_tags_and_propagated_context(app: fnb.App) -> None:
    # A job with flow options takes its own enqueue path: its tags and context still land.
    import contextvars

    tenant: contextvars.ContextVar[str] = contextvars.ContextVar("flow_tenant", default="-")
    app.propagate(tenant)
    seen: list[str] = []

    @app.job
    async def report(ctx: fnb.JobCtx, n: int) -> None:
        seen.append(tenant.get())

    token = tenant.set("acme")
    try:
        ref = await report.options(tags=["etl"], expires_in=600, unique_key="r1").enqueue(1)
    finally:
        tenant.reset(token)
    assert [j.id for j in await app.jobs(tag="etl")] == [ref.id]
    await app.start()
    await ref.wait(10)
    assert seen == ["acme"]
