"""The other two ways to get Mission Control: ``panel serve`` on the shipped file, and
``forge-nb demo`` (the README's first command): everything in one process, jobs flowing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.dashboard.support import (
    Page,
    forge_cli,
    free_port,
    http_get,
    run_sync,
    save_screenshot,
    seed,
    start_server,
    subprocess_env,
    wait_for,
)


def done_count(page: Page) -> int:
    """The "done" figure of the Overview's status strip."""
    match = re.search(r"([\d,]+) done", page.text(".fnb-status-strip"))
    return int(match.group(1).replace(",", "")) if match else -1


def test_panel_serve_on_the_shipped_file_serves_the_overview(tmp_path: Path, page: Page) -> None:
    seeded = run_sync(lambda: seed(f"sqlite:///{tmp_path}/jobs.db"))
    # The README's way to find the file; importing it must not start anything.
    found = subprocess.run(
        [sys.executable, "-c", "import forge_nb.dashboard.panel_app as m; print(m.__file__)"],
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    app_file = found.stdout.strip().splitlines()[-1]
    assert app_file.endswith("panel_app.py")
    port = free_port()
    server = start_server(
        [
            sys.executable,
            "-m",
            "panel",
            "serve",
            app_file,
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
            "--allow-websocket-origin",
            f"127.0.0.1:{port}",
        ],
        subprocess_env(tmp_path, FORGE_NB_DATABASE_URL=seeded.url),
        tmp_path / "panel.log",
        url=f"http://127.0.0.1:{port}/panel_app",
    )
    try:
        page.open(server.url)
        wait_for(lambda: done_count(page) == 150)
        assert re.search(r"26 dead", page.text(".fnb-status-strip"))
        assert seeded.url.split("///")[-1] in page.text(".fnb-header-pane")
    finally:
        assert server.stop() == 0, server.log_text()


def test_demo_serves_the_dashboard_and_jobs_flow(tmp_path: Path, page: Page) -> None:
    server = start_server(
        forge_cli("demo", "--port", str(free_port()), "--rate", "8"),
        subprocess_env(tmp_path),
        tmp_path / "demo.log",
    )
    try:
        assert "demo.db" in "".join(server.lines)  # its own file under the data dir
        assert (tmp_path / "data" / "demo.db").exists()
        page.open(server.url)
        first = wait_for(lambda: (n := done_count(page)) > 0 and n)
        wait_for(lambda: done_count(page) > first, timeout=30)  # live: the strip keeps rising
        # Workers are live in the same process; the cron schedule is registered.
        status, body = http_get(server.url + "api/processes")
        assert status == 200 and len(json.loads(body)) > 0
        status, body = http_get(server.url + "api/schedules")
        assert "demo-report" in body
        wait_for(lambda: "ms" in page.text(".fnb-latency-cards"), timeout=30)
        if os.environ.get("FORGE_NB_UPDATE_SCREENSHOTS") == "1":
            page.page.wait_for_timeout(100_000)  # a few minute buckets for the README picture
        save_screenshot(page, tmp_path, "overview.png")
    finally:
        code = server.stop()
    assert code == 0, server.log_text()
    assert "stopping" in server.log_text()
