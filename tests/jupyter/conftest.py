"""A real JupyterLab with jupyter-server-proxy and the built forge-nb labextension.

One Lab per test module (with a token, every Jupyter directory isolated in a temp dir,
no update check or news), started from a directory other than its ``root_dir`` so the
proxied Mission Control must find ``<root_dir>/.forge_nb/forge_nb.db`` on its own. The
extension is the build output (``labextension/build/labextension``) linked into Lab's
isolated data dir, where Lab looks for prebuilt extensions first.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

import forge_nb as fnb
from forge_nb.runtime.refs import EnqueueRequest
from tests.dashboard.support import CHROMIUM, CHROMIUM_ARGS, free_port, run_sync
from tests.notebook.support import REPO, kernel_env

BUILT = REPO / "labextension" / "build" / "labextension"
TOKEN = "forge-nb-lab-test-token"
LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"checkForUpdates": False, "fetchNews": "false"},
}
THEME_SETTINGS = Path("@jupyterlab") / "apputils-extension" / "themes.jupyterlab-settings"


@dataclass
class Lab:
    """A running JupyterLab: its URL, the tree it serves and that tree's default database."""

    url: str
    root: Path
    settings: Path
    process: subprocess.Popen[bytes]

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.root / '.forge_nb' / 'forge_nb.db'}"

    def lab_url(self, path: str = "lab") -> str:
        return f"{self.url}/{path}?reset&token={TOKEN}"

    def set_theme(self, theme: str) -> None:
        """Lab's theme for the next page load (user settings are read per request)."""
        path = self.settings / THEME_SETTINGS
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"theme": theme}))


async def seed(url: str) -> dict[str, dict[str, int]]:
    """Queue ``reports`` worked through once (16 done, 4 dead), then ``mail`` with pending
    jobs; no workers stay on, so the counts change only when a test changes them."""
    app = fnb.App(url, queues=["reports"], heartbeat_interval=0.2, poll_interval=0.05)

    @app.job(kind="build", queue="reports", max_attempts=1)
    async def build(ctx: fnb.JobCtx, n: int) -> int:
        if n % 5 == 4:
            raise ValueError(f"report {n} has no data")
        return n * n

    async with app:
        await app.ensure_queue("reports", workers=4)
        await app.ensure_queue("mail", workers=2)
        await app.enqueue_many(
            [EnqueueRequest(kind="build", queue="reports", payload={"n": i}) for i in range(20)]
        )
        handle = await app.start()
        for _ in range(400):
            reports = (await app.counts())["reports"]
            if reports["pending"] + reports["running"] == 0:
                break
            await asyncio.sleep(0.05)
        await handle.shutdown(5)
        await app.enqueue_many(
            [EnqueueRequest(kind="send", queue="mail", payload={"n": i}) for i in range(7)]
        )
        counts = await app.counts()
    assert counts["reports"]["done"] == 16 and counts["reports"]["dead"] == 4, counts
    return counts


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if not (BUILT / "package.json").is_file():
        pytest.fail("labextension not built: bash scripts/build_labextension.sh", pytrace=False)
    tmp = Path(tempfile.mkdtemp(prefix="forge_nb_jlab_"))
    root = tmp / "tree"
    root.mkdir()
    run_sync(lambda: seed(f"sqlite:///{root / '.forge_nb' / 'forge_nb.db'}"))
    (tmp / "data" / "labextensions").mkdir(parents=True)
    (tmp / "data" / "labextensions" / "forge-nb").symlink_to(BUILT)
    app_settings = tmp / "app_settings"
    app_settings.mkdir()
    (app_settings / "overrides.json").write_text(json.dumps(LAB_OVERRIDES))
    elsewhere = tmp / "started-here"
    elsewhere.mkdir()
    port = free_port()
    env = kernel_env(
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
    )
    log = (tmp / "lab.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            f"--ServerApp.token={TOKEN}",
            "--ServerApp.password=",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.app_settings_dir={app_settings}",
        ],
        env=env,
        cwd=elsewhere,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"JupyterLab did not start:\n{(tmp / 'lab.log').read_text()}")
                time.sleep(0.2)
        yield Lab(url=url, root=root, settings=tmp / "settings", process=proc)
    finally:
        stop_lab(proc)
        log.close()
        assert not (elsewhere / ".forge_nb").exists(), "the dashboard used the cwd, not root_dir"
        if os.environ.get("FORGE_NB_KEEP_LAB_LOG"):
            print(f"JupyterLab log kept in {tmp / 'lab.log'}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def stop_lab(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM Lab; then end whatever it started (the proxied dashboard) if still there."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        child.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium (Debian's) for a test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh context; fails the test on page errors and failed requests (console errors
    of Lab's own are ignored: only forge-nb's count)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    pg.on("requestfailed", lambda r: _failed(r, errors))
    pg.errors = errors
    try:
        yield pg
    finally:
        context.close()
    assert errors == [], "the page reported errors"


def _failed(request: Any, errors: list[str]) -> None:
    # A navigation replaced while loading (an iframe's theme change) is aborted, not failed.
    if request.failure == "net::ERR_ABORTED":
        return
    errors.append(f"request failed: {request.url} {request.failure}")
