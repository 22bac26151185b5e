"""Worker crashes: 20,000 jobs, 3 worker processes, one of them ``kill -9``-ed every ~2 s.

At the end every job is ``done`` exactly once: its row was finalised by the run
that returned its result (same process, same attempt), no attempt ran twice,
nothing is left ``running``, nothing is lost. Side effects may repeat only for
jobs whose worker died under them, which the row shows as extra attempts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest

import forge_nb as fnb

from .conftest import Workers, eventually, hosts_registered, runs, summary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

JOBS = int(os.environ.get("FORGE_NB_CHAOS_JOBS", "20000"))
KILL_EVERY_S = 2.0
#: How long the drain may take before the test gives up (a stall is a failure).
DRAIN_TIMEOUT_S = 240.0
WORKER_FLAGS = ("--stale-after", "2", "--poll-interval", "0.2", "--shutdown-timeout", "10")


async def test_kill_9_a_worker_every_2_s_while_20000_jobs_drain(
    db_url: str, workers: Workers, tmp_path: Path
) -> None:
    async with fnb.App(db_url) as app:
        # Retries of lost runs should come back quickly: the backoff is not what is tested here.
        await app.ensure_queue(
            "default", workers=10, backoff_base_seconds=0.05, backoff_max_seconds=0.2
        )
        stable = [workers.spawn(db_url, *WORKER_FLAGS, heartbeat=0.5) for _ in range(2)]
        victim = workers.spawn(db_url, *WORKER_FLAGS, heartbeat=0.5)
        await eventually(lambda: hosts_registered(app, 3), timeout=30)

        work = app.job(kind="work", max_attempts=25)(lambda ctx, n: None)  # kind only
        started = time.monotonic()
        ids: list[str] = []
        kills = 0
        next_kill = time.monotonic() + KILL_EVERY_S
        batch = 2000

        async def chaos_step() -> None:
            nonlocal victim, kills, next_kill
            if time.monotonic() >= next_kill:
                victim.send_signal(signal.SIGKILL)
                await asyncio.to_thread(victim.wait)
                kills += 1
                victim = workers.spawn(db_url, *WORKER_FLAGS, heartbeat=0.5)
                next_kill = time.monotonic() + KILL_EVERY_S

        # Enqueue in batches while the workers (and the killing) are already going.
        for first in range(0, JOBS, batch):
            refs = await work.enqueue_many([(n,) for n in range(first, min(JOBS, first + batch))])
            ids += [r.id for r in refs]
            await chaos_step()
            await asyncio.sleep(0.2)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while (await app.counts())["default"]["done"] < JOBS:
            assert time.monotonic() < deadline, f"stalled: {await app.counts()}"
            assert all(p.poll() is None for p in stable), "a worker we did not kill died"
            await chaos_step()
            await asyncio.sleep(0.25)
        drained_s = time.monotonic() - started

        # The last victim may still be starting: SIGTERM it only once it is up.
        await eventually(lambda: hosts_registered(app, 3), timeout=30)
        codes = await workers.stop_all()
        counts = (await app.counts())["default"]
        jobs = await app.jobs_frame(limit=JOBS + 1000)
        lost_events = 0
        multi_attempt = jobs[jobs["attempts"] > 1]
        for job_id in multi_attempt.index:
            lost_events += sum(e.event == "worker_lost" for e in await app.job_history(job_id))

    # Nothing lost, nothing stuck, nothing doubled.
    assert counts == {
        "waiting": 0,
        "pending": 0,
        "running": 0,
        "failed": 0,
        "done": JOBS,
        "dead": 0,
    }
    assert len(jobs) == JOBS and set(jobs.index) == set(ids)
    assert all(code == 0 for code in codes.values()), f"exit codes after SIGTERM: {codes}"

    # Each row was finalised by the run whose result it holds: same attempt, a process that ran it.
    ran = runs(tmp_path, "ran")
    by_job: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for job_id, attempt, pid in ran:
        by_job[job_id].append((attempt, pid))
    assert set(by_job) == set(ids), "every job's side effect happened"
    for job_id, row in jobs.iterrows():
        result = row["result"]
        assert result["attempt"] == row["attempts"], (job_id, result, row["attempts"])
        assert (result["attempt"], result["pid"]) in by_job[job_id], (job_id, by_job[job_id])
        assert result["n"] == row["payload"]["n"]
    # No attempt of any job ran twice (two workers never held the same claim).
    attempts_run = [(job_id, attempt) for job_id, attempt, _ in ran]
    assert len(attempts_run) == len(set(attempts_run)), "an attempt ran in two places"
    # Repeated side effects only where a worker died mid-run (the row counts the lost attempts).
    repeated = {job_id: len(v) for job_id, v in by_job.items() if len(v) > 1}
    attempts = jobs["attempts"].to_dict()
    assert all(attempts[job_id] >= n for job_id, n in repeated.items())
    summary(
        f"kill -9 every {KILL_EVERY_S} s ({db_url.split(':')[0]})",
        jobs=JOBS,
        kills=kills,
        drained_s=round(drained_s, 1),
        jobs_per_s=round(JOBS / drained_s),
        side_effects_repeated=len(repeated),
        jobs_with_lost_attempts=len(multi_attempt),
        worker_lost_events=lost_events,
    )
    assert kills >= 3, "the run was too short to kill anything"
