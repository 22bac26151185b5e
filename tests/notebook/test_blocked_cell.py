"""In a real kernel, a cell that blocks the loop is named as the cause (by its In[n] and
line), not the plain-def job running in a thread meanwhile."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.notebook.support import kernel_env
from tests.notebook.test_kernel_loop import Kernel


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(tmp_path, kernel_env(FORGE_NB_DATA_DIR=str(tmp_path / "data")))
    try:
        yield k
    finally:
        k.shutdown()


async def test_the_warning_names_the_blocking_cell(kernel: Kernel) -> None:
    kernel.run(
        """
        import asyncio, logging, threading, time
        import forge_nb as fnb

        warnings = []
        handler = logging.Handler()
        handler.emit = lambda record: warnings.append(record.getMessage())
        logging.getLogger("forge_nb.runtime").addHandler(handler)

        app = fnb.App(heartbeat_interval=0.5, poll_interval=0.1, tick_interval=0.2)
        gate = threading.Event()

        @app.job(kind="crunch")
        def crunch(ctx) -> str:  # plain def: runs in a thread
            gate.wait(60)
            return "ok"

        await app.start()
        ref = await crunch.enqueue()
        while await ref.status() != "running":
            await asyncio.sleep(0.05)
        """
    )
    kernel.run("x = 1\ntime.sleep(1.0)  # a cell that blocks the loop")
    out = kernel.run(
        """
        await asyncio.sleep(0.5)
        gate.set()
        print(await ref.wait(timeout=30))
        print([w for w in warnings if "blocked" in w])
        """
    )
    result, found = out.strip().splitlines()
    assert result == "ok"
    assert "by notebook cell In[2], line 2 (`time.sleep(1.0)  # a cell that blocks" in found, found
    assert "crunch" not in found and "plain def" not in found, found
