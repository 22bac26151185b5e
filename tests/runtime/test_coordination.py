"""Leases, cron, rate limits, retention, metrics and samples — on both backends."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime

import pytest

import forge_nb as fnb
from forge_nb.runtime.cron import check_cron, fire_due, fire_key, latest_fire, next_fire
from forge_nb.runtime.leader import LEADER_LEASE

from .test_app import FAST, eventually


def test_cron_expressions_are_checked_and_quoted() -> None:
    assert check_cron("*/5 * * * *") == "*/5 * * * *"
    assert check_cron("*/10 * * * * *") == "*/10 * * * * *"
    for bad in ("not a cron", "* * *", "61 * * * *", "* * * * * * * *", ""):
        with pytest.raises(ValueError, match="invalid cron expression") as info:
            check_cron(bad)
        assert repr(bad) in str(info.value)


def test_six_fields_put_seconds_first_and_time_zones_apply() -> None:
    start = datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC).timestamp()
    assert next_fire("*/10 * * * * *", "UTC", start) == start + 5
    assert latest_fire("*/10 * * * * *", "UTC", start) == start - 5
    nine_paris = next_fire("0 9 * * *", "Europe/Paris", start)
    assert datetime.fromtimestamp(nine_paris, UTC).hour == 8  # 09:00 CET is 08:00 UTC
    assert fire_key("nightly", start) == "cron:nightly:2026-01-01T00:00:05+00:00"


def test_the_latest_fire_is_never_in_the_future() -> None:
    """Half a millisecond before a tick, that tick is not due yet (it once was, and a
    leader taking over at that instant fired the tick twice: now and again on time)."""
    tick = datetime(2026, 1, 1, 0, 0, 11, tzinfo=UTC).timestamp()
    assert latest_fire("* * * * * *", "UTC", tick - 0.0005) == tick - 1
    assert latest_fire("* * * * * *", "UTC", tick) == tick
    assert next_fire("* * * * * *", "UTC", tick - 0.0005) == tick


async def test_a_leader_stepping_just_before_a_tick_fires_each_tick_once(db_url: str) -> None:
    async with fnb.App(db_url) as app:
        await app.ensure_schedule("beat", "* * * * * *", "tick")
        storage = await app.storage()
        tick = float(int(time.time()) + 1)
        await storage.record_fire("beat", tick - 5, tick - 3)  # due, a few ticks missed
        for now in (tick - 0.0005, tick + 0.05, tick + 0.5, tick + 1.05):
            await fire_due(storage, await storage.schedules(), now)
        jobs = await app.jobs(kind="tick", limit=100)
    assert sorted(j.unique_key for j in jobs) == [
        fire_key("beat", tick - 1),
        fire_key("beat", tick),
        fire_key("beat", tick + 1),
    ]


async def test_schedules_are_stored_toggled_and_run_now(db_url: str) -> None:
    async with fnb.App(db_url) as app:
        with pytest.raises(ValueError, match="'every minute'"):
            await app.ensure_schedule("bad", "every minute", "k")
        with pytest.raises(ValueError, match="time zone"):
            await app.ensure_schedule("bad", "* * * * *", "k", tz="Mars/Olympus")
        made = await app.ensure_schedule("report", "0 6 * * *", "report.build", payload={"x": 1})
        again = await app.ensure_schedule("report", "0 6 * * *", "report.build", payload={"x": 1})
        assert [s.name for s in await app.schedules()] == ["report"]
        assert made.next_fire_at == again.next_fire_at and made.next_fire_at > time.time()
        assert made.queue == "default" and made.enabled
        off = await app.set_schedule_enabled("report", False)
        assert off.enabled is False
        ref = await app.run_schedule_now("report")
        job = await app.job(ref.id)
        assert job.kind == "report.build" and job.payload == {"x": 1}
        with pytest.raises(LookupError):
            await app.set_schedule_enabled("nope", True)


async def test_per_second_schedule_fires_each_tick_once(db_url: str) -> None:
    async with fnb.App(db_url, lease_ttl=2, **FAST) as app:
        ran = []

        @app.job(kind="tick")
        async def tick(ctx: fnb.JobCtx) -> None:
            ran.append(ctx.job_id)

        await app.ensure_schedule("every-second", "* * * * * *", "tick")
        await app.start()
        await asyncio.sleep(3.5)
        await app.handle.shutdown(2)
        jobs = await app.jobs(kind="tick", limit=100)
    keys = sorted(j.unique_key for j in jobs)
    assert len(keys) == len(set(keys)) >= 2
    seconds = sorted(int(datetime.fromisoformat(k.split(":", 2)[2]).timestamp()) for k in keys)
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds)))  # no gap, no double


async def test_missed_fires_coalesce_into_one(db_url: str) -> None:
    async with fnb.App(db_url, **FAST) as app:
        await app.ensure_schedule("often", "* * * * * *", "tick")
        storage = await app.storage()
        long_ago = time.time() - 30  # 30 ticks missed while nobody led
        await storage.record_fire("often", long_ago - 1, long_ago)
        await app.start()
        await eventually(lambda: _count_kind(app, "tick", 1))
        await app.handle.shutdown(1)
        jobs = await app.jobs(kind="tick", limit=100)
    fired = sorted(datetime.fromisoformat(j.unique_key.split(":", 2)[2]) for j in jobs)
    assert fired[0].timestamp() > long_ago + 25  # the catch-up fire is for the latest tick


async def _count_kind(app: fnb.App, kind: str, n: int) -> bool:
    return len(await app.jobs(kind=kind, limit=100)) >= n


async def test_one_leader_and_handover_on_shutdown(db_url: str) -> None:
    first = fnb.App(db_url, lease_ttl=1.5, **FAST)
    second = fnb.App(db_url, lease_ttl=1.5, **FAST)
    try:
        await first.start()
        await eventually(lambda: _leader_is(first, first.host_id))
        await second.start()
        await asyncio.sleep(1.0)
        assert first.handle.leader.is_leader and not second.handle.leader.is_leader
        await first.close(timeout=1)
        await eventually(lambda: _leader_is(second, second.host_id), timeout=5)
    finally:
        await first.close(timeout=1)
        await second.close(timeout=1)


async def _leader_is(app: fnb.App, host_id: str) -> bool:
    leases = {lease.name: lease.holder for lease in await app.leases()}
    return leases.get(LEADER_LEASE) == host_id


async def test_rate_limits_wait_drain_and_refuse_unknown_scopes(db_url: str) -> None:
    async with fnb.App(db_url) as app, fnb.App(db_url) as other:
        await app.ensure_rate_limit("api", capacity=3, refill_per_second=20)
        limiter = await app.rate_limiter()
        start = time.monotonic()
        for _ in range(3):
            assert await limiter.acquire("api") is True
        assert await limiter.acquire("api", wait=False) is False
        assert await limiter.acquire("api") is True  # waited ~50 ms for a refill
        assert time.monotonic() - start < 5
        with pytest.raises(fnb.UnknownRateLimit):
            await limiter.acquire("nope")
        with pytest.raises(ValueError):
            await app.ensure_rate_limit("bad", capacity=0, refill_per_second=1)

        # A 429 seen by one process holds the bucket empty for everyone.
        await (await other.rate_limiter()).drain("api", retry_after=0.6)
        drained_at = time.monotonic()
        assert await limiter.acquire("api", wait=False) is False
        assert await limiter.acquire("api") is True
        assert time.monotonic() - drained_at >= 0.5


async def test_handlers_use_ctx_rate_limit(db_url: str) -> None:
    async with fnb.App(db_url, **FAST) as app:
        stamps: list[float] = []

        @app.job
        async def call_api(ctx: fnb.JobCtx) -> None:
            await ctx.rate_limit.acquire("slack")
            stamps.append(time.monotonic())

        await app.ensure_rate_limit("slack", capacity=2, refill_per_second=10)
        await app.start()
        refs = await call_api.enqueue_many([() for _ in range(6)])
        await asyncio.gather(*(r.wait(20) for r in refs))
    stamps.sort()
    assert stamps[-1] - stamps[0] >= 0.3  # 4 of the 6 waited for refills at 10/s


async def test_retention_removes_only_rows_past_the_window(db_url: str) -> None:
    async with fnb.App(db_url, **FAST) as app:

        @app.job(max_attempts=1)
        async def outcome(ctx: fnb.JobCtx, fail: bool) -> str:
            if fail:
                raise RuntimeError("no")
            return "ok"

        await app.ensure_queue("default", retain_done_seconds=1.0, retain_dead_seconds=3600)
        await app.start()
        old = await outcome.enqueue_many([(False,), (True,)])
        for ref in old:
            with pytest.raises(fnb.JobDead) if ref is old[1] else contextlib.nullcontext():
                await ref.wait(10)
        await asyncio.sleep(1.2)
        fresh = await outcome.enqueue(False)
        await fresh.wait(10)
        pending = await outcome.options(delay=3600).enqueue(False)
        removed = await app.sweep_retention(batch=1)
        remaining = {j.id for j in await app.jobs(limit=100)}
    assert removed == 1
    assert remaining == {old[1].id, fresh.id, pending.id}


async def test_metrics_count_every_outcome_with_latency_percentiles(db_url: str) -> None:
    async with fnb.App(db_url, **FAST) as app:

        @app.job(max_attempts=2)
        async def work(ctx: fnb.JobCtx, fail: bool) -> None:
            if fail:
                raise RuntimeError("fail")
            await asyncio.sleep(0.01)

        await app.ensure_queue("default", backoff_enabled=False)
        await app.start()
        refs = await work.enqueue_many([(i % 5 == 0,) for i in range(50)])
        for ref in refs:
            try:
                await ref.wait(20)
            except fnb.JobDead:
                pass
        await app.handle.flush()
        points = await app.metrics(queue="default")
        totals = {k: sum(p[k] for p in points) for k in ("enqueued", "completed", "dead", "failed")}
        frame = await app.metrics_frame()
        latency = await app.latency()
    assert totals == {"enqueued": 50, "completed": 40, "dead": 10, "failed": 10}
    assert 0.01 <= latency["processing_p50"] < 5 and latency["e2e_p99"] >= latency["e2e_p50"]
    assert {"minute", "queue", "completed", "processing_p95", "e2e_p99"} <= set(frame.columns)
    assert frame["completed"].sum() == 40


async def test_resource_and_db_health_samples(db_url: str) -> None:
    async with fnb.App(db_url, **FAST) as app:
        await app.ensure_queue("default")
        await app.start()
        await app.enqueue(fnb.EnqueueRequest(kind="forge_nb.echo", payload={"a": 1}))
        await asyncio.sleep(0.5)
        resources = await eventually(app.resources)
        health = await eventually(app.db_health)
    sample = resources[-1]
    assert sample["host_id"] == app.host_id and sample["rss_bytes"] > 10_000_000
    assert {"cpu_percent", "read_bytes", "write_bytes", "disk_free_bytes", "hostname"} <= set(
        sample
    )
    db = health[-1]
    assert db["ops"] > 0 and db["write_p50_ms"] is not None and db["pool_size"] >= 1
    assert {"read_p99_ms", "pool_in_use", "pool_waiting"} <= set(db)
