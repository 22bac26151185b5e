"""Workflows through the App, on both backends: ``depends_on``, ``ctx.dependency_results``,
the leader's cascade, retry, and gather (SPEC §9.2)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import forge_nb as fnb

from .test_app import FAST, eventually


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[fnb.App]:
    application = fnb.App(db_url, **FAST)
    try:
        yield application
    finally:
        await application.close(timeout=2)


async def test_fetch_many_then_combine_once(app: fnb.App) -> None:
    combined: list[dict[str, int]] = []

    @app.job
    async def fetch(ctx: fnb.JobCtx, n: int) -> int:
        return n * n

    @app.job
    def combine(ctx: fnb.JobCtx) -> int:  # a thread job reads the results too
        combined.append(dict(ctx.dependency_results))
        return sum(ctx.dependency_results.values())

    parts = [await fetch.enqueue(n) for n in range(5)]
    total = await combine.options(depends_on=parts).enqueue()
    assert await total.status() == "waiting"
    assert [j.id for j in await app.dependencies(total)] == [p.id for p in parts]
    assert [j.id for j in await app.dependents(parts[0].id)] == [total.id]
    await app.start()
    assert await total.wait(20) == 0 + 1 + 4 + 9 + 16
    assert combined == [{p.id: n * n for n, p in enumerate(parts)}], "read once, in one run"


async def test_an_enqueue_request_takes_ids_and_a_chain_runs_in_order(app: fnb.App) -> None:
    order: list[str] = []

    @app.job(kind="step")
    async def step(ctx: fnb.JobCtx, name: str) -> str:
        order.append(name)
        return name

    a = await step.enqueue("a")
    [b] = await app.enqueue_many([fnb.EnqueueRequest("step", {"name": "b"}, depends_on=[a.id])])
    c = await app.enqueue(fnb.EnqueueRequest("step", {"name": "c"}, depends_on=[b]))
    await app.start()
    assert await c.wait(20) == "c"
    assert order == ["a", "b", "c"]


async def test_a_dead_dependency_ends_its_dependents_and_a_retry_revives_them(
    app: fnb.App,
) -> None:
    ran: list[str] = []

    @app.job(max_attempts=1)
    async def flaky(ctx: fnb.JobCtx) -> None:
        if ctx.attempt == 1 and not ran:
            ran.append("failed once")
            raise fnb.Dead("not this time")

    @app.job
    async def after(ctx: fnb.JobCtx) -> str:
        ran.append("after")
        return "ok"

    parent = await flaky.enqueue()
    child = await after.options(depends_on=[parent]).enqueue()
    grandchild = await after.options(depends_on=[child]).enqueue()
    await app.start()
    with pytest.raises(fnb.JobDead, match=f"dependency {parent.id} dead"):
        await child.wait(20)
    with pytest.raises(fnb.JobDead, match=f"dependency {child.id} dead"):
        await grandchild.wait(20)
    with pytest.raises(fnb.DeadDependency):
        await app.retry(child.id)
    await app.retry(parent.id)
    assert await fnb.gather([child, grandchild], timeout=20) == ["ok", "ok"]
    assert ran == ["failed once", "after", "after"]


async def test_unknown_dependencies_are_refused_and_nothing_is_written(app: fnb.App) -> None:
    @app.job
    async def work(ctx: fnb.JobCtx) -> None: ...

    with pytest.raises(ValueError, match="unknown dependency id 987654"):
        await work.options(depends_on=["987654"]).enqueue()
    with pytest.raises(ValueError, match="list of JobRefs or job ids"):
        await work.options(depends_on="12").enqueue()
    assert await app.jobs() == []


async def test_gather_returns_results_in_order_and_names_a_dead_job(app: fnb.App) -> None:
    @app.job(max_attempts=1)
    async def square(ctx: fnb.JobCtx, n: int) -> int:
        if n == 3:
            raise fnb.Dead("three")
        return n * n

    refs = await square.enqueue_many([(n,) for n in range(5)])
    await app.start()
    with pytest.raises(fnb.JobDead, match=f"job {refs[3].id}"):
        await refs.gather(timeout=20)
    assert await fnb.gather(refs[:3], timeout=20) == [0, 1, 4]


async def test_a_process_job_reads_its_dependencies_results(db_url: str) -> None:
    async with fnb.App(db_url, process_workers=1, **FAST) as app:
        app.job(_double_input, kind="double", executor="process")

        @app.job
        async def seed(ctx: fnb.JobCtx) -> int:
            return 21

        parent = await seed.enqueue()
        child = await app.enqueue(
            fnb.EnqueueRequest("double", {"parent": parent.id}, depends_on=[parent])
        )
        await app.start()
        assert await child.wait(30) == 42


def _double_input(ctx: fnb.JobCtx, parent: str) -> int:
    return 2 * ctx.dependency_results[parent]


async def test_counts_show_waiting_jobs(app: fnb.App) -> None:
    @app.job
    async def work(ctx: fnb.JobCtx) -> None: ...

    first = await work.enqueue()
    await work.options(depends_on=[first]).enqueue()
    counts = await app.counts()
    assert counts[next(iter(counts))]["waiting"] == 1
    await app.start()
    await eventually(
        lambda: _all_done(app),
        timeout=20,
    )


async def _all_done(app: fnb.App) -> bool:
    counts = await app.counts()
    return all(c["done"] == 2 and c["waiting"] == 0 for c in counts.values())
