"""``%load_ext forge_nb`` and every ``%fnb`` form, in a real kernel run by nbclient."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

import forge_nb as fnb
from tests.notebook.support import execute, kernel_env, text_of

CELLS = [
    """
import forge_nb as fnb
%load_ext forge_nb
app = fnb.App("sqlite:///{db}")
other = fnb.App("sqlite:///{other}")   # created last: the default target
app2 = app

@app.job(queue="default")
async def score(ctx, n: int) -> int:
    if n < 0:
        raise ValueError("negative")
    return n * 2
""",
    "%fnb enqueue score '{\"n\": 3}' --app app",
    "%fnb enqueue score '{\"m\": 3}' --app app",  # does not fit score(n): refused
    "%fnb enqueue score '{\"n\": -1}' --app app",
    "t = %fnb --app app\nprint(t.to_dict(orient='index'))",
    "df = %fnb jobs --status pending --app app\nprint(sorted(df['kind']), len(df))",
    """
handle = await app.start()
import asyncio
for _ in range(200):
    c = (await app.counts())["default"]
    if c["done"] == 1 and c["dead"] + c["failed"] == 1:
        break
    await asyncio.sleep(0.1)
await app.set_queue_config("default", backoff_enabled=False)
""",
    """
for _ in range(200):
    if (await app.counts())["default"]["dead"] == 1:
        break
    await asyncio.sleep(0.1)
print("dead:", (await app.counts())["default"]["dead"])
""",
    "said = %fnb retry --all-dead --app app\nprint(said)",
    "%fnb widget --app app",
    "t = %fnb\nprint(t)",  # `other`: empty
    "%fnb frobnicate",
    "print(get_ipython().find_line_magic('fnb').__doc__)",  # what %fnb? pages
    "await handle.shutdown(5); await app.close(); await other.close()",
]


@pytest.mark.slow
def test_every_magic_in_a_kernel(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    db, other = tmp_path / "jobs.db", tmp_path / "other.db"
    nb.cells = [
        nbformat.v4.new_code_cell(c.strip().replace("{db}", str(db)).replace("{other}", str(other)))
        for c in CELLS
    ]
    nb.cells[3].metadata["tags"] = ["raises-exception"]
    execute(nb, tmp_path, kernel_env(), timeout=120)
    out = [text_of(nbformat.from_dict({"cells": [c], "metadata": {}})) for c in nb.cells]

    assert any(  # a JobRef: its live view
        "application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in nb.cells[1].outputs
    ), out[1]
    assert "%fnb:" in out[2] and "n" in out[2]  # the signature error, one line
    assert "'default': {'waiting': 0, 'pending': 2" in out[4] and "'total': 2" in out[4]
    assert "['score', 'score'] 2" in out[5]
    assert "dead: 1" in out[7]
    assert "retrying 1 dead job" in out[8]
    widget_cell = nb.cells[9].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in widget_cell)
    assert "Empty DataFrame" in out[10] or "total" in out[10]
    assert "unknown %fnb command 'frobnicate'" in out[11]
    help_text = out[12]
    assert "%fnb jobs --status dead" in help_text and "--app NAME" in help_text

    async def check() -> None:
        async with fnb.App(f"sqlite:///{db}") as app:
            counts = (await app.counts())["default"]
            assert counts["done"] == 1 and sum(counts.values()) == 2
            [failing] = [j for j in await app.jobs(kind="score") if j.payload == {"n": -1}]
            events = [e.event for e in await app.job_history(failing.id)]
            assert "retried" in events, events  # by %fnb retry --all-dead
        async with fnb.App(f"sqlite:///{other}") as app:
            assert sum(sum(c.values()) for c in (await app.counts()).values()) == 0

    import asyncio

    asyncio.run(check())
