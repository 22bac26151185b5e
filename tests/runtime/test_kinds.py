"""A process claims only the kinds it can run: real `forge-nb worker` processes, both backends.

Users hit the old behaviour in three ways: a bare worker (no ``--app``) claimed a notebook's
jobs and killed them all with "no handler for kind score"; a notebook `App` (which works
every queue) claimed and killed the jobs meant for ``--app`` workers; after a kernel restart
the cell not yet re-run had no handler, and its reclaimed jobs died at once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import forge_nb as fnb

from .conftest import Spawn, marks
from .test_app import eventually
from .test_processes import hosts_registered

pytestmark = pytest.mark.slow

FAST = {"heartbeat_interval": 0.2, "poll_interval": 0.1, "tick_interval": 0.1}


async def test_a_bare_worker_leaves_jobs_it_cannot_run_pending_until_an_app_runs_them(
    db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    async with fnb.App(db_url, **FAST) as notebook:
        await notebook.ensure_queue("default", workers=4)
        bare = spawn_worker(db_url, "--poll-interval", "0.05", app=None)
        await eventually(lambda: hosts_registered(notebook, 1), timeout=20)

        score = notebook.job(kind="score")(lambda ctx, n: n * 2)  # defined, not started yet
        refs = await score.enqueue_many([(i,) for i in range(20)])
        echo = await notebook.enqueue(fnb.EnqueueRequest(kind="forge_nb.echo", payload={"x": 1}))
        assert await echo.wait(10) == {"x": 1}, "the bare worker claims what it can run"
        await asyncio.sleep(1.0)  # twenty claims of the bare worker go by
        jobs = [await notebook.job(r.id) for r in refs]
        assert {(j.status, j.attempts, j.last_error) for j in jobs} == {("pending", 0, None)}
        assert {p.kinds for p in await notebook.processes()} == {("forge_nb.echo",)}
        [flag] = await notebook.stranded_kinds()
        assert (flag.queue, flag.kind, flag.jobs) == ("default", "score", 20)
        assert flag.describe() == (
            "20 pending jobs of kind `score` in queue `default`: no live worker runs it"
        )

        await notebook.start()  # an App with the handler: the jobs run there, once each
        assert [await r.wait(15) for r in refs] == [2 * i for i in range(20)]
        assert {(await notebook.job(r.id)).attempts for r in refs} == {1}
        assert await notebook.stranded_kinds() == []
        assert (await notebook.counts())["default"]["dead"] == 0
    bare.terminate()
    assert bare.wait(15) == 0
    log = (tmp_path / "worker-0.log").read_text()
    [warning] = [line for line in log.splitlines() if "no job kinds of its own" in line]
    assert "WARNING" in warning and notebook.safe_url in warning
    assert "nothing but forge-nb's built-ins (forge_nb.echo)" in warning
    assert "--app module:attr" in warning


async def test_an_app_that_works_every_queue_leaves_other_kinds_to_the_workers_that_run_them(
    db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    async with fnb.App(db_url, **FAST) as notebook:

        @notebook.job(kind="mine")
        async def mine(ctx: fnb.JobCtx, n: int) -> str:
            return "notebook"

        await notebook.ensure_queue("default", workers=8)
        await notebook.start()  # claims from every queue, as a notebook App does
        worker = spawn_worker(db_url)  # --app workerapp:app: runs `record`, not `mine`
        await eventually(lambda: hosts_registered(notebook, 2), timeout=20)
        theirs = await notebook.enqueue_many(
            [fnb.EnqueueRequest(kind="record", payload={"n": i}) for i in range(20)]
        )
        ours = await mine.enqueue_many([(i,) for i in range(5)])
        assert [await r.wait(20) for r in theirs] == [worker.pid] * 20
        assert [await r.wait(20) for r in ours] == ["notebook"] * 5
        assert (await notebook.counts())["default"]["dead"] == 0
    ran = marks(tmp_path, "ran")
    assert sorted(ran[worker.pid]) == sorted(r.id for r in theirs)


async def test_jobs_reclaimed_after_a_restart_wait_for_their_cell(
    db_url: str, spawn_worker: Spawn
) -> None:
    """A worker dies mid-job; the process that reaps it has no handler for the job (the cell
    was not re-run after a kernel restart): the job waits, failed, then runs once it is."""
    async with fnb.App(db_url, **FAST, stale_after=1.0) as kernel:
        await kernel.ensure_queue("default", backoff_base_seconds=0.01, backoff_max_seconds=0.02)
        doomed = spawn_worker(db_url)
        await eventually(lambda: hosts_registered(kernel, 1), timeout=20)
        stall = await kernel.enqueue(fnb.EnqueueRequest(kind="stall_first"))
        await eventually(lambda: _status(kernel, stall.id, "running"), timeout=20)
        await kernel.start()  # the restarted kernel: no handler for stall_first yet
        doomed.kill()
        doomed.wait()
        job = await eventually(lambda: _status(kernel, stall.id, "failed", "pending"), timeout=20)
        await asyncio.sleep(1.0)  # claims go by: it must not die for want of a handler
        job = await kernel.job(stall.id)
        assert (job.status, job.attempts, job.last_error) == (job.status, 1, "worker lost")
        assert job.status in ("failed", "pending")

        @kernel.job(kind="stall_first")  # the cell is run again
        async def stall_first(ctx: fnb.JobCtx) -> int:
            return ctx.attempt

        assert await stall.wait(15) == 2


async def _status(app: fnb.App, job_id: str, *statuses: str) -> fnb.JobRecord | None:
    job = await app.job(job_id)
    return job if job is not None and job.status in statuses else None
