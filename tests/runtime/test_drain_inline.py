"""Test helpers: ``await app.drain()`` and ``App(inline=True)`` (SPEC §9.4), both backends."""

from __future__ import annotations

import asyncio

import pytest

import forge_nb as fnb


async def test_drain_runs_every_ready_job_and_counts_outcomes(db_url: str) -> None:
    async with fnb.App(db_url, replace=False) as app:
        seen: list[int] = []

        @app.job(kind="ok")
        async def ok(ctx: fnb.JobCtx, n: int) -> int:
            seen.append(n)
            if n == 0:
                await ctx.enqueue(ok, 100)  # ready now: drained too
            return n

        @app.job(kind="flaky", max_attempts=2)
        def flaky(ctx: fnb.JobCtx) -> None:  # a thread job
            raise RuntimeError("boom")

        @app.job(kind="doomed", max_attempts=1)
        async def doomed(ctx: fnb.JobCtx) -> None:
            raise fnb.Dead("no")

        refs = await ok.enqueue_many([(n,) for n in range(5)])
        later = await ok.options(delay=3600).enqueue(7)
        flaky_ref = await flaky.enqueue()
        dead_ref = await doomed.enqueue()
        counts = await app.drain()
        assert counts == {"done": 6, "failed": 1, "dead": 1, "throttled": 0, "cancelled": 0}
        assert sorted(seen) == [0, 1, 2, 3, 4, 100]
        assert [await r.status() for r in refs] == ["done"] * 5
        assert await r_result(refs[3]) == 3
        assert await later.status() == "pending"  # not ready now
        assert await flaky_ref.status() == "failed"  # its retry waits for its backoff
        record = await flaky_ref.record()
        assert record.last_error is not None and "boom" in record.last_error
        assert await dead_ref.status() == "dead"
        assert await app.drain() == {
            "done": 0,
            "failed": 0,
            "dead": 0,
            "throttled": 0,
            "cancelled": 0,
        }


async def r_result(ref: fnb.JobRef) -> object:
    return (await ref.record()).result


async def test_drain_takes_only_the_queues_named(db_url: str) -> None:
    async with fnb.App(db_url, replace=False) as app:

        @app.job(kind="a", queue="qa")
        async def a(ctx: fnb.JobCtx) -> str:
            return "a"

        @app.job(kind="b", queue="qb")
        async def b(ctx: fnb.JobCtx) -> str:
            return "b"

        ra, rb = await a.enqueue(), await b.enqueue()
        assert (await app.drain(queues=["qa"]))["done"] == 1
        assert await ra.status() == "done" and await rb.status() == "pending"
        assert (await app.drain("qb"))["done"] == 1
        assert await rb.status() == "done"


async def test_drain_timeout_gives_running_jobs_back(db_url: str) -> None:
    async with fnb.App(db_url, replace=False) as app:

        @app.job(kind="slow")
        async def slow(ctx: fnb.JobCtx) -> None:
            await asyncio.sleep(60)

        ref = await slow.enqueue()
        with pytest.raises(TimeoutError, match="drain did not finish within 0.3 s"):
            await app.drain(timeout=0.3)
        record = await ref.record()
        assert record.status == "pending" and record.attempts == 0  # attempt refunded
        with pytest.raises(ValueError, match="timeout"):
            await app.drain(timeout=0)


async def test_inline_runs_each_job_inside_its_enqueue(db_url: str) -> None:
    async with fnb.App(db_url, inline=True, replace=False) as app:

        @app.job(kind="square")
        def square(ctx: fnb.JobCtx, n: int) -> int:  # a thread job
            return n * n

        @app.job(kind="fan")
        async def fan(ctx: fnb.JobCtx, n: int) -> list[str]:
            refs = await ctx.enqueue_many(
                [fnb.EnqueueRequest("square", {"n": i}) for i in range(n)]
            )
            # inline: the children finished inside that enqueue call
            return [await r.status() for r in refs]

        @app.job(kind="fails", max_attempts=3)
        async def fails(ctx: fnb.JobCtx) -> None:
            raise ValueError("bad")

        ref = await square.options(delay=3600).enqueue(4)  # inline ignores delays
        record = await ref.record()
        assert record.status == "done" and record.result == 16
        assert await ref.wait() == 16
        parent = await fan.enqueue(3)
        assert (await parent.record()).result == ["done", "done", "done"]
        failed = await fails.enqueue()
        assert (await failed.record()).status == "failed"  # one attempt inline; retry later
        assert app.handle is None  # no workers were started
