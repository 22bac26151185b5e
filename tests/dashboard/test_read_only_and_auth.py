"""``forge-nb dashboard --read-only --basic-auth``: a login first, then no way to change anything.

Also: the dashboard refuses to bind beyond loopback without credentials.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import forge_nb as fnb
from forge_nb.dashboard.server import UnsafeBinding, build_server, parse_basic_auth
from tests.dashboard.support import (
    Page,
    Seeded,
    Served,
    forge_cli,
    free_port,
    http_get,
    run_sync,
    seed,
    start_server,
    subprocess_env,
    wait_for,
)

USER, PASSWORD = "ops", "s3cret-pass"
#: Labels of every control that changes something somewhere in the dashboard.
MUTATIONS = re.compile(
    r"^(Retry|Delete|Cancel|Save|Pause|Resume|Confirm)\b|selected$|all matching$"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Seeded, Served]]:
    """A read-only dashboard behind a login, on a seeded SQLite file."""
    tmp = tmp_path_factory.mktemp("read-only")
    seeded = run_sync(lambda: seed(f"sqlite:///{tmp}/jobs.db"))
    server = start_server(
        forge_cli(
            "dashboard",
            "--db",
            seeded.url,
            "--port",
            str(free_port()),
            "--read-only",
            "--basic-auth",
            f"{USER}:{PASSWORD}",
        ),
        subprocess_env(tmp),
        tmp / "dashboard.log",
    )
    try:
        yield seeded, server
    finally:
        code = server.stop()
    assert code == 0, server.log_text()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_login_is_required_and_the_api_takes_basic_credentials(served: Any) -> None:
    _seeded, server = served
    status, _ = http_get(server.url)
    assert status == 302  # to the login page
    assert http_get(server.url + "api/counts")[0] == 401
    assert http_get(server.url + "api/counts", basic(USER, "wrong"))[0] == 401
    status, body = http_get(server.url + "api/counts", basic(USER, PASSWORD))
    assert status == 200
    assert json.loads(body)["work"]["dead"] == 26


def test_read_only_api_refuses_changes(served: Any) -> None:
    import urllib.error
    import urllib.request

    seeded, server = served
    request = urllib.request.Request(
        server.url + f"api/jobs/{seeded.xss_job}/retry",
        method="POST",
        data=b"{}",
        headers={**basic(USER, PASSWORD), "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403

    async def status(app: fnb.App) -> str:
        return str((await app.job(seeded.xss_job)).status)

    async def read(app_url: str) -> str:
        async with fnb.App(app_url) as app:
            return await status(app)

    assert run_sync(lambda: read(seeded.url)) == "dead"


def test_read_only_pages_show_no_mutation_controls(served: Any, page: Page) -> None:
    _seeded, server = served
    page.page.goto(server.url)
    page.page.locator("input[name='username']").fill(USER)
    page.page.locator("input[name='password']").fill(PASSWORD)
    page.page.locator("button[type='submit'], input[type='submit']").first.click()
    page.page.locator(".fnb-header-pane").wait_for()
    wait_for(lambda: "read-only" in page.text(".fnb-header-pane"))
    page.page.locator("canvas").first.wait_for()

    def mutation_buttons() -> list[str]:
        labels = [b.strip() for b in page.page.locator("button").all_inner_texts()]
        return [label for label in labels if MUTATIONS.search(label)]

    for title, ready in [
        ("Dead", ".fnb-table-dead .tabulator-row"),
        ("Retries", ".fnb-table-retries .tabulator-row"),
        ("Scheduled", ".fnb-table-scheduled .tabulator-row"),
        ("Jobs", ".fnb-table-jobs .tabulator-row"),
        ("Cron", ".fnb-cron-table .tabulator-row"),
        ("Queues", ".fnb-queue-work"),
    ]:
        page.tab(title)
        page.page.locator(ready).first.wait_for()
        assert mutation_buttons() == [], title
        assert page.page.locator(".tabulator-row input[type='checkbox']").count() == 0, title
    # Queue settings are shown but cannot be edited.
    assert page.page.locator(".fnb-workers-work input").first.is_disabled()
    # Cron has no on/off or run-now buttons.
    page.tab("Cron")
    page.page.locator(".fnb-cron-table .tabulator-row").first.wait_for()
    assert (
        page.page.locator("span[title='turn on or off'], span[title='enqueue a run now']").count()
        == 0
    )
    # The inspector shows a dead job, without Retry/Delete.
    page.tab("Dead")
    page.page.locator(".fnb-table-dead .tabulator-cell[tabulator-field='kind']").first.click()
    wait_for(lambda: "Payload" in page.text(".fnb-inspector"))
    assert mutation_buttons() == []


def test_non_loopback_address_needs_credentials(tmp_path: Path) -> None:
    app = fnb.App(f"sqlite:///{tmp_path}/jobs.db")
    with pytest.raises(UnsafeBinding, match="--basic-auth"):
        build_server(app, port=free_port(), address="0.0.0.0")
    assert parse_basic_auth("admin:pw") == {"admin": "pw"}
    with pytest.raises(ValueError, match="user:password"):
        parse_basic_auth("admin:")


def test_cli_refuses_to_expose_the_dashboard_without_auth(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run(
        forge_cli(
            "dashboard",
            "--db",
            f"sqlite:///{tmp_path}/jobs.db",
            "--address",
            "0.0.0.0",
            "--port",
            str(free_port()),
        ),
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "refusing to serve the dashboard on '0.0.0.0' without authentication" in done.stderr
