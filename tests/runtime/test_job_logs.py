"""Per-job logs: print, stdout/stderr and logging of a run, per attempt, from the loop, thread
and process executors, concurrent jobs kept apart, bounded, redacted, swept with the job."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading

import pytest

import forge_nb as fnb
from forge_nb.runtime import joblogs

from . import ctxjobs

FAST = {"heartbeat_interval": 0.2, "poll_interval": 0.05, "tick_interval": 0.1}


async def test_each_executor_captures_its_own_output(db_url: str) -> None:
    async with fnb.App(db_url, replace=False, process_workers=1) as app:
        barrier = threading.Barrier(4)

        @app.job(kind="loop_job")
        async def loop_job(ctx: fnb.JobCtx, n: int) -> None:
            for i in range(3):
                print(f"loop {n} line {i}")
                logging.getLogger("jobs").warning("loop %d warns %d", n, i)
                await asyncio.sleep(0)  # interleave with the other loop jobs

        @app.job(kind="thread_job")
        def thread_job(ctx: fnb.JobCtx, n: int) -> None:
            barrier.wait(5)  # all four run at once
            for i in range(3):
                print(f"thread {n} line {i}")
                sys.stderr.write(f"thread {n} err {i}\n")

        @app.job(kind="quiet")
        async def quiet(ctx: fnb.JobCtx) -> None:
            return None

        app.job(kind="chatty", executor="process")(ctxjobs.chatty)
        loops = await loop_job.enqueue_many([(n,) for n in range(4)])
        threads = await thread_job.enqueue_many([(n,) for n in range(4)])
        chatty = await app.enqueue(fnb.EnqueueRequest("chatty", {"n": 7}))
        silent = await quiet.enqueue()
        assert (await app.drain())["done"] == 10
        for n, ref in enumerate(loops):
            [attempt] = await app.job_logs(ref)
            lines = attempt.text.splitlines()
            assert [line for line in lines if line.startswith("loop")] == [
                f"loop {n} line {i}" for i in range(3)
            ]
            assert sum(f"loop {n} warns" in line for line in lines) == 3
            assert all(f" {n} " in line for line in lines)  # nothing of another job
            assert attempt.attempt == 1 and attempt.dropped == 0
        for n, ref in enumerate(threads):
            [attempt] = await app.job_logs(ref.id)
            assert sorted(attempt.text.splitlines()) == sorted(
                [f"thread {n} line {i}" for i in range(3)]
                + [f"thread {n} err {i}" for i in range(3)]
            )
        [attempt] = await app.job_logs(chatty.id)
        assert "child print 7" in attempt.text and "child warning 7" in attempt.text
        assert await app.job_logs(silent.id) == []  # logged nothing: no row


async def test_logs_are_per_attempt_bounded_and_redacted(db_url: str) -> None:
    async with fnb.App(db_url, replace=False) as app:
        await app.ensure_queue("default", backoff_enabled=False)

        @app.job(kind="noisy", max_attempts=2, redact=["token"])
        async def noisy(ctx: fnb.JobCtx, token: str) -> None:
            print(f"attempt {ctx.attempt} uses {token}")
            if ctx.attempt == 1:
                for i in range(joblogs.MAX_LINES + 500):
                    print(f"line {i}")
                raise RuntimeError("again")

        ref = await noisy.enqueue("tok-secret-42")
        await app.drain()
        await app.drain()  # the retry (no backoff)
        first, second = await app.job_logs(ref)
        assert (first.attempt, second.attempt) == (1, 2)
        lines = first.text.splitlines()
        assert lines[0].startswith("… 501 earlier line(s) dropped")
        assert lines[1] == "line 500" and lines[-1] == f"line {joblogs.MAX_LINES + 499}"
        assert first.lines == joblogs.MAX_LINES + 501 and first.dropped == 501
        assert second.text == "attempt 2 uses [redacted]"
        assert "tok-secret-42" not in first.text + second.text
        assert await app.delete(ref.id)
        assert await app.job_logs(ref) == []  # swept with the job (as retention purges do)


def test_the_bytes_bound_and_partial_lines() -> None:
    log = joblogs.AttemptLog(None, "1", 1)
    log.write("")  # an empty write is no output: nothing to store
    assert not log.unsaved
    log.write("a")
    log.write("b\nc")
    assert log.snapshot(0.0).text == "ab\nc"
    for _ in range(100):
        log.write("x" * 1000 + "\n")
    snap = log.snapshot(0.0)
    assert len(snap.text.encode()) <= joblogs.MAX_BYTES + 200 and snap.dropped > 30
    assert snap.text.startswith("… ")


def test_a_chatty_attempt_holds_bounded_text_between_snapshots() -> None:
    """Writes only append; enough of them are cut into lines and trimmed at once, not at
    the next flush (a job may print a lot within one)."""
    log = joblogs.AttemptLog(None, "1", 1)
    for i in range(20_000):
        log.write(f"line {i:05d} " + "x" * 50 + "\n")
        assert len(log._chunks) <= joblogs.COMPACT_WRITES
        assert len(log.kept) <= joblogs.MAX_LINES and log.bytes <= joblogs.MAX_BYTES
    snap = log.snapshot(0.0)
    assert snap.lines == 20_000 and snap.text.endswith("line 19999 " + "x" * 50)


async def test_a_running_job_is_flushed_live(db_url: str) -> None:
    app = fnb.App(db_url, replace=False, **FAST)
    release = asyncio.Event()
    try:

        @app.job(kind="slow")
        async def slow(ctx: fnb.JobCtx) -> None:
            print("started")
            await release.wait()
            print("finished")

        await app.start()
        ref = await slow.enqueue()
        for _ in range(100):  # the line is stored within FLUSH_S while the job runs
            logs = await app.job_logs(ref)
            if logs and logs[0].text == "started":
                break
            await asyncio.sleep(0.1)
        assert (await ref.status()) == "running" and logs[0].text == "started"
        release.set()
        await ref.wait(timeout=10)
        [log] = await app.job_logs(ref)  # the outcome's copy replaced the live one, at once
        assert (log.attempt, log.text, log.lines) == (1, "started\nfinished", 2)
    finally:
        await app.close(timeout=2)


async def test_a_finished_jobs_log_is_there_as_soon_as_its_outcome(db_url: str) -> None:
    """The ended attempt's lines are written with its outcome, not by a later flush."""
    app = fnb.App(db_url, replace=False, **FAST)
    try:

        @app.job(kind="says", max_attempts=1)
        def says(ctx: fnb.JobCtx, n: int) -> None:
            print(f"job {n} says hello")
            if n % 2:
                raise ValueError(f"job {n} fails")

        await app.start()
        for n in range(12):
            ref = await says.enqueue(n)
            if n % 2:
                with pytest.raises(fnb.JobDead):
                    await ref.wait(timeout=10)
            else:
                await ref.wait(timeout=10)
            assert [g.text for g in await app.job_logs(ref)] == [f"job {n} says hello"]
    finally:
        await app.close(timeout=2)


async def test_the_cli_prints_and_follows_logs(db_url: str) -> None:
    import os
    import subprocess

    async with fnb.App(db_url, replace=False) as app:

        @app.job(kind="cli_talk")
        async def cli_talk(ctx: fnb.JobCtx) -> None:
            print("first")
            print("second")

        ref = await cli_talk.enqueue()
        await app.drain()
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for extra in ([], ["--follow"]):  # the job is done: --follow prints and returns
        out = subprocess.run(
            [sys.executable, "-m", "forge_nb.cli", "logs", ref.id, "--db", db_url, *extra],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=60,
        ).stdout
        assert out.splitlines() == ["--- attempt 1 ---", "first", "second"]
