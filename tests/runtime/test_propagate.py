"""``app.propagate(var)``: the value at enqueue is stored and set around the run, in the loop,
thread and process executors (both backends), and not leaked into the next job."""

from __future__ import annotations

import contextvars

import pytest

import forge_nb as fnb

from . import ctxjobs


async def test_values_at_enqueue_are_set_around_every_executor(db_url: str) -> None:
    async with fnb.App(db_url, replace=False, process_workers=1) as app:
        assert app.propagate(ctxjobs.TENANT) is ctxjobs.TENANT
        app.propagate(ctxjobs.REQUEST)

        @app.job(kind="in_loop")
        async def in_loop(ctx: fnb.JobCtx) -> dict[str, object]:
            return ctxjobs.read_tenant()

        @app.job(kind="in_thread")
        def in_thread(ctx: fnb.JobCtx) -> dict[str, object]:
            return ctxjobs.read_tenant()

        app.job(kind="in_process", executor="process")(ctxjobs.read_tenant)

        token = ctxjobs.TENANT.set("acme")
        ctxjobs.REQUEST.set({"id": 7})
        refs = [
            await in_loop.enqueue(),
            await in_thread.enqueue(),
            await app.enqueue(fnb.EnqueueRequest("in_process")),
        ]
        ctxjobs.TENANT.reset(token)
        other = await app.enqueue(fnb.EnqueueRequest("in_process"))  # tenant unset now
        plain = await in_thread.enqueue()
        assert ctxjobs.TENANT.get("unset") == "unset"
        assert (await app.drain())["done"] == 5
        expected = {"tenant": "acme", "request": {"id": 7}}
        for ref in refs:
            assert (await ref.record()).result == expected, ref.kind
        assert (await other.record()).result == {"tenant": "unset", "request": {"id": 7}}
        assert (await plain.record()).result == {"tenant": "unset", "request": {"id": 7}}
        assert await app.job_context(refs[0]) == {"tenant": "acme", "request": {"id": 7}}
        assert await app.job_context(other.id) == {"request": {"id": 7}}
        assert ctxjobs.TENANT.get("unset") == "unset"  # nothing leaked into the caller


async def test_propagate_refuses_bad_input(db_url: str) -> None:
    async with fnb.App(db_url, replace=False) as app:
        with pytest.raises(TypeError, match="ContextVar"):
            app.propagate("tenant")  # type: ignore[arg-type]
        app.propagate(ctxjobs.TENANT)
        with pytest.raises(ValueError, match="already propagated"):
            app.propagate(contextvars.ContextVar("tenant"))
        app.propagate(ctxjobs.TENANT)  # the same one again is fine

        @app.job(kind="k")
        async def k(ctx: fnb.JobCtx) -> None:
            return None

        token = ctxjobs.TENANT.set(object())  # type: ignore[arg-type]
        try:
            with pytest.raises(ValueError, match="context"):
                await k.enqueue()
        finally:
            ctxjobs.TENANT.reset(token)
        assert await app.jobs() == []  # nothing stored
