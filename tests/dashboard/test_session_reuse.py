"""``forge-nb dashboard`` answers a page request from a kept session (Panel's
``reuse_sessions="warm"``): the HTML does not wait for a page build, and the browser
still gets a session of its own that goes live."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import forge_nb as fnb
from forge_nb.dashboard.server import build_server
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

ROOTS = re.compile(r'"roots":(\{[^}]*\})')
SESSION_ID = re.compile(r'"token":"([^"]+)"')


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Seeded, Served]]:
    tmp = tmp_path_factory.mktemp("reuse")
    seeded = run_sync(lambda: seed(f"sqlite:///{tmp}/jobs.db"))
    server = start_server(
        forge_cli("dashboard", "--db", seeded.url, "--port", str(free_port())),
        subprocess_env(tmp),
        tmp / "dashboard.log",
    )
    try:
        yield seeded, server
    finally:
        assert server.stop() == 0, server.log_text()


def page_parts(url: str) -> tuple[list[str], str]:
    """(the ids of the page's root models, the session id its token names)."""
    import base64

    status, html = http_get(url)
    assert status == 200, html[:500]
    roots = ROOTS.search(html)
    token = SESSION_ID.search(html)
    assert roots and token, html[:2000]
    payload = token.group(1).split(".")[0]
    payload += "=" * (-len(payload) % 4)
    session_id = json.loads(base64.urlsafe_b64decode(payload))["session_id"]
    return sorted(json.loads(roots.group(1))), str(session_id)


def test_page_html_comes_from_the_kept_session_with_a_new_session_id(served: Any) -> None:
    _seeded, server = served
    first_roots, first_id = page_parts(server.url)
    second_roots, second_id = page_parts(server.url)
    # Rendered from the same kept document (a page build per request would make new
    # models, new ids) …
    assert second_roots == first_roots
    assert len(first_roots) >= 3  # the template's parts, the dashboard among them
    # … but each answer names a session of its own.
    assert second_id != first_id


def test_a_reused_page_goes_live_with_its_own_session(served: Any, page: Page) -> None:
    seeded, server = served
    page_parts(server.url)  # a kept session exists: the browser's page reuses its HTML
    page.open(server.url, tab="dead")  # ?tab= travels in the new session's token
    page.page.locator(".fnb-table-dead .tabulator-row").first.wait_for()
    wait_for(lambda: "live" in page.text(".fnb-header-pane"))
    page.tab("Overview")
    dead = sum(statuses["dead"] for statuses in seeded.counts.values())
    wait_for(lambda: re.search(rf"\b{dead:,} dead", page.text(".fnb-status-strip")))
    # The new session's stylesheets come from this server, not the CDN: the page fixture
    # fails the test on any failed request.
    page.page.reload()  # still ?tab=dead
    page.page.locator(".fnb-table-dead .tabulator-row").first.wait_for()


def test_a_notebook_server_leaves_panels_session_reuse_alone(tmp_path: Path) -> None:
    import panel as pn

    before = pn.config.reuse_sessions
    app = fnb.App(f"sqlite:///{tmp_path}/jobs.db")
    server = build_server(app, port=free_port())  # as app.serve_dashboard does
    try:
        assert pn.config.reuse_sessions == before
    finally:
        server.unlisten()
        run_sync(app.close)
