"""Real `forge-nb worker` processes on one database: sharing, kill -9, SIGTERM, cancel."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

import forge_nb as fnb

from .conftest import Spawn, marks
from .test_app import eventually

pytestmark = pytest.mark.slow


async def hosts_registered(app: fnb.App, n: int) -> bool:
    return len({p.host_id for p in await app.processes()}) >= n


async def status_of(app: fnb.App, job_id: str, *statuses: str):
    job = await app.job(job_id)
    return job if job.status in statuses else None


async def test_two_workers_share_5000_jobs_exactly_once(
    db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    async with fnb.App(db_url) as app:
        await app.ensure_queue("default", workers=8)
        a, b = spawn_worker(db_url), spawn_worker(db_url)
        await eventually(lambda: hosts_registered(app, 2), timeout=20)
        record = app.job(kind="record")(lambda ctx, n: None)  # kind only: workers run it
        refs = await record.enqueue_many([(i,) for i in range(5000)])
        await eventually(lambda: _all_done(app, 5000), timeout=90, interval=0.2)
        jobs = await app.jobs_frame(limit=5000)
    assert len(jobs) == 5000 and set(jobs["status"]) == {"done"}
    assert set(jobs["attempts"]) == {1}
    ran = marks(tmp_path, "ran")
    assert set(ran) == {a.pid, b.pid}, "both processes took work"
    all_runs = Counter(job_id for ids in ran.values() for job_id in ids)
    assert set(all_runs) == {r.id for r in refs} and max(all_runs.values()) == 1
    assert Counter(jobs["result"]) == {pid: len(ids) for pid, ids in ran.items()}


async def _all_done(app: fnb.App, n: int) -> bool:
    return (await app.counts())["default"]["done"] == n


async def test_kill_9_mid_job_is_reaped_and_finished_by_another_worker(
    db_url: str, spawn_worker: Spawn
) -> None:
    async with fnb.App(db_url) as app:
        await app.ensure_queue("default")
        stall = app.job(kind="stall_first")(lambda ctx: None)
        doomed = spawn_worker(db_url)
        await eventually(lambda: hosts_registered(app, 1), timeout=20)
        ref = await stall.enqueue()
        await eventually(lambda: status_of(app, ref.id, "running"))
        survivor = spawn_worker(db_url)
        await eventually(lambda: hosts_registered(app, 2), timeout=20)
        doomed.send_signal(signal.SIGKILL)
        assert await ref.wait(timeout=30) == survivor.pid
        job = await app.job(ref.id)
        history = [e.event for e in await app.job_history(ref.id)]
    assert job.attempts == 2 and "worker_lost" in history


async def test_restarted_worker_reclaims_its_dead_predecessors_jobs_at_once(
    db_url: str, spawn_worker: Spawn
) -> None:
    async with fnb.App(db_url) as app:
        await app.ensure_queue("default")
        nap = app.job(kind="nap")(lambda ctx, seconds: None)
        first = spawn_worker(db_url)
        await eventually(lambda: hosts_registered(app, 1), timeout=20)
        ref = await nap.enqueue(0.5)
        await eventually(lambda: status_of(app, ref.id, "running"))
        first.kill()
        first.wait()
        # A huge stale_after: only the startup reclaim (same host, dead pid) can free the job.
        second = spawn_worker(db_url, "--stale-after", "3600")
        assert await ref.wait(timeout=30) == second.pid


async def test_a_silent_worker_is_reaped_after_its_own_limit_not_a_peers(
    db_url: str, spawn_worker: Spawn
) -> None:
    # A worker that allows itself an hour of silence is frozen (SIGSTOP) mid-job; a peer
    # whose own limit is 1 s keeps reaping. The frozen worker keeps its job, and finishes it
    # once it runs again.
    async with fnb.App(db_url) as app:
        await app.ensure_queue("default")
        nap = app.job(kind="nap")(lambda ctx, seconds: None)
        patient = spawn_worker(db_url, "--stale-after", "3600")
        await eventually(lambda: hosts_registered(app, 1), timeout=20)
        ref = await nap.enqueue(1.0)
        await eventually(lambda: status_of(app, ref.id, "running"))
        patient.send_signal(signal.SIGSTOP)
        try:
            spawn_worker(db_url, "--stale-after", "1")
            await eventually(lambda: hosts_registered(app, 2), timeout=20)
            await asyncio.sleep(4)  # many of the peer's reaps, each 1 s past its own limit
            job = await app.job(ref.id)
            assert (job.status, job.attempts) == ("running", 1)
        finally:
            patient.send_signal(signal.SIGCONT)
        assert await ref.wait(timeout=30) == patient.pid
        assert "worker_lost" not in [e.event for e in await app.job_history(ref.id)]


async def test_a_job_that_keeps_killing_workers_ends_dead(
    db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    async with fnb.App(db_url) as app:
        poison = app.job(kind="poison", max_attempts=2)(lambda ctx: None)
        ref = await poison.enqueue()
        for _ in range(3):
            worker = spawn_worker(db_url, "--stale-after", "3600")
            # Each worker dies running the job, until a startup reclaim finds it out of attempts.
            job = await eventually(lambda: _exited_or_dead(app, worker, ref.id), timeout=30)
            if job is not True:
                break
    assert job.last_error == "worker lost" and job.attempts == 2
    assert sum(len(ids) for ids in marks(tmp_path, "started").values()) == 2


async def _exited_or_dead(app: fnb.App, worker: subprocess.Popen[bytes], job_id: str):
    job = await app.job(job_id)
    if job.status == "dead":
        return job
    return worker.poll() is not None


async def test_sigterm_lets_the_running_job_finish(
    db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    async with fnb.App(db_url) as app:
        await app.ensure_queue("default")
        nap = app.job(kind="nap")(lambda ctx, seconds: None)
        worker = spawn_worker(db_url)
        await eventually(lambda: hosts_registered(app, 1), timeout=20)
        ref = await nap.enqueue(1.0)
        await eventually(lambda: status_of(app, ref.id, "running"))
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 30)
        job = await app.job(ref.id)
        leftovers = [p for p in await app.processes()]
    assert code == 0
    assert job.status == "done" and job.result == worker.pid
    assert marks(tmp_path, "finished") == {worker.pid: [ref.id]}
    assert leftovers == []


@pytest.mark.parametrize("kind", ["nap", "sync_nap"])
async def test_cancel_a_job_running_in_another_process(
    db_url: str, spawn_worker: Spawn, kind: str
) -> None:
    async with fnb.App(db_url) as app:
        await app.ensure_queue("default")
        job_fn = app.job(kind=kind)(lambda ctx, seconds: None)
        worker = spawn_worker(db_url)
        await eventually(lambda: hosts_registered(app, 1), timeout=20)
        ref = await job_fn.enqueue(60)
        await eventually(lambda: status_of(app, ref.id, "running"))
        assert await ref.cancel() == "running"
        with pytest.raises(fnb.JobDead, match="cancelled"):
            await ref.wait(timeout=10)
        job = await app.job(ref.id)
        assert job.attempts == 0 and worker.poll() is None  # the worker lives on
