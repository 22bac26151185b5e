"""forge-nb in a real JupyterLab, driven in headless Chromium.

Lab runs with jupyter-server-proxy and the built labextension (tests/jupyter/conftest.py).
Mission Control is started by jupyter-server-proxy on the first request to
``/forge-nb/``, on a Unix socket, and every request and the websocket go through Lab's
own server (same origin as Lab, behind its token).
"""

from __future__ import annotations

import itertools
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

import forge_nb as fnb
from forge_nb.runtime.refs import EnqueueRequest
from tests.dashboard.support import DEEP_TEXT_JS, SCREENSHOTS, query, wait_for
from tests.jupyter.conftest import TOKEN, Lab

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

#: Lab's first page, the proxy starting the dashboard, a page build: on 2 busy cores.
LONG_MS = 150_000
STATUSES = ("waiting", "pending", "running", "failed", "dead", "done")
#: In-page timing of the sidebar's API requests (resource timing sees every fetch).
API_STARTS_JS = """() => performance.getEntriesByType("resource")
    .filter(e => e.name.includes("/forge-nb/api/"))
    .map(e => e.startTime)"""


def open_lab(page: Any, lab: Lab) -> None:
    page.goto(lab.lab_url())
    page.locator(".jp-LabShell").wait_for(timeout=LONG_MS)
    page.locator(".jp-Launcher").wait_for(timeout=LONG_MS)


def open_sidebar(page: Any) -> Any:
    page.locator(".jp-SideBar .lm-TabBar-tab[data-id='forge-nb-sidebar']").click()
    sidebar = page.locator("#forge-nb-sidebar")
    sidebar.wait_for(state="visible")
    return sidebar


def shown_counts(sidebar: Any) -> dict[str, dict[str, int]]:
    """The numbers the sidebar shows, per queue and status."""
    return dict(
        sidebar.evaluate(
            """el => Object.fromEntries([...el.querySelectorAll(".fnb-lab-queue")].map(row => [
                row.dataset.queue,
                Object.fromEntries([...row.querySelectorAll(".fnb-lab-count")].map(
                    c => [c.dataset.status, Number(c.querySelector(".fnb-lab-n").textContent)]))
            ]))"""
        )
    )


def db_counts(lab: Lab) -> dict[str, dict[str, int]]:
    return dict(query(lab.db_url, lambda app: app.counts()))


def paused(lab: Lab, name: str) -> bool:
    async def read(app: fnb.App) -> bool:
        return next(q.paused for q in await app.queues() if q.name == name)

    return bool(query(lab.db_url, read))


def screenshot(page: Any, tmp: Path, name: str) -> None:
    """Into the test's tmp dir; into docs/screenshots with FORGE_NB_UPDATE_SCREENSHOTS=1."""
    path = tmp / name
    page.screenshot(path=str(path))
    if os.environ.get("FORGE_NB_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / name).write_bytes(path.read_bytes())


def src(iframe: Any, lab: Lab) -> str:
    """An iframe's URL without Lab's origin (Lab's base URL is absolute)."""
    return str(iframe.get_attribute("src")).removeprefix(lab.url)


def header_text(frame: Any) -> str:
    return str(frame.locator(".fnb-header-pane").first.evaluate(DEEP_TEXT_JS))


def test_the_launcher_tile_opens_mission_control_live_through_the_proxy(
    page: Any, lab: Lab, tmp_path: Path
) -> None:
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    open_lab(page, lab)
    tile = page.locator(".jp-LauncherCard", has_text="Mission Control")
    tile.wait_for()
    assert "/server-proxy/icon/forge-nb" in (tile.locator("img").get_attribute("src") or "")
    screenshot(page, tmp_path, "lab-launcher.png")
    tile.click()

    iframe = page.locator(".jp-MainAreaWidget iframe[src*='/forge-nb/']")
    iframe.wait_for(timeout=LONG_MS)
    assert src(iframe, lab) == "/forge-nb/"
    frame = page.frame_locator(".jp-MainAreaWidget iframe[src*='/forge-nb/']")
    frame.locator("canvas").first.wait_for(timeout=LONG_MS)
    # Live over the proxied websocket: the header's "updated …" clock moves on.
    first = header_text(frame)
    assert "sqlite" in first and str(lab.root) in first  # the tree's database, not the cwd's
    wait_for(lambda: header_text(frame) != first and "● live" in header_text(frame), timeout=60)
    assert any(url.startswith(lab.url.replace("http", "ws") + "/forge-nb/ws") for url in sockets)

    # Same origin as Lab, so the dashboard's own framing rule lets Lab show it.
    reply = page.request.get(f"{lab.url}/forge-nb/?token={TOKEN}")
    assert reply.status == 200
    assert reply.headers["content-security-policy"] == "frame-ancestors 'self'"
    assert reply.headers["x-frame-options"] == "SAMEORIGIN"
    # Without Lab's token (or its cookie), the proxy lets nothing through.
    anonymous = page.context.browser.new_context()
    try:
        denied = anonymous.request.get(f"{lab.url}/forge-nb/api/counts", max_redirects=0)
        assert denied.status in (302, 403), denied.status
    finally:
        anonymous.close()


def test_the_sidebar_shows_live_counts_and_pauses_queues(
    page: Any, lab: Lab, tmp_path: Path
) -> None:
    open_lab(page, lab)
    sidebar = open_sidebar(page)
    sidebar.locator(".fnb-lab-queue[data-queue='mail']").wait_for(timeout=LONG_MS)
    expected = db_counts(lab)
    assert shown_counts(sidebar) == {q: {s: expected[q][s] for s in STATUSES} for q in expected}

    # New jobs: the sidebar follows within a poll or two.
    async def enqueue(app: fnb.App) -> None:
        await app.enqueue_many(
            [EnqueueRequest(kind="send", queue="mail", payload={"late": i}) for i in range(5)]
        )

    query(lab.db_url, enqueue)
    expected = db_counts(lab)
    wait_for(lambda: shown_counts(sidebar)["mail"]["pending"] == expected["mail"]["pending"])
    assert shown_counts(sidebar) == {q: {s: expected[q][s] for s in STATUSES} for q in expected}
    screenshot(page, tmp_path, "lab-sidebar.png")

    # Pause and resume through the proxied API (PATCH /forge-nb/api/queues/mail).
    mail = sidebar.locator(".fnb-lab-queue[data-queue='mail']")
    mail.locator("button[data-action='pause']").click()
    wait_for(lambda: paused(lab, "mail"))
    mail.locator(".fnb-lab-badge").wait_for(state="visible")
    mail.locator("button[data-action='resume']").click()
    wait_for(lambda: not paused(lab, "mail"))
    mail.locator(".fnb-lab-badge").wait_for(state="hidden")
    assert not paused(lab, "reports")


def test_the_sidebar_polls_at_most_every_two_seconds_and_only_while_shown(
    page: Any, lab: Lab
) -> None:
    open_lab(page, lab)
    sidebar = open_sidebar(page)
    sidebar.locator(".fnb-lab-queue").first.wait_for(timeout=LONG_MS)
    page.wait_for_timeout(9_000)
    starts = page.evaluate(API_STARTS_JS)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(starts) >= 4, starts
    assert min(gaps) >= 1990, gaps  # one request per 2 s at most (timer granularity: 10 ms)

    # Collapsed: no requests at all.
    page.locator(".jp-SideBar .lm-TabBar-tab[data-id='forge-nb-sidebar']").click()
    sidebar.wait_for(state="hidden")
    before = len(page.evaluate(API_STARTS_JS))
    page.wait_for_timeout(5_000)
    assert len(page.evaluate(API_STARTS_JS)) == before

    # Shown again but the browser tab hidden: none either; visible again: polling resumes.
    open_sidebar(page)
    page.evaluate(
        """() => {
            Object.defineProperty(document, "visibilityState", {value: "hidden", configurable: true});
            document.dispatchEvent(new Event("visibilitychange"));
        }"""
    )
    page.wait_for_timeout(2_500)  # a request under way when hidden may still finish
    hidden = len(page.evaluate(API_STARTS_JS))
    page.wait_for_timeout(5_000)
    assert len(page.evaluate(API_STARTS_JS)) == hidden
    page.evaluate(
        """() => {
            Object.defineProperty(document, "visibilityState", {value: "visible", configurable: true});
            document.dispatchEvent(new Event("visibilitychange"));
        }"""
    )
    wait_for(lambda: len(page.evaluate(API_STARTS_JS)) > hidden, timeout=10)


def test_a_dashboard_tab_opens_as_a_lab_panel(page: Any, lab: Lab) -> None:
    open_lab(page, lab)
    sidebar = open_sidebar(page)
    sidebar.locator(".fnb-lab-tab[data-tab='dead']").click()
    panel = page.locator("#forge-nb-dead")
    panel.wait_for()
    assert src(panel.locator("iframe"), lab) == "/forge-nb/?tab=dead"
    tab_title = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
    assert tab_title.inner_text().strip() == "Mission Control · Dead"
    frame = page.frame_locator("#forge-nb-dead iframe")
    active = frame.locator(".bk-tab.bk-active")
    active.wait_for(timeout=LONG_MS)
    assert active.inner_text().strip() == "Dead"
    # Again from the sidebar: the open panel comes to the front, no second one.
    sidebar.locator(".fnb-lab-tab[data-tab='queues']").click()
    page.locator("#forge-nb-queues").wait_for()
    sidebar.locator(".fnb-lab-tab[data-tab='dead']").click()
    wait_for(lambda: page.locator("#forge-nb-dead").is_visible())
    assert page.locator("#forge-nb-dead").count() == 1


def test_dark_lab_opens_dark_dashboards_and_follows_a_theme_change(
    page: Any, lab: Lab, tmp_path: Path
) -> None:
    lab.set_theme("JupyterLab Dark")
    try:
        open_lab(page, lab)
        assert page.locator("body").get_attribute("data-jp-theme-light") == "false"
        sidebar = open_sidebar(page)
        sidebar.locator(".fnb-lab-queue").first.wait_for(timeout=LONG_MS)
        sidebar.locator(".fnb-lab-tab[data-tab='overview']").click()
        iframe = page.locator("#forge-nb-overview iframe")
        iframe.wait_for()
        assert src(iframe, lab) == "/forge-nb/?tab=overview&theme=dark"
        frame = page.frame_locator("#forge-nb-overview iframe")
        frame.locator("canvas").first.wait_for(timeout=LONG_MS)
        # Panel's dark design: the page background is dark inside the panel too.
        background = frame.locator("body").evaluate("b => getComputedStyle(b).backgroundColor")
        channels = [int(c) for c in re.findall(r"\d+", background)[:3]]
        assert sum(channels) < 3 * 100, background
        page.wait_for_timeout(3_000)  # let the charts fill in before the picture
        screenshot(page, tmp_path, "lab-dark.png")

        # Lab switches to light: open panels reload in the light theme.
        page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Theme$")).first.click()
        page.locator(".lm-Menu-itemLabel", has_text="JupyterLab Light").first.click()
        deadline = time.monotonic() + 30
        while src(iframe, lab) != "/forge-nb/?tab=overview":
            assert time.monotonic() < deadline, src(iframe, lab)
            page.wait_for_timeout(200)
    finally:
        lab.set_theme("JupyterLab Light")
