"""Browser fixtures for the notebook tests: one headless Chromium and one JupyterLab per module.

Module scope, not session: Playwright's sync API keeps an event loop running in the
main thread while it is open, which would break every async test that runs after it;
and a JupyterLab left running keeps its kernels busy during the rest of the suite.

JupyterLab runs with every Jupyter directory isolated in a temp dir (no user
settings, no restored workspace), the update check and news off, and the
notebook windowing off so every cell's output is in the DOM.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.notebook.support import NOTEBOOKS, kernel_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"checkForUpdates": False, "fetchNews": "false"},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium (Debian's) for a test module."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Lab:
    """A running JupyterLab: its URL and the directory it serves.

    Each notebook sits in its own folder, so each kernel (whose working directory is
    the notebook's folder) has its own default database, ``<folder>/.forge_nb/forge_nb.db``:
    kernels of different notebooks never run each other's jobs.
    """

    url: str
    root: Path
    dashboard_port: int

    def notebook_path(self, name: str) -> str:
        """The notebook's path in Lab's URL space."""
        return f"{Path(name).stem}/{name}"

    def db_url(self, name: str) -> str:
        """The database the notebook's kernel uses by default."""
        return f"sqlite:///{self.root / Path(name).stem / '.forge_nb' / 'forge_nb.db'}"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """JupyterLab serving a copy of each notebook in its own folder."""
    tmp = Path(tempfile.mkdtemp(prefix="forge_nb_lab_"))
    root = tmp / "work"
    for notebook in NOTEBOOKS.glob("*.ipynb"):
        (root / notebook.stem).mkdir(parents=True)
        shutil.copy(notebook, root / notebook.stem / notebook.name)
    settings = tmp / "app_settings"
    settings.mkdir()
    (settings / "overrides.json").write_text(json.dumps(LAB_OVERRIDES))
    port = free_port()
    dashboard_port = free_port()
    env = kernel_env(
        FORGE_NB_DASHBOARD_PORT=str(dashboard_port),
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_DATA_DIR=str(tmp / "data_jupyter"),
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
            "--ServerApp.token=",
            "--ServerApp.password=",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.app_settings_dir={settings}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"JupyterLab did not start:\n{(tmp / 'lab.log').read_text()}")
                time.sleep(0.1)
        yield Lab(url=url, root=root, dashboard_port=dashboard_port)
    finally:
        proc.send_signal(signal.SIGTERM)  # Lab shuts its kernels down on the way out
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if os.environ.get("FORGE_NB_KEEP_LAB_LOG"):
            print(f"JupyterLab log kept in {tmp / 'lab.log'}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
