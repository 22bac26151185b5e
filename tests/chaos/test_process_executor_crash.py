"""kill -9 of a `forge-nb worker` running process jobs: its children die with it, its jobs
are reaped and finished by another worker (both backends), whether the workers import the
jobs (``--app``) or run code shipped from the test (``--shipped-code``)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import psutil
import pytest

import forge_nb as fnb
from forge_nb.runtime.process_pool import CHILD_ENV

from .conftest import Workers, eventually, hosts_registered, runs, summary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
WORKER_FLAGS = ("--stale-after", "2", "--poll-interval", "0.2")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def marked_children_of(worker_pid: int) -> list[int]:
    """Live processes anywhere whose environment names ``worker_pid`` as their worker."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(CHILD_ENV) == str(worker_pid) and alive(proc.pid):
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def shipped_crunch(ctx: fnb.JobCtx, seconds: float) -> dict[str, int]:
    """`chaosapp.crunch_in_child`, shipped by value (the workers do not import this module)."""
    import os
    import time

    with open(
        os.path.join(os.environ["FORGE_NB_TEST_DIR"], f"proc_started.{os.getpid()}"), "a"
    ) as f:
        f.write(f"{ctx.job_id} {ctx.attempt}\n")
    deadline = time.monotonic() + (seconds if ctx.attempt == 1 else 0.1)
    while time.monotonic() < deadline:
        sum(range(1000))
    return {"worker": os.getppid(), "attempt": ctx.attempt}


@pytest.mark.parametrize("code", ["module", "shipped"])
async def test_kill_9_of_a_worker_running_process_jobs_leaves_no_child(
    db_url: str, workers: Workers, tmp_path: Path, code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if code == "shipped":
        monkeypatch.setenv("FORGE_NB_CODE_KEY", "chaos-key")
        workers.env_extra["FORGE_NB_CODE_KEY"] = "chaos-key"
    flags = WORKER_FLAGS if code == "module" else (*WORKER_FLAGS, "--shipped-code")
    worker_app = "chaosapp:app" if code == "module" else None
    async with fnb.App(db_url, ship_code=code == "shipped") as app:
        await app.ensure_queue("default", workers=4, backoff_base_seconds=0.05)
        if code == "module":
            crunch = app.job(kind="crunch_in_child", max_attempts=5)(lambda ctx, seconds: None)
        else:
            crunch = app.job(kind="crunch_in_child", max_attempts=5, executor="process")(
                shipped_crunch
            )
            await app.publish_code()
        doomed = workers.spawn(db_url, *flags, app=worker_app)
        await eventually(lambda: hosts_registered(app, 1), timeout=30)
        refs = await crunch.enqueue_many([(60.0,)] * 4)  # the doomed worker finishes none

        async def children_running() -> list[int]:
            started = {pid for _, _, pid in runs(tmp_path, "proc_started")}
            return sorted(started) if len(started) >= 2 else []

        child_pids = await eventually(children_running, timeout=60)
        assert set(child_pids) <= {c.pid for c in psutil.Process(doomed.pid).children()}
        assert set(marked_children_of(doomed.pid)) == set(child_pids)
        survivor = workers.spawn(db_url, *flags, app=worker_app)
        await eventually(lambda: hosts_registered(app, 2), timeout=30)

        doomed.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.to_thread(doomed.wait)
        while any(alive(p) for p in child_pids):
            assert time.monotonic() - killed_at < 10, "a child outlived its worker"
            await asyncio.sleep(0.01)
        children_gone_s = time.monotonic() - killed_at
        assert marked_children_of(doomed.pid) == []

        results = [await ref.wait(timeout=90) for ref in refs]
        jobs = [await app.job(ref.id) for ref in refs]
        lost = [
            ref.id
            for ref in refs
            if "worker_lost" in [e.event for e in await app.job_history(ref.id)]
        ]
        codes = await workers.stop_all()

    summary(
        f"process executor kill -9 ({code} code)",
        children=len(child_pids),
        children_gone_s=f"{children_gone_s:.3f}",
        jobs_lost_and_retried=len(lost),
    )
    assert all(j.status == "done" for j in jobs)
    # The jobs the killed worker held (2 in its children, 2 waiting for one) ran again,
    # in the survivor's children.
    assert len(lost) == 4
    for ref, result, job in zip(refs, results, jobs, strict=True):
        if ref.id in lost:
            assert result["worker"] == survivor.pid and job.attempts >= 2
    assert codes == {survivor.pid: 0}
    assert marked_children_of(survivor.pid) == []
    assert children_gone_s < 5
