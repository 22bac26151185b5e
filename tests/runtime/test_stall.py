"""The blocked-loop warning names what really blocked the loop, never an innocent sync job."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator

import pytest

import forge_nb as fnb
from forge_nb.runtime.stall import RunningJobInfo, StallSample, describe

FAST = {"heartbeat_interval": 0.2, "poll_interval": 0.1, "tick_interval": 0.1}


@pytest.fixture
async def app(sqlite_url: str) -> AsyncIterator[fnb.App]:
    application = fnb.App(sqlite_url, **FAST)
    try:
        yield application
    finally:
        await application.close(timeout=2)


def blocked_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "event loop blocked" in r.getMessage()]


async def test_blocking_code_outside_jobs_is_named_not_the_sync_job_running(
    app: fnb.App, caplog: pytest.LogCaptureFixture
) -> None:
    gate = threading.Event()

    @app.job(kind="crunch")
    def crunch(ctx: fnb.JobCtx) -> str:  # a plain def: runs in a thread, blocks nothing
        gate.wait(30)
        return "ok"

    await app.start()
    ref = await crunch.enqueue()
    while await ref.status() != "running":
        await asyncio.sleep(0.02)
    with caplog.at_level("WARNING", logger="forge_nb.runtime"):
        await asyncio.sleep(0.2)
        time.sleep(0.8)  # the "cell" blocks the loop while the sync job runs
        await asyncio.sleep(0.3)
    gate.set()
    assert await ref.wait(10) == "ok"
    [warning] = blocked_warnings(caplog)
    assert "test_stall.py:" in warning and "(`time.sleep(0.8)" in warning, warning
    assert "crunch" not in warning and "plain def" not in warning, warning


async def test_an_async_handler_that_blocks_is_named_with_its_job(
    app: fnb.App, caplog: pytest.LogCaptureFixture
) -> None:
    @app.job(kind="sleepy")
    async def sleepy(ctx: fnb.JobCtx) -> None:
        time.sleep(0.8)  # a blocking call in an async def

    await app.start()
    with caplog.at_level("WARNING", logger="forge_nb.runtime"):
        ref = await sleepy.enqueue()
        await ref.wait(10)
        await asyncio.sleep(0.3)
    # Exactly one warning names the job (a loaded machine may log other, unrelated stalls).
    [warning] = [w for w in blocked_warnings(caplog) if ref.id in w]
    assert f"by job 'sleepy' ({ref.id}), an async handler, at " in warning, warning
    assert "(`time.sleep(0.8)" in warning and "plain def" in warning, warning


async def test_a_loop_blocked_while_its_heartbeat_is_written_keeps_its_own_job(
    app: fnb.App, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The loop blocks past stale_after while a heartbeat is being written: the same beat's
    reaper must not find this very process stale and run its job a second time."""
    go = asyncio.Event()
    runs: list[int] = []

    @app.job(kind="stuck", max_attempts=3)
    async def stuck(ctx: fnb.JobCtx) -> None:
        runs.append(ctx.attempt)
        await go.wait()
        time.sleep(1.2)  # twice stale_after (0.6 s), blocking the loop
        await asyncio.sleep(0.5)  # still running when the delayed heartbeat returns

    await app.start()
    ref = await stuck.enqueue()
    while await ref.status() != "running":
        await asyncio.sleep(0.02)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # the next heartbeat's write waits for this lock
    await asyncio.sleep(0.5)
    threading.Timer(0.3, holder.rollback).start()  # let it land while the loop is blocked
    with caplog.at_level("WARNING", logger="forge_nb.runtime"):
        go.set()
        await ref.wait(10)
        await asyncio.sleep(0.5)
    holder.close()
    assert runs == [1]
    assert (await ref.record()).attempts == 1
    assert not [r for r in caplog.records if "dead workers" in r.getMessage()]


def test_the_message_for_each_cause() -> None:
    sync_job = RunningJobInfo("crunch", "01J", None, in_thread=True)
    waiting = StallSample(None, ("/x/selectors.py", 1, "select"), True, None, None, ["crunch"])
    assert describe(waiting, 1.24) == (
        "event loop blocked for 1.2 s: its thread was waiting for the GIL; sync jobs running "
        "in threads (crunch) held it: long pure-Python work, or C code that keeps the GIL, in "
        "a thread slows the loop too"
    )
    starved = StallSample(None, None, True, None, None, [sync_job.kind], watch_starved=True)
    assert "the GIL was held throughout" in describe(starved, 2.0)
    assert "sync jobs running in threads: crunch" in describe(starved, 2.0)
    assert "the GIL was held throughout" in describe(None, 0.6)
    elsewhere = StallSample(("/srv/app/util.py", 9, "load"), None, False, "poller", None)
    assert describe(elsewhere, 0.7) == (
        "event loop blocked for 0.7 s by code running on the loop (task 'poller') at "
        "/srv/app/util.py:9 in load: await instead of blocking"
    )
