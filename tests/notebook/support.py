"""Test support: run the shipped notebooks like a user would, and wait for conditions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
#: Environment variables the notebooks read; cleared so the caller's shell cannot leak in.
FORGE_ENV = ("FORGE_NB_DATABASE_URL", "FORGE_NB_DATA_DIR", "FORGE_NB_QUEUES")


def kernel_env(**overrides: str) -> dict[str, str]:
    """This process's environment without forge-nb settings, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k not in FORGE_ENV}
    env.update(overrides)
    return env


def load(name: str) -> Any:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def execute(nb: Any, cwd: Path, env: dict[str, str], timeout: int = 120) -> Any:
    """Execute every cell (raises `CellExecutionError` on the first failing cell)."""
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute(env=env, cwd=str(cwd))
    return nb


def outputs(nb: Any) -> list[dict[str, Any]]:
    """Every output of every code cell, in order."""
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


def text_of(nb: Any) -> str:
    """All printed and plain-text outputs joined (what a reader sees as text)."""
    parts = []
    for out in outputs(nb):
        if "text" in out:
            parts.append(out["text"])
        data = out.get("data", {})
        if "text/plain" in data:
            parts.append(data["text/plain"])
    return "\n".join(parts)


def widget_views(nb: Any) -> list[str]:
    """The model ids of widgets the notebook displayed."""
    return [
        out["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for out in outputs(nb)
        if "application/vnd.jupyter.widget-view+json" in out.get("data", {})
    ]


def execute_twice(nb: Any, cwd: Path, env: dict[str, str], timeout: int = 120) -> Any:
    """Run every cell, then every cell again in the same kernel (a user re-running cells)."""
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3")
    with client.setup_kernel(env=env, cwd=str(cwd)):
        for _ in range(2):
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
    return nb


async def read_app(url: str, fn: Any) -> Any:
    """Open the notebook's database from the test, run ``await fn(app)``, close it."""
    import forge_nb as fnb

    app = fnb.App(url)
    try:
        return await fn(app)
    finally:
        await app.close()


#: App timings that make tests quick (heartbeats, polls and ticks in fractions of a second).
FAST = {"heartbeat_interval": 0.2, "poll_interval": 0.1, "tick_interval": 0.1}


async def eventually(check: Any, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Await ``check()`` until it returns something truthy; fail after ``timeout`` seconds."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        await asyncio.sleep(interval)
