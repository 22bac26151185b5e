"""``JobCtx.for_testing()``: call a handler directly, in a cell or a test, without a worker."""

from __future__ import annotations

import asyncio

import pytest

import forge_nb as fnb


async def test_a_handler_runs_directly_and_its_progress_is_kept_on_the_ctx(
    sqlite_url: str,
) -> None:
    app = fnb.App(sqlite_url)

    @app.job(kind="score")
    async def score(ctx: fnb.JobCtx, n: int) -> int:
        await ctx.progress(0.5, "halfway")
        ctx.progress_sync(2.0)  # clamped, as a worker would
        return n * n

    ctx = fnb.JobCtx.for_testing()
    assert await score(ctx, 3) == 9
    assert ctx.progress_updates == [(0.5, "halfway"), (1.0, "")]
    assert ctx.last_progress == (1.0, "")
    assert ctx.attempt == 1 and ctx.kind == "test" and ctx.job_id.startswith("test-")
    with pytest.raises(ValueError, match="progress"):
        await ctx.progress(float("nan"))
    assert app.closed  # nothing touched the database


async def test_the_cancel_token_stops_a_handler_that_checks_it() -> None:
    async def crawl(ctx: fnb.JobCtx, pages: int) -> int:
        done = 0
        for _ in range(pages):
            if ctx.cancel.is_cancelled():
                break
            done += 1
            await asyncio.sleep(0)
            if done == 3:
                ctx.cancel.set()  # what app.cancel(id) does to a running job
        return done

    ctx = fnb.JobCtx.for_testing(kind="crawl", attempt=2)
    assert await crawl(ctx, 10) == 3 and ctx.cancel.is_cancelled() and ctx.attempt == 2


async def test_enqueue_needs_an_app_and_uses_the_one_given(sqlite_url: str) -> None:
    async with fnb.App(sqlite_url) as app:

        @app.job(kind="child")
        async def child(ctx: fnb.JobCtx, n: int) -> int:
            return n

        async def parent(ctx: fnb.JobCtx) -> str:
            ref = await ctx.enqueue(child, 7)
            return ref.id

        with pytest.raises(RuntimeError, match=r"for_testing\(app\)"):
            await parent(fnb.JobCtx.for_testing())
        job_id = await parent(fnb.JobCtx.for_testing(app))
        job = await app.job(job_id)
        assert job is not None and job.kind == "child" and job.payload == {"n": 7}
        refs = await fnb.JobCtx.for_testing(app).enqueue_many(
            [fnb.EnqueueRequest(kind="child", payload={"n": 1})]
        )
        assert len(refs) == 1


async def test_rate_limits_without_and_with_an_app(sqlite_url: str) -> None:
    free = fnb.JobCtx.for_testing()
    assert all([await free.rate_limit.acquire("slack") for _ in range(100)])
    await free.rate_limit.drain("slack", retry_after=30)
    assert free.rate_limit.drained == {"slack": 30.0}

    async with fnb.App(sqlite_url) as app:
        await app.ensure_rate_limit("slack", capacity=1, refill_per_second=0.001)
        ctx = fnb.JobCtx.for_testing(app)
        assert await ctx.rate_limit.acquire("slack", wait=False) is True
        assert await ctx.rate_limit.acquire("slack", wait=False) is False  # the real bucket


async def test_sync_handlers_run_in_a_thread_as_a_worker_runs_them(sqlite_url: str) -> None:
    async with fnb.App(sqlite_url) as app:

        @app.job(kind="follow")
        def follow(ctx: fnb.JobCtx, n: int) -> str:
            ctx.progress_sync(1.0, "done")
            return ctx.enqueue_sync("forge_nb.echo", n=n).id

        ctx = fnb.JobCtx.for_testing(app)
        job_id = await asyncio.to_thread(follow, ctx, 5)
        assert (await app.job(job_id)).payload == {"n": 5}
        assert ctx.progress_updates == [(1.0, "done")]
        # Called on the loop's own thread, waiting for the loop would hang: a clear error.
        with pytest.raises(RuntimeError, match="to_thread"):
            follow(fnb.JobCtx.for_testing(app), 1)


def test_outside_a_loop_progress_works_and_sync_enqueue_says_why_not() -> None:
    def summarise(ctx: fnb.JobCtx, n: int) -> float:
        ctx.progress_sync(0.25)
        return n / 2

    ctx = fnb.JobCtx.for_testing()
    assert summarise(ctx, 3) == 1.5 and ctx.progress_updates == [(0.25, "")]
    with pytest.raises(RuntimeError, match="running loop"):
        ctx.enqueue_sync("forge_nb.echo")
