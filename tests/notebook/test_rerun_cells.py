"""Re-running the ``app = fnb.App()`` cell in a real kernel (driven with jupyter_client):
one App runs afterwards, and every job runs on the handlers of the cells run last."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.notebook.support import kernel_env, read_app
from tests.notebook.test_kernel_loop import Kernel

APP_CELL = """
import asyncio, time
import forge_nb as fnb

app = fnb.App(heartbeat_interval=0.5, poll_interval=0.1, tick_interval=0.2)
"""

JOBS_CELL = """
@app.job(kind="score")
async def score(ctx, n: int) -> dict:
    started = time.time()
    await asyncio.sleep(0.2)
    return {{"version": {version}, "started": started}}

await app.ensure_queue("default", workers=2)
await app.start()
"""


class FollowingKernel(Kernel):
    """A `Kernel` that can also wait for output a cell prints after it finished
    (a background task's print lands under the cell that created the task)."""

    def run_and_follow(self, code: str, expect: str, timeout: float = 30) -> str:
        """Run a cell and return its printed text once it holds ``expect`` (or after
        ``timeout`` seconds: the caller checks)."""
        msg_id = self.kc.execute(textwrap.dedent(code))
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while expect not in "".join(out):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                msg = self.kc.get_iopub_msg(timeout=remaining)
            except Exception:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                raise AssertionError("\n".join(msg["content"]["traceback"]))
        reply = self.kc.get_shell_msg(timeout=timeout)
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(out)


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[FollowingKernel]:
    k = FollowingKernel(tmp_path, kernel_env(FORGE_NB_DATA_DIR=str(tmp_path / "data")))
    try:
        yield k
    finally:
        k.shutdown()


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'forge_nb.db'}"


async def test_rerunning_the_app_cell_leaves_one_app_running_the_new_handlers(
    kernel: FollowingKernel, tmp_path: Path
) -> None:
    kernel.run(APP_CELL)
    kernel.run(JOBS_CELL.format(version=1))
    kernel.run(
        """
        refs = await score.enqueue_many([(n,) for n in range(40)])
        await asyncio.sleep(0.5)  # two workers: a few jobs done, two running, the rest pending
        """
    )
    # The user edits the job and runs the cells again, from the App cell down.
    notice = kernel.run_and_follow(
        APP_CELL + "rerun_at = time.time()\n", expect="closed the previous App", timeout=15
    )
    kernel.run(JOBS_CELL.format(version=2))
    kernel.run(
        """
        @app.job(kind="report")
        async def report(ctx) -> str:  # a kind only the new App knows
            return "ok"

        report_ref = await report.enqueue()
        results = [await r.wait(timeout=60) for r in refs]
        print(await report_ref.wait(timeout=30))
        """
    )
    out = kernel.run(
        """
        late_v1 = [r for r in results if r["version"] == 1 and r["started"] > rerun_at]
        hosts = {p.host_id for p in await app.processes()}
        print(len(results), len(late_v1), len(hosts), hosts == {app.host_id})
        print(repr(app))
        """
    )
    first, app_repr = out.strip().splitlines()
    # Every job ended done; none started on the old handlers after the re-run; one host.
    assert first == "40 0 1 True"
    assert "running, queues: default" in app_repr and "2 handlers: report, score" in app_repr

    async def check(app: Any) -> Any:
        return await app.processes(), await app.jobs(status="dead")

    processes, dead = await read_app(url(tmp_path), check)
    assert len({p.host_id for p in processes}) == 1 and dead == []
    # One line under the re-run cell said what happened to the old App.
    assert "forge-nb: closed the previous App on sqlite:///" in notice, notice


async def test_after_a_kernel_restart_reclaimed_jobs_wait_for_their_cell(
    kernel: FollowingKernel, tmp_path: Path
) -> None:
    """The kernel dies mid-job (restart); the new kernel's App reclaims the job at once but
    has no handler for it until its cell is run again: the job waits, attempts unspent
    beyond the lost one, and runs once the cell is."""
    slow_cell = """
    @app.job(kind="slow_sync", max_attempts=3)
    def slow_sync(ctx, seconds: float) -> int:
        time.sleep(seconds if ctx.attempt == 1 else 0.1)  # the kernel dies during the first
        return ctx.attempt
    """
    kernel.run(APP_CELL)
    kernel.run(slow_cell)
    kernel.run(
        """
        await app.start()
        ref = await slow_sync.enqueue(30.0)
        while (await app.job(ref.id)).status != "running":
            await asyncio.sleep(0.05)
        """
    )
    job_id = kernel.run("print(ref.id)").strip()
    kernel.km.restart_kernel(now=True)
    kernel.kc.wait_for_ready(timeout=60)

    kernel.run(APP_CELL)  # the cells above the job's are run again; the job's is not yet
    out = kernel.run(
        f"""
        await app.start()
        job = await app.job({job_id!r})
        while job.last_error != "worker lost":  # reclaimed from the dead kernel
            await asyncio.sleep(0.05)
            job = await app.job({job_id!r})
        await asyncio.sleep(1.5)  # many claims go by: none may take it
        job = await app.job({job_id!r})
        print(job.status, job.attempts, job.last_error)
        print([s.kind for s in await app.stranded_kinds()])
        """
    )
    *_, waiting, stranded = out.strip().splitlines()  # after any notices
    assert waiting in ("pending 1 worker lost", "failed 1 worker lost"), waiting
    assert stranded == "['slow_sync']"

    kernel.run(slow_cell)  # the cell is run again: the job runs, on its second attempt

    async def read(app: Any) -> Any:
        return await app.job(job_id)

    deadline = time.monotonic() + 30
    job = await read_app(url(tmp_path), read)
    while job.status != "done" and time.monotonic() < deadline:
        time.sleep(0.2)
        job = await read_app(url(tmp_path), read)
    assert (job.status, job.attempts, job.result) == ("done", 2, 2)
