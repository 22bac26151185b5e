"""The runtime on a real Jupyter kernel's loop, driven like a person at a notebook.

nbclient runs cells back to back; here a kernel is driven cell by cell with
jupyter_client, with idle gaps between cells, and the test watches the
database from outside the kernel (its own connection to the SQLite file).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel

from tests.notebook.support import eventually, kernel_env, read_app


class Kernel:
    """One ipykernel; `run` executes a cell and returns its printed text (raises on error)."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(cwd), env=env)

    def run(self, code: str, timeout: float = 60) -> str:
        out: list[str] = []
        errors: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            content = msg["content"]
            if msg["msg_type"] == "stream":
                out.append(content["text"])
            elif msg["msg_type"] == "error":
                errors.append("\n".join(content["traceback"]))

        reply = self.kc.execute_interactive(
            textwrap.dedent(code), timeout=timeout, output_hook=hook
        )
        if reply["content"]["status"] != "ok" or errors:
            raise AssertionError(f"cell failed:\n{''.join(errors) or reply['content']}")
        return "".join(out)

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(tmp_path, kernel_env(FORGE_NB_DATA_DIR=str(tmp_path / "data")))
    try:
        yield k
    finally:
        k.shutdown()


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'forge_nb.db'}"


SETUP = """
import asyncio, threading, time
import forge_nb as fnb

app = fnb.App(heartbeat_interval=0.5, poll_interval=0.2, tick_interval=0.2)

@app.job(kind="step")
async def step(ctx, n: int) -> int:
    await asyncio.sleep(0.01)
    return n * n

await app.ensure_queue("default", workers=4)
await app.start()
print("started")
"""


async def _done(tmp_path: Path, kind: str) -> int:
    async def count(app: Any) -> int:
        return len(await app.jobs(kind=kind, status="done", limit=1000))

    return int(await read_app(url(tmp_path), count))


async def test_workers_make_progress_while_the_kernel_is_idle(
    kernel: Kernel, tmp_path: Path
) -> None:
    assert "started" in kernel.run(SETUP)
    kernel.run("refs = await step.enqueue_many([(n,) for n in range(200)])")
    # No cell runs from here on: only the kernel's idle loop can finish the jobs.

    async def all_done() -> bool:
        return await _done(tmp_path, "step") == 200

    await eventually(all_done, timeout=60, interval=0.2)
    out = kernel.run("print(sum([await r.wait() for r in refs]))")
    assert out.strip() == str(sum(n * n for n in range(200)))


async def test_workers_make_progress_while_a_cell_awaits(kernel: Kernel, tmp_path: Path) -> None:
    kernel.run(SETUP)
    out = kernel.run(
        """
        refs = await step.enqueue_many([(n,) for n in range(100)])
        results = await asyncio.gather(*(r.wait() for r in refs))  # the cell awaits; jobs run
        print(len(results), sum(results))
        """
    )
    assert out.split() == ["100", str(sum(n * n for n in range(100)))]


async def test_a_sync_job_does_not_freeze_the_kernel(kernel: Kernel, tmp_path: Path) -> None:
    kernel.run(SETUP)
    kernel.run(
        """
        gate = threading.Event()
        ticks = 0

        async def ticker():
            global ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.02)

        @app.job(kind="blocking")
        def blocking(ctx) -> str:
            # Plain (sync) function: runs in a worker thread and blocks it, not the loop.
            return "released" if gate.wait(60) else "timed out"

        ref = await blocking.enqueue()
        """
    )

    async def running(app: Any) -> bool:
        return bool(await app.jobs(kind="blocking", status="running"))

    await eventually(lambda: read_app(url(tmp_path), running), timeout=30)
    # The job now blocks its thread until a later cell opens the gate: if it froze the
    # kernel, the next cells could never run and this test would time out.
    kernel.run("ticker_task = asyncio.get_running_loop().create_task(ticker())")
    out = kernel.run(
        """
        before = ticks
        await asyncio.sleep(0.3)
        print("loop ticking:", ticks > before, "| job:", await ref.status())
        """
    )
    assert out.strip() == "loop ticking: True | job: running"
    kernel.run("gate.set()")
    assert kernel.run("print(await ref.wait(timeout=30))").strip() == "released"


async def test_the_widget_keeps_updating_while_the_kernel_is_idle(
    kernel: Kernel, tmp_path: Path
) -> None:
    kernel.run(SETUP)
    kernel.run(
        """
        @app.job(kind="slower")
        async def slower(ctx, n: int) -> int:
            await asyncio.sleep(0.05)
            return n

        w = app.widget()
        seen = []  # the done count of every update the widget pushes
        w.observe(lambda change: seen.append(change.new[0]["counts"]["done"]), "queues")
        refs = await slower.enqueue_many([(n,) for n in range(100)])
        """
    )

    async def all_done() -> bool:
        return await _done(tmp_path, "slower") == 100

    await eventually(all_done, timeout=60, interval=0.2)
    # No cell ran since the enqueue: any update with jobs done was pushed while idle.
    out = kernel.run("print(w.live, any(done > 0 for done in seen))")
    assert out.split() == ["True", "True"]
