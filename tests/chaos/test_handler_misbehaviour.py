"""Handlers that misbehave, in a real worker process: the job ends, the worker lives on.

- sync code wrongly declared ``async`` blocks the loop: the worker log names the kind;
- a handler that never returns is ended by its per-kind ``timeout=``;
- SystemExit, KeyboardInterrupt, a custom BaseException, a non-JSON result:
  the job ends ``dead`` (max_attempts=1) with an error that says what happened,
  and the same worker goes on to run the next job and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

import forge_nb as fnb

from .conftest import Workers, eventually, hosts_registered, run_counts

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

FLAGS = ("--stale-after", "30", "--poll-interval", "0.1", "--shutdown-timeout", "2")


async def start_worker(app: fnb.App, workers: Workers, url: str) -> subprocess.Popen[bytes]:
    await app.ensure_queue("default", workers=4)
    proc = workers.spawn(url, *FLAGS)
    await eventually(lambda: hosts_registered(app, 1), timeout=30)
    return proc


async def run_kind(app: fnb.App, kind: str, timeout: float = 20) -> fnb.JobRecord:
    """Enqueue ``kind`` (one attempt) and wait until its job is terminal."""
    ref = await app.enqueue(fnb.EnqueueRequest(kind=kind, max_attempts=1))
    return await eventually(lambda: _terminal(app, ref.id), timeout=timeout)


async def _terminal(app: fnb.App, job_id: str) -> fnb.JobRecord | None:
    job = await app.job(job_id)
    return job if job is not None and job.status in ("done", "dead") else None


async def stop(workers: Workers, proc: subprocess.Popen[bytes], within: float) -> float:
    """SIGTERM the worker; assert it exits 0 within ``within`` seconds; return how long it took."""
    started = time.monotonic()
    codes = await workers.stop_all(timeout=within)
    took = time.monotonic() - started
    assert codes[proc.pid] == 0, f"worker exit code {codes[proc.pid]} after {took:.1f} s"
    return took


async def test_a_handler_blocking_the_loop_is_named_in_the_worker_log(
    sqlite_url: str, workers: Workers
) -> None:
    async with fnb.App(sqlite_url) as app:
        proc = await start_worker(app, workers, sqlite_url)
        job = await run_kind(app, "blocks_loop")
        ok = await run_kind(app, "ok")
        await stop(workers, proc, within=15)
    log = workers.log_text(proc)
    assert job.status == "done" and job.result == "finally"
    assert ok.status == "done"
    blocked = [line for line in log.splitlines() if "blocked" in line]
    assert blocked, f"no loop-blocked warning in the worker log:\n{log}"
    assert any("blocks_loop" in line for line in blocked), blocked
    assert any(re.search(r"\b[12]\.\d+ ?s\b", line) for line in blocked), blocked


STUCK_THREAD = (
    "runtime: after a sync handler's thread outlives its timeout, `forge-nb worker` logs "
    "'stopped' on SIGTERM but the process does not exit until the thread returns "
    "(ThreadPoolExecutor threads are joined at interpreter exit)"
)


@pytest.mark.parametrize(
    "kind",
    [
        "never_returns",
        "never_returns_sync",
    ],
)
async def test_a_handler_that_never_returns_is_ended_by_its_timeout(
    db_url: str, workers: Workers, tmp_path: Path, kind: str
) -> None:
    async with fnb.App(db_url) as app:
        proc = await start_worker(app, workers, db_url)
        job = await run_kind(app, kind)
        ok = await run_kind(app, "ok")
        alive = proc.poll() is None
        # The worker still stops promptly, even with a thread stuck in a sync handler.
        took = await stop(workers, proc, within=8)
    assert job.status == "dead", job
    assert "timed out after 1" in (job.last_error or ""), job.last_error
    assert run_counts(tmp_path, kind)[job.id] == 1
    assert ok.status == "done" and alive
    assert took < 8


BASE_EXCEPTIONS = {
    "raises_system_exit": "SystemExit",
    "raises_keyboard_interrupt": "KeyboardInterrupt",
    "raises_base_exception": "Meltdown",
    "raises_system_exit_sync": "SystemExit",
}
BAD_RESULTS = {"returns_object": "not JSON", "returns_nan": "not JSON"}


async def test_base_exceptions_and_non_json_results_end_the_job_not_the_worker(
    db_url: str, workers: Workers, tmp_path: Path
) -> None:
    async with fnb.App(db_url) as app:
        proc = await start_worker(app, workers, db_url)
        ended = {}
        for kind in [*BASE_EXCEPTIONS, *BAD_RESULTS]:
            ended[kind] = await run_kind(app, kind)
            assert proc.poll() is None, f"the worker died running {kind}"
        ok = await run_kind(app, "ok")
        await stop(workers, proc, within=15)
    log = workers.log_text(proc)
    assert ok.status == "done"
    for kind, job in ended.items():
        assert job.status == "dead", (kind, job.status)
        assert job.attempts == 1, (kind, job.attempts)
        assert job.result is None, (kind, job.result)
    assert len(run_counts(tmp_path, "raises")) == len(BASE_EXCEPTIONS)
    for kind, what in BAD_RESULTS.items():
        assert what in (ended[kind].last_error or ""), (kind, ended[kind].last_error)
    for kind, name in BASE_EXCEPTIONS.items():
        assert name in (ended[kind].last_traceback or ""), (kind, ended[kind].last_traceback)
    assert "Traceback" not in log, log


async def test_the_stored_error_names_the_base_exception_raised(
    sqlite_url: str, workers: Workers
) -> None:
    async with fnb.App(sqlite_url) as app:
        proc = await start_worker(app, workers, sqlite_url)
        ended = {kind: await run_kind(app, kind) for kind in BASE_EXCEPTIONS}
        await stop(workers, proc, within=15)
    for kind, name in BASE_EXCEPTIONS.items():
        assert name in (ended[kind].last_error or ""), f"{kind}: {ended[kind].last_error!r}"
