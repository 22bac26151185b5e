"""JupyterLab in headless Chromium: a dead job's view shows its typed error and, behind a
toggle, its traceback; after a kernel restart every widget of the old kernel says "stopped"."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.notebook.conftest import Lab
from tests.notebook.test_browser import LONG_MS, open_notebook, run_all_cells, shutdown_kernels

#: JupyterLab's start, a cold kernel and a real browser on 2 busy cores.
pytestmark = pytest.mark.timeout(300)

CELLS = [
    """
import asyncio
import forge_nb as fnb

app = fnb.App(heartbeat_interval=0.5)

@app.job(kind="lookup", max_attempts=1)
def lookup(ctx, key: str) -> int:
    import pandas as pd
    return int(pd.DataFrame({"present": [1, 2]})[key].sum())

@app.job(kind="slow")
async def slow(ctx) -> None:
    await asyncio.sleep(3600)

await app.start()
""",
    "app.widget()",
    'ref = await lookup.enqueue("missing")\nref',
    "slow_ref = await slow.enqueue()\nslow_ref",
]


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    try:
        yield pg
    finally:
        shutdown_kernels(pg)
        context.close()


def test_error_traceback_toggle_and_stopped_widgets_after_a_kernel_restart(
    page: Any, lab: Lab
) -> None:
    import nbformat
    from playwright.sync_api import expect

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    (lab.root / "lifecycle").mkdir()
    nbformat.write(nb, lab.root / "lifecycle" / "lifecycle.ipynb")

    open_notebook(page, lab, "lifecycle.ipynb")
    run_all_cells(page)

    controls = page.locator(".jp-OutputArea-output .fnb-controls")
    expect(controls.locator(".fnb-live")).to_have_text("live", timeout=LONG_MS)

    # The dead job: the error names its type; the traceback waits behind a toggle.
    dead = page.locator(".fnb-jobview").filter(has_text="lookup")
    expect(dead.locator(".fnb-status")).to_have_text("dead", timeout=LONG_MS)
    expect(dead.locator(".fnb-error-text")).to_have_text("KeyError: 'missing'")
    expect(dead.locator(".fnb-live")).to_be_hidden()  # finished: nothing left to follow
    toggle = dead.locator(".fnb-traceback")
    text = toggle.locator(".fnb-traceback-text")
    expect(toggle).to_be_visible()
    expect(text).to_be_hidden()
    toggle.locator("summary").click()
    expect(text).to_be_visible()
    expect(text).to_contain_text("Traceback (most recent call last)")
    expect(text).to_contain_text(re.compile(r"KeyError: 'missing'\s*$"))

    running = page.locator(".fnb-jobview").filter(has_text="slow")
    expect(running.locator(".fnb-status")).to_have_text("running", timeout=LONG_MS)
    expect(running.locator(".fnb-live")).to_have_text("live")

    # Restart the kernel as a person does: Kernel menu, confirm.
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").first.click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Restart Kernel")).first.click()
    page.locator(".jp-Dialog-button.jp-mod-accept").click()

    # Every widget of the old kernel says so, instead of "live" forever.
    expect(controls.locator(".fnb-live")).to_have_text("stopped", timeout=15_000)
    expect(running.locator(".fnb-live")).to_have_text("stopped", timeout=15_000)
    expect(dead.locator(".fnb-live")).to_be_hidden()
    assert page.errors == []
