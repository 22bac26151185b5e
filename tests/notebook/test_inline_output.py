"""The dashboard as a notebook output: its changes reach the browser in order.

- Until the browser renders an output and opens its comm, Panel keeps each message for
  it on a timer of its own; a tick pushed as the comm opened overtook them, and BokehJS
  left the Overview's table blank. Ticks now wait for the comm.
- ipykernel 7 may hand the browser's messages to a subshell's thread; Panel then changed
  the output's models there while ticks changed them on the kernel's loop. They are now
  handled on the kernel's loop.

Rendered here as in a kernel, without a browser (Panel's own message handling, fed the
message a browser sends); the browser half is tests/notebook/test_browser.py's dashboard
test, in JupyterLab.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path
from typing import Any

import forge_nb as fnb
from forge_nb import compat
from forge_nb.dashboard.app import TICK_MS, Dashboard
from forge_nb.notebook.serving import inline_dashboard


async def test_an_output_whose_browser_has_not_connected_is_not_updated(tmp_path: Path) -> None:
    app = fnb.App(f"sqlite:///{tmp_path}/jobs.db")
    await app.storage()
    output = inline_dashboard(app)
    shown: Dashboard = output._on_shown.__self__  # type: ignore[union-attr]
    output._repr_mimebundle_()  # rendered as a notebook output: its comm waits for a browser
    hidden = Dashboard(app)  # shown nowhere: its ticks have no output to wait for
    try:
        assert compat.output_comms_open(shown.layout) == [False]
        assert compat.output_comms_open(hidden.layout) == []
        assert hidden._outputs_ready(), "shown nowhere: nothing to wait for"
        assert not shown._outputs_ready()
        await asyncio.sleep(2 * TICK_MS / 1000)  # the first tick and a periodic one
        assert "live" in hidden.header.object, "a dashboard shown nowhere ticks"
        assert "live" not in shown.header.object, "the waiting output got a tick's changes"
        assert not shown.overview.processes.settled  # its table has not joined the page
    finally:
        for board in (shown, hidden):
            board._callback.stop()
        await app.close()


async def test_a_message_from_another_thread_is_handled_on_the_kernel_loop(
    tmp_path: Path,
) -> None:
    app = fnb.App(f"sqlite:///{tmp_path}/jobs.db")
    await app.storage()
    output = inline_dashboard(app)
    board: Dashboard = output._on_shown.__self__  # type: ignore[union-attr]
    output._repr_mimebundle_()
    handled_on: list[int] = []
    board.tabs.param.watch(lambda _e: handled_on.append(threading.get_ident()), "active")
    try:
        ((tabs_model, _parent),) = board.tabs._models.values()
        ((_comm, client),) = output._comms.values()
        cron = [slot.title for slot in board.slots].index("Cron")
        # What BokehJS sends when the Cron tab is clicked: a PATCH-DOC of the Tabs' active.
        message: dict[str, Any] = {
            "header": {"msgtype": "PATCH-DOC", "msgid": uuid.uuid4().hex},
            "metadata": {},
            "content": {
                "events": [
                    {
                        "kind": "ModelChanged",
                        "model": {"id": tabs_model.id},
                        "attr": "active",
                        "new": cron,
                    }
                ]
            },
            "_buffers": {},
        }
        subshell = threading.Thread(target=client._on_msg, args=(message,))
        subshell.start()
        subshell.join()
        assert board.tabs.active == 0, "handled on the thread it arrived on"
        for _ in range(50):
            await asyncio.sleep(0.02)
            if handled_on:
                break
        assert board.tabs.active == cron
        assert handled_on == [threading.get_ident()]  # this test's loop: the kernel's
        assert board.slots[cron].page is not None  # the tab's page was built for it
    finally:
        board._callback.stop()
        await app.close()
