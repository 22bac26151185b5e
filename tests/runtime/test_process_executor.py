"""executor="process": jobs in child processes of the app's pool, with real processes throughout.

Job functions defined inside these tests are not importable, so they travel by value
(cloudpickle), as a notebook cell's do; `tests/runtime/procjobs.py` covers the
by-reference path (an importable module), and `test_main_script_*` a real ``__main__``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import forge_nb as fnb
from forge_nb.runtime.process_pool import CHILD_ENV

from .test_app import FAST, eventually, fast_retries

REPO = Path(__file__).resolve().parents[2]
UI_LIBRARIES = ("panel", "bokeh", "pandas", "anywidget", "ipywidgets", "IPython", "numpy")


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[fnb.App]:
    application = fnb.App(db_url, process_workers=2, **FAST)
    try:
        yield application
    finally:
        await application.close(timeout=2)


def gone(pid: int) -> bool:
    """The process has exited (a zombie not yet reaped counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def wait_gone(pids: list[int], timeout: float = 10.0) -> float:
    """Seconds until every pid has exited (AssertionError after ``timeout``)."""
    start = time.monotonic()
    while not all(gone(p) for p in pids):
        assert time.monotonic() - start < timeout, (
            f"still alive: {[p for p in pids if not gone(p)]}"
        )
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def our_children() -> list[int]:
    """Live process-executor children of this test process (found by their env marker)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.environ().get(CHILD_ENV) == str(os.getpid()) and not gone(proc.pid):
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


# -- decoration -----------------------------------------------------------------------------


def test_executor_defaults_and_bad_values_fail_at_decoration(tmp_path: Path) -> None:
    app = fnb.App(f"sqlite:///{tmp_path}/x.db")

    async def a(ctx: fnb.JobCtx) -> None: ...

    def s(ctx: fnb.JobCtx) -> None: ...

    assert app.job(a)._handler.executor == "loop"
    assert app.job(s)._handler.executor == "thread"
    assert app.job(kind="p1", executor="process")(s)._handler.executor == "process"
    assert app.job(kind="p2", executor="process")(a)._handler.executor == "process"
    with pytest.raises(ValueError, match="executor must be 'loop', 'thread' or 'process'"):
        app.job(kind="bad", executor="processes")(s)
    with pytest.raises(ValueError, match="needs an async def"):
        app.job(kind="bad", executor="loop")(s)
    with pytest.raises(ValueError, match="runs plain functions"):
        app.job(kind="bad", executor="thread")(a)
    assert "bad" not in app.handlers
    with pytest.raises(ValueError, match="process_workers"):
        fnb.App(f"sqlite:///{tmp_path}/x.db", process_workers=0)
    with pytest.raises(ValueError, match="process_max_tasks_per_child"):
        fnb.App(f"sqlite:///{tmp_path}/x.db", process_max_tasks_per_child=-1)


def test_import_forge_nb_loads_no_process_machinery() -> None:
    code = (
        "import sys, forge_nb; "
        "print(sorted(m for m in ('cloudpickle', 'multiprocessing', "
        "'forge_nb.runtime.process_pool', 'forge_nb.runtime.process_child') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- running --------------------------------------------------------------------------------


async def test_a_process_job_runs_in_a_child_with_its_ctx(app: fnb.App) -> None:
    @app.job(kind="where", executor="process")
    def where(ctx: fnb.JobCtx, n: int) -> dict:
        return {
            "pid": os.getpid(),
            "n": n,
            "ctx": [ctx.job_id, ctx.kind, ctx.queue, ctx.attempt, ctx.cancel.is_cancelled()],
            "ui": sorted({m.split(".")[0] for m in sys.modules} & set(UI_LIBRARIES)),
        }

    @app.job(kind="where_async", executor="process")
    async def where_async(ctx: fnb.JobCtx) -> int:
        await ctx.progress(1.0, "done")
        await asyncio.sleep(0)
        return os.getpid()

    await app.start()
    ref = await where.enqueue(7)
    result = await ref.wait(timeout=30)
    assert result["pid"] != os.getpid() and result["n"] == 7
    assert result["ctx"] == [ref.id, "where", "default", 1, False]
    assert result["ui"] == []  # the child imports no UI library (this test process has some)
    assert await (await where_async.enqueue()).wait(timeout=30) in app._process_pool.pids()


async def test_progress_reaches_the_database(app: fnb.App, tmp_path: Path) -> None:
    go = tmp_path / "go"

    @app.job(kind="halfway", executor="process")
    def halfway(ctx: fnb.JobCtx, go: str) -> str:
        ctx.progress_sync(0.5, "half way")
        while not os.path.exists(go):
            time.sleep(0.01)
        return "ok"

    await app.start()
    ref = await halfway.enqueue(str(go))

    async def progress_stored():
        job = await app.job(ref.id)
        return (job.progress, job.progress_message) == (0.5, "half way")

    try:
        await eventually(progress_stored, timeout=30)
    finally:
        go.touch()
    assert await ref.wait(timeout=30) == "ok"


async def test_errors_are_stored_as_for_a_thread_job(app: fnb.App) -> None:
    def chained(ctx: fnb.JobCtx) -> None:
        try:
            {}["missing"]
        except KeyError as exc:
            raise ValueError("could not parse") from exc

    def not_json(ctx: fnb.JobCtx) -> object:
        return {"when": object()}

    def nan(ctx: fnb.JobCtx) -> float:
        return float("nan")

    jobs = {}
    for fn in (chained, not_json, nan):
        for executor in ("thread", "process"):
            jobs[fn.__name__, executor] = app.job(
                kind=f"{fn.__name__}_{executor}", executor=executor, max_attempts=1
            )(fn)
    await app.start()
    refs = {key: await job.enqueue() for key, job in jobs.items()}
    records = {}
    for key, ref in refs.items():
        with pytest.raises(fnb.JobDead):
            await ref.wait(timeout=30)
        records[key] = await app.job(ref.id)
    for name in ("chained", "not_json", "nan"):
        thread, process = records[name, "thread"], records[name, "process"]
        assert process.last_error == thread.last_error, name
    assert records["chained", "process"].last_error == (
        "ValueError: could not parse: KeyError: 'missing'"
    )
    assert records["not_json", "process"].last_error.startswith("result is not JSON:")
    # The traceback: the whole chain, with the job's own file, lines and source text.
    trace = records["chained", "process"].last_traceback
    assert "KeyError: 'missing'" in trace and "direct cause" in trace
    assert trace.rstrip().endswith("ValueError: could not parse")
    assert f'File "{__file__}"' in trace and '{}["missing"]' in trace
    assert "<dynamic-code>" not in trace


async def test_throttled_and_dead_from_a_child(app: fnb.App, tmp_path: Path) -> None:
    await fast_retries(app)

    @app.job(kind="throttles", executor="process")
    def throttles(ctx: fnb.JobCtx, flag: str) -> int:
        if not os.path.exists(flag):
            Path(flag).touch()
            raise fnb.Throttled(retry_after=0.05)
        return ctx.attempt

    @app.job(kind="gives_up", executor="process", max_attempts=5)
    def gives_up(ctx: fnb.JobCtx) -> None:
        raise fnb.Dead("no point")

    await app.start()
    ref = await throttles.enqueue(str(tmp_path / "flag"))
    # Throttled gives its attempt back: the second run is attempt 1 again.
    assert await ref.wait(timeout=30) == 1
    job = await app.job(ref.id)
    assert job.attempts == 1
    assert "throttled" in [e.event for e in await app.job_history(ref.id)]
    dead = await gives_up.enqueue()
    with pytest.raises(fnb.JobDead):
        await dead.wait(timeout=30)
    job = await app.job(dead.id)
    assert job.attempts == 1 and job.last_error == "no point"
    assert job.last_traceback.rstrip().endswith("Dead: no point")


async def test_a_function_that_cannot_be_pickled_fails_clearly(app: fnb.App) -> None:
    lock = threading.Lock()

    @app.job(kind="holds_lock", executor="process", max_attempts=1)
    def holds_lock(ctx: fnb.JobCtx) -> bool:
        return lock.locked()

    await app.start()
    ref = await holds_lock.enqueue()
    with pytest.raises(fnb.JobDead) as info:
        await ref.wait(timeout=30)
    assert info.value.job.last_error.startswith(
        "process executor: cannot send job function 'holds_lock' to a child process"
    )
    assert "lock" in info.value.job.last_error


async def test_a_process_job_may_call_another_job_function(app: fnb.App) -> None:
    @app.job(kind="inner", executor="process")
    def inner(x: int) -> int:
        return x * 2

    @app.job(kind="outer", executor="process")
    def outer(x: int) -> int:
        return inner(x) + 1  # the JobFunction pickles as the plain function, not the app

    await app.start()
    assert await (await outer.enqueue(20)).wait(timeout=30) == 41


async def test_an_importable_function_travels_by_reference(db_url: str) -> None:
    from forge_nb.runtime import process_ship

    from . import procjobs

    blob = process_ship.pack(procjobs.square.fn, True)
    assert b"cloudpickle" not in blob and b"procjobs" in blob
    procjobs.app.configure(url=db_url, **{k: v for k, v in FAST.items() if k != "tick_interval"})
    procjobs.MODULE_STATE = "changed in the parent"
    try:
        await procjobs.app.start()
        ref = await procjobs.square.enqueue(9)
        assert await ref.wait(timeout=30) == {"square": 81, "module_state": "fresh"}
    finally:
        await procjobs.app.close(timeout=2)


# -- dying children ---------------------------------------------------------------------------


async def test_a_dying_child_fails_only_its_attempt(db_url: str, tmp_path: Path) -> None:
    async with fnb.App(db_url, process_workers=4, **FAST) as app:
        await fast_retries(app)

        @app.job(kind="slow", executor="process")
        def slow(ctx: fnb.JobCtx, seconds: float, flag: str) -> int:
            Path(flag).touch()
            time.sleep(seconds)
            return os.getpid()

        @app.job(kind="exits", executor="process", max_attempts=2)
        def exits(ctx: fnb.JobCtx) -> str:
            if ctx.attempt == 1:
                os._exit(3)
            return "second attempt ran"

        @app.job(kind="killed", executor="process", max_attempts=1)
        def killed(ctx: fnb.JobCtx) -> None:
            os.kill(os.getpid(), signal.SIGKILL)

        @app.job(kind="segfault", executor="process", max_attempts=1)
        def segfault(ctx: fnb.JobCtx) -> None:
            import ctypes

            ctypes.string_at(0)

        await app.start()
        flags = [tmp_path / "a", tmp_path / "b"]
        slow_refs = await slow.enqueue_many([(2.0, str(f)) for f in flags])
        await eventually(lambda: _all_exist(flags), timeout=30)
        exit_ref = await exits.enqueue()
        kill_ref = await killed.enqueue()
        segv_ref = await segfault.enqueue()
        assert await exit_ref.wait(timeout=30) == "second attempt ran"
        first = [e for e in await app.job_history(exit_ref.id) if e.event == "failed"]
        assert first and first[0].message == "process executor: child exited with code 3"
        for ref, signame in ((kill_ref, "SIGKILL"), (segv_ref, "SIGSEGV")):
            with pytest.raises(fnb.JobDead) as info:
                await ref.wait(timeout=30)
            assert (
                info.value.job.last_error == f"process executor: child killed by signal {signame}"
            )
        # The slow jobs, in other children all along, finished; the pool works on.
        pids = [await r.wait(timeout=30) for r in slow_refs]
        assert len(set(pids)) == 2
        after = await slow.enqueue(0, str(tmp_path / "c"))
        assert await after.wait(timeout=30) > 0
        assert len(app._process_pool.pids()) <= 4


async def _all_exist(paths: list[Path]) -> bool:
    return all(p.exists() for p in paths)


# -- cancel and timeout -------------------------------------------------------------------------


async def test_cancel_kills_a_child_that_ignores_it_within_2_s(
    app: fnb.App, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"

    @app.job(kind="stubborn", executor="process")
    def stubborn(ctx: fnb.JobCtx, pid_file: str) -> None:
        Path(pid_file).write_text(str(os.getpid()))
        while True:  # never looks at ctx.cancel
            time.sleep(0.01)

    await app.start()
    ref = await stubborn.enqueue(str(pid_file))
    await eventually(lambda: _written(pid_file), timeout=30)
    pid = int(pid_file.read_text())
    started = time.monotonic()
    await ref.cancel()
    with pytest.raises(fnb.JobDead):
        await ref.wait(timeout=10)
    ended_s = time.monotonic() - started
    killed_s = ended_s + await wait_gone([pid])
    job = await app.job(ref.id)
    print(f"[process] cancel: job dead after {ended_s:.3f} s, child gone after {killed_s:.3f} s")
    assert job.status == "dead" and job.last_error == "cancelled"
    assert job.attempts == 0  # cancellation spends no retry (as for thread jobs)
    assert killed_s < 5


async def test_a_job_that_sees_the_cancel_keeps_its_child(app: fnb.App, tmp_path: Path) -> None:
    @app.job(kind="polite", executor="process")
    def polite(ctx: fnb.JobCtx, flag: str) -> int:
        Path(flag).touch()
        while not ctx.cancel.is_cancelled():
            time.sleep(0.005)
        return os.getpid()

    await app.start()
    flag = tmp_path / "flag"
    ref = await polite.enqueue(str(flag))
    await eventually(lambda: _exists(flag), timeout=30)
    before = app._process_pool.pids()
    started = time.monotonic()
    await ref.cancel()
    with pytest.raises(fnb.JobDead, match="cancelled"):
        await ref.wait(timeout=10)
    print(f"[process] cooperative cancel: dead after {time.monotonic() - started:.3f} s")
    assert app._process_pool.pids() == before


async def test_a_cancel_from_another_process_reaches_the_child(
    app: fnb.App, db_url: str, tmp_path: Path
) -> None:
    @app.job(kind="spins", executor="process")
    def spins(ctx: fnb.JobCtx, flag: str) -> None:
        Path(flag).touch()
        while True:
            sum(range(10_000))  # pure-Python CPU work, no sleeps

    await app.start()
    flag = tmp_path / "flag"
    ref = await spins.enqueue(str(flag))
    await eventually(lambda: _exists(flag), timeout=30)
    [pid] = app._process_pool.pids()
    async with fnb.App(db_url) as other:  # like the dashboard or another notebook
        await other.cancel(ref.id)
    with pytest.raises(fnb.JobDead, match="cancelled"):
        await ref.wait(timeout=10)
    await wait_gone([pid])


async def test_timeout_kills_the_child(app: fnb.App, tmp_path: Path) -> None:
    def sleeps(ctx: fnb.JobCtx, pid_file: str) -> None:
        Path(pid_file).write_text(str(os.getpid()))
        time.sleep(3600)

    process = app.job(kind="sleeps_p", executor="process", timeout=1, max_attempts=1)(sleeps)
    thread = app.job(kind="sleeps_t", executor="thread", timeout=1, max_attempts=1)(
        lambda ctx, pid_file: time.sleep(1.5)
    )
    await app.start()
    pid_file = tmp_path / "pid"
    ref = await process.enqueue(str(pid_file))
    thread_ref = await thread.enqueue(str(pid_file))
    await eventually(lambda: _written(pid_file), timeout=30)
    pid = int(pid_file.read_text())
    with pytest.raises(fnb.JobDead) as info:
        await ref.wait(timeout=20)
    gone_s = await wait_gone([pid])
    job = info.value.job
    run_s = job.finished_at.timestamp() - job.started_at.timestamp()
    print(
        f"[process] timeout=1: job ended {run_s:.3f} s after start, child gone {gone_s:.3f} s later"
    )
    assert job.last_error == "TimeoutError: timed out after 1 s"
    with pytest.raises(fnb.JobDead) as thread_info:
        await thread_ref.wait(timeout=20)
    # The same outcome as a thread job (whose chain also names asyncio's inner timeout).
    assert thread_info.value.job.last_error.startswith(job.last_error)
    assert run_s < 5 and gone_s < 5


async def _exists(path: Path) -> bool:
    return path.exists()


async def _written(path: Path) -> bool:
    """Whether the file holds text (it exists, empty, between its creation and the write)."""
    return path.exists() and path.read_text() != ""


# -- pool lifecycle -----------------------------------------------------------------------------


async def test_the_pool_starts_lazily_and_close_leaves_nothing(db_url: str) -> None:
    app = fnb.App(db_url, process_workers=2, **FAST)

    @app.job(kind="pid", executor="process")
    def pid(ctx: fnb.JobCtx) -> int:
        return os.getpid()

    @app.job(kind="plain")
    def plain(ctx: fnb.JobCtx) -> int:
        return 1

    await app.start()
    await (await plain.enqueue()).wait(timeout=30)
    assert app._process_pool is None and our_children() == []
    refs = await pid.enqueue_many([()] * 6)
    try:
        pids = {await r.wait(timeout=30) for r in refs}
        children = our_children()
        assert 1 <= len(children) <= 2 and pids <= set(children)
    finally:
        await app.close()
    await wait_gone(children)
    assert our_children() == []


async def test_children_are_replaced_after_max_tasks(db_url: str) -> None:
    async with fnb.App(db_url, process_workers=1, process_max_tasks_per_child=2, **FAST) as app:

        @app.job(kind="pid", executor="process")
        def pid(ctx: fnb.JobCtx) -> int:
            return os.getpid()

        await app.start()
        pids = [await (await pid.enqueue()).wait(timeout=30) for _ in range(5)]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]


async def test_graceful_shutdown_gives_a_running_process_job_back(
    db_url: str, tmp_path: Path
) -> None:
    app = fnb.App(db_url, process_workers=1, **FAST)
    flag = tmp_path / "flag"

    @app.job(kind="long", executor="process")
    def long(ctx: fnb.JobCtx, flag: str) -> None:
        Path(flag).touch()
        time.sleep(3600)

    handle = await app.start()
    ref = await long.enqueue(str(flag))
    await eventually(lambda: _exists(flag), timeout=30)
    [pid] = app._process_pool.pids()
    await handle.shutdown(timeout=0.2)
    await wait_gone([pid])
    job = await app.job(ref.id)
    await app.close()
    assert job.status == "pending" and job.attempts == 0


# -- a real __main__ ----------------------------------------------------------------------------

MAIN_SCRIPT = """
import asyncio, json, os, sys, time
import forge_nb as fnb

app = fnb.App(sys.argv[1], process_workers=2, heartbeat_interval=0.2, poll_interval=0.2,
              tick_interval=0.1)
OFFSET = 100
with open(os.path.join(os.path.dirname(sys.argv[2]), "imports"), "a") as f:
    f.write(f"{os.getpid()}\\n")          # a child must not run this module again

def helper(n):                      # a plain __main__ function the job calls
    return n + OFFSET

@app.job(kind="crunch", executor="process")
def crunch(ctx, n: int):
    ctx.progress_sync(0.25, "started")
    total = sum(i * i for i in range(200_000))
    return {"value": helper(n), "pid": os.getpid(), "total": total,
            "ui": sorted({m.split(".")[0] for m in sys.modules}
                         & {"panel", "bokeh", "pandas", "anywidget", "ipywidgets", "IPython"})}

class ParseError(Exception):
    pass

@app.job(kind="fails", executor="process", max_attempts=1)
def fails(ctx):
    try:
        int("x")
    except ValueError as exc:
        raise ParseError("bad input") from exc

@app.job(kind="reports", executor="process")
def reports(ctx, go: str):
    ctx.progress_sync(0.5, "halfway")
    while not os.path.exists(go):
        time.sleep(0.01)
    return "reported"

async def main():
    await app.start()
    out = {"parent": os.getpid()}
    out["crunch"] = await (await crunch.enqueue(1)).wait(timeout=60)
    ref = await fails.enqueue()
    try:
        await ref.wait(timeout=60)
    except fnb.JobDead as exc:
        out["error"] = exc.job.last_error
        out["traceback"] = exc.job.last_traceback
    go = sys.argv[2]
    ref = await reports.enqueue(go)
    for _ in range(600):
        job = await app.job(ref.id)
        if (job.progress, job.progress_message) == (0.5, "halfway"):
            out["progress"] = [job.progress, job.progress_message]
            break
        await asyncio.sleep(0.05)
    open(go, "w").close()
    out["reports"] = await ref.wait(timeout=60)
    await app.close()
    print(json.dumps(out))

asyncio.run(main())
"""


def test_main_script_process_jobs(db_url: str, tmp_path: Path) -> None:
    script = tmp_path / "myjobs.py"
    script.write_text(textwrap.dedent(MAIN_SCRIPT))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(script), db_url, str(tmp_path / "go")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    crunch = out["crunch"]
    assert crunch["value"] == 101 and crunch["pid"] != out["parent"]
    assert crunch["ui"] == []
    assert (tmp_path / "imports").read_text().split() == [str(out["parent"])]
    assert out["error"] == (
        "ParseError: bad input: ValueError: invalid literal for int() with base 10: 'x'"
    )
    assert f'File "{script}"' in out["traceback"] and 'int("x")' in out["traceback"]
    assert out["traceback"].rstrip().endswith("ParseError: bad input")
    assert out["progress"] == [0.5, "halfway"] and out["reports"] == "reported"


# -- the pool's edges ---------------------------------------------------------------------------


async def test_timeout_counts_from_the_start_in_a_child(db_url: str) -> None:
    async with fnb.App(db_url, process_workers=1, **FAST) as app:

        @app.job(kind="hog", executor="process")
        def hog(ctx: fnb.JobCtx) -> str:
            time.sleep(2)
            return "hog"

        @app.job(kind="quick", executor="process", timeout=1, max_attempts=1)
        def quick(ctx: fnb.JobCtx) -> str:
            time.sleep(0.1)
            return "quick"

        await app.start()
        first = await hog.enqueue()
        await eventually(lambda: _status_is(app, first.id, "running"))
        second = await quick.enqueue()  # waits ~2 s for the only child: not its own time
        assert await second.wait(timeout=30) == "quick"
        assert await first.wait(timeout=30) == "hog"


async def _status_is(app: fnb.App, job_id: str, status: str) -> bool:
    return (await app.job(job_id)).status == status


async def test_a_child_that_cannot_start_fails_the_job_clearly(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from forge_nb.runtime import process_pool

    monkeypatch.setattr(process_pool, "BOOT", "import sys; sys.exit(7)")
    async with fnb.App(db_url, process_workers=1, **FAST) as app:

        @app.job(kind="never", executor="process", max_attempts=1)
        def never(ctx: fnb.JobCtx) -> None: ...

        await app.start()
        with pytest.raises(fnb.JobDead) as info:
            await (await never.enqueue()).wait(timeout=30)
    assert info.value.job.last_error == (
        "process executor: child exited with code 7 before it was ready"
    )


async def test_closing_the_pool_fails_queued_jobs_and_stops_children() -> None:
    from forge_nb.runtime.context import CancelToken
    from forge_nb.runtime.handlers import handler_for_function
    from forge_nb.runtime.process_pool import ProcessPool, ProcessPoolClosed

    def nap(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    handler = handler_for_function(
        nap,
        kind="nap",
        queue=None,
        max_attempts=1,
        concurrency=None,
        timeout=5,
        priority=0,
        executor="process",
    )
    pool = ProcessPool(1, on_progress=lambda *a: None)

    def ctx(job_id: str) -> Any:
        return types.SimpleNamespace(
            job_id=job_id,
            kind="nap",
            queue="q",
            attempt=1,
            process_id="p",
            host_id="h",
            cancel=CancelToken(),
            dependency_results={},
        )

    running = asyncio.ensure_future(pool.run(handler, ctx("1"), {"seconds": 0.5}))
    queued = asyncio.ensure_future(pool.run(handler, ctx("2"), {"seconds": 0.5}))
    assert await running == 0.5 and await queued == 0.5  # one child, one after the other
    pids = pool.pids()
    running = asyncio.ensure_future(pool.run(handler, ctx("3"), {"seconds": 60}))
    await asyncio.sleep(0.3)  # the warm child has taken it
    queued = asyncio.ensure_future(pool.run(handler, ctx("4"), {"seconds": 0.5}))
    await asyncio.sleep(0)
    started = time.monotonic()
    await pool.close()
    assert time.monotonic() - started < 5
    with pytest.raises(ProcessPoolClosed):
        await queued
    with pytest.raises(Exception, match="process executor: child killed by signal SIGTERM"):
        await running
    assert pool.pids() == [] and all(gone(p) for p in pids)
