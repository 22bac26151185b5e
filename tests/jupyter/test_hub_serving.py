"""``app.serve_dashboard()`` under JupyterHub / Binder: a URL the visitor's browser can open.

A real Jupyter server with jupyter-server-proxy plays the hub's user server; the kernel's
loop is a thread's here. The URL must be the server's own proxy path, and Mission Control
must work through it: page, assets and the live websocket, with the proxy's Host and origin.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

import forge_nb as fnb
from tests.dashboard.support import free_port, wait_for
from tests.jupyter.conftest import TOKEN, Lab

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_serve_dashboard_answers_through_the_hub_proxy(
    page: Any, lab: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/")  # this server's base_url
    port = free_port()
    box: dict[str, Any] = {}
    ready = threading.Event()

    async def kernel() -> None:
        async with fnb.App(lab.db_url) as app:
            box["url"] = app.serve_dashboard(port=port)
            box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            await box["stop"].wait()
            from forge_nb.notebook.serving import stop_dashboard

            stop_dashboard(port)

    thread = threading.Thread(target=lambda: asyncio.run(kernel()), daemon=True)
    thread.start()
    assert ready.wait(60)
    try:
        assert box["url"] == f"/proxy/{port}/"
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.goto(f"{lab.url}{box['url']}?token={TOKEN}")
        page.locator("canvas").first.wait_for(timeout=90_000)
        page.get_by_text("Dead", exact=True).first.wait_for()
        wait_for(lambda: any(f"/proxy/{port}/ws" in url for url in sockets), timeout=30)
        # Live: the header's "● live" marker is up through the proxied websocket.
        wait_for(lambda: page.get_by_text("● live").count() > 0, timeout=60)
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)
