"""Jobs for `forge-nb worker --app tests.dashboard.obsjobs:app` in the issue-21 browser tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import forge_nb as fnb

app = fnb.App()


@app.job(kind="obs.tail", queue="tail")
async def tail(ctx: fnb.JobCtx, gate: str) -> None:
    """Print a line, wait until the file ``gate`` exists, print another."""
    print("tail line one", flush=True)
    while not Path(gate).exists():
        await asyncio.sleep(0.05)
    print("tail line two", flush=True)
