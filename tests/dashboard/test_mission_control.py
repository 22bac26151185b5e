"""Mission Control in a real browser against ``forge-nb dashboard`` on a seeded database.

One dashboard subprocess per backend serves every test of this module. Tests that change
data touch only the jobs and queue they name, so they do not depend on each other's order.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import forge_nb as fnb
from tests.dashboard.support import (
    TABS,
    XSS_QUEUE,
    Page,
    Seeded,
    Served,
    backend_url,
    forge_cli,
    free_port,
    http_get,
    query,
    run_sync,
    save_screenshot,
    seed,
    start_server,
    subprocess_env,
    wait_for,
)

#: What each tab shows once it has data (a locator that must become visible).
TAB_READY = {
    "Overview": ".fnb-status-strip",
    "Jobs": ".fnb-table-jobs .tabulator-row",
    "Scheduled": ".fnb-table-scheduled .tabulator-row",
    "Retries": ".fnb-table-retries .tabulator-row",
    "Dead": ".fnb-table-dead .tabulator-row",
    "Cron": ".fnb-cron-table .tabulator-row",
    "Queues": ".fnb-queue-work",
    "Processes": ".fnb-processes-table",
    "Resources": ".fnb-sample-range",
    "DB health": ".fnb-sample-range",
    "Per-queue metrics": ".fnb-expand-work",
    "Workflow": ".fnb-wf-job input",
}


WINDOW_BOX_CENTER_JS = """() => {
  const doc = Bokeh.documents[0];
  const overview = Bokeh.index.find_one(doc.get_model_by_name("timeline_overview"));
  const xr = doc.get_model_by_name("main_x");
  const page = overview.el.getBoundingClientRect();
  const frame = overview.frame.bbox;
  return {
    x: page.left + overview.frame.x_scale.compute((xr.start + xr.end) / 2),
    y: page.top + frame.top + frame.height / 2,
  };
}"""


MINI_FRAME_SIZES_JS = """() => [...Bokeh.documents[0]._all_models.values()]
  .filter((m) => m.type === "Figure" && m.title && m.title.text.includes("jobs/min"))
  .map((m) => {
    const frame = Bokeh.index.find_one(m).frame.bbox;
    return [m.title.text, frame.width, frame.height];
  })"""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Seeded, Served, Path]]:
    """A seeded database and ``forge-nb dashboard`` serving it (stopped with Ctrl-C after)."""
    tmp = tmp_path_factory.mktemp(f"dashboard-{request.param}")
    urls = backend_url(request, request.param, tmp)
    url = next(urls)
    seeded = run_sync(lambda: seed(url))
    server = start_server(
        forge_cli("dashboard", "--db", url, "--port", str(free_port())),
        subprocess_env(tmp),
        tmp / "dashboard.log",
    )
    try:
        yield seeded, server, tmp
    finally:
        code = server.stop()
        urls.close()
    assert code == 0, f"dashboard exited {code} on SIGINT:\n{server.log_text()}"


def label(page: Page, mode: str) -> str:
    """The paging label of a job tab ("page 1 · 26 row(s) of 26 matching")."""
    return page.text(f".fnb-page-{mode}")


def wait_label(page: Page, mode: str, pattern: str) -> str:
    """Wait until the paging label matches ``pattern``."""
    return str(
        wait_for(lambda: re.search(pattern, label(page, mode)) and label(page, mode), timeout=20)
    )


def set_text(page: Page, css: str, value: str) -> None:
    """Type into a Panel text input and commit it (Enter)."""
    box = page.page.locator(f"{css} input").first
    box.fill(value)
    box.press("Enter")


def tick_first_row(page: Page, table: str, button: str, label: str) -> None:
    """Tick the first row's box until ``button`` reads ``label`` (the server has the selection).

    Rows re-sent while the tab settles make the browser drop a tick made meanwhile
    and show the box unticked again; a user then ticks it again, and so does this.
    """
    box = page.page.locator(f".{table} .tabulator-row input[type='checkbox']").first
    target = page.page.locator(f"{button} button")

    def selected() -> bool:
        if target.inner_text() == label:
            return True
        if not box.is_checked():
            box.click()
        return False

    wait_for(selected)


def column(page: Page, table: str, field: str) -> list[str]:
    """Texts of one column's rendered cells."""
    cells = page.page.locator(f".{table} .tabulator-row .tabulator-cell[tabulator-field='{field}']")
    return [c.strip() for c in cells.all_inner_texts()]


def test_every_page_renders_without_errors(served: Any, page: Page) -> None:
    _seeded, server, tmp = served
    page.open(server.url)
    page.page.locator(".fnb-status-strip").wait_for()
    wait_for(lambda: re.search(r"150 done", page.text(".fnb-status-strip")))
    assert re.search(r"26 dead", page.text(".fnb-status-strip"))
    assert page.page.evaluate("Bokeh.documents[0].get_model_by_name('main_x') !== null")
    save_screenshot(page, tmp, "overview-seeded.png", publish=False)
    for title in [*TABS[1:], "Overview"]:
        page.tab(title)
        page.page.locator(TAB_READY[title]).first.wait_for()
    # Scheduled lists only jobs whose time is ahead; the seeded ones are an hour out.
    page.tab("Scheduled")
    wait_label(page, "scheduled", r"30 row\(s\)")
    assert set(column(page, "fnb-table-scheduled", "kind")) == {"report.later"}
    # The HTTP API is served by the same server.
    status, body = http_get(server.url + "api/counts")
    assert status == 200
    assert json.loads(body)["work"]["done"] == 150


def test_filters_narrow_the_jobs_table(served: Any, page: Page) -> None:
    _seeded, server, _ = served
    page.open(server.url, tab="jobs")
    wait_label(page, "jobs", r"50 row\(s\) of 426 matching")

    page.page.locator(".fnb-filter-status select").first.select_option(label="dead")
    wait_label(page, "jobs", r" of 26 matching")
    wait_for(lambda: column(page, "fnb-table-jobs", "status"))
    assert set(column(page, "fnb-table-jobs", "status")) == {"dead"}

    page.page.locator(".fnb-filter-status select").first.select_option(label="(all)")
    set_text(page, ".fnb-filter-kind", "seed.boom")
    wait_label(page, "jobs", r"· 20 row\(s\)$")
    wait_for(lambda: set(column(page, "fnb-table-jobs", "kind")) == {"seed.boom"})

    set_text(page, ".fnb-filter-kind", "")
    set_text(page, ".fnb-filter-search", "bad 1")  # payload substring: bad 1, bad 10 … bad 19
    wait_label(page, "jobs", r"· 11 row\(s\)$")

    set_text(page, ".fnb-filter-search", "")
    page.page.locator(".fnb-filter-queue select").first.select_option(label="default")
    wait_label(page, "jobs", r" of 230 matching")


def test_inspector_shows_payload_and_error_as_text(served: Any, page: Page) -> None:
    seeded, server, _ = served
    page.open(server.url, tab="dead")
    wait_label(page, "dead", r"of 26 matching")
    # The XSS payload is listed as text in the table …
    cells = page.page.locator(".fnb-table-dead .tabulator-cell[tabulator-field='payload']")
    wait_for(lambda: any("onerror" in t for t in cells.all_inner_texts()))
    set_text(page, ".fnb-filter-search", "onerror")
    wait_label(page, "dead", r"· 1 row\(s\)")
    wait_for(lambda: column(page, "fnb-table-dead", "id") == [seeded.xss_job])
    # … and in the inspector, with the error chain, traceback and history.
    page.page.locator(".fnb-table-dead .tabulator-cell[tabulator-field='kind']").first.click()
    wait_for(lambda: "Payload" in page.text(".fnb-inspector"))
    text = page.text(".fnb-inspector")
    assert f"Job {seeded.xss_job}" in text
    assert "<img src=x onerror=" in text
    assert "cannot handle <b>" in text  # the error's HTML is shown, not rendered
    assert "Traceback (most recent call last)" in text
    assert re.search(r"\benqueued\b", text) and re.search(r"\bdead\b", text)
    assert page.page.locator(".fnb-inspector img, .fnb-table-dead img").count() == 0
    # A queue named like markup is shown as text on the Queues page too.
    page.tab("Queues")
    page.page.locator(".fnb-queue-work").wait_for()
    wait_for(lambda: XSS_QUEUE in page.text(".fnb-tabs"))
    assert page.page.locator(".fnb-queue-card img").count() == 0
    assert page.page.evaluate("typeof window.__xss") == "undefined"


def test_retrying_a_dead_job_in_the_ui_changes_the_database(served: Any, page: Page) -> None:
    seeded, server, _ = served
    job_id = seeded.dead_by_note["bad 3"]
    page.open(server.url, tab="dead")
    set_text(page, ".fnb-filter-search", '"bad 3"')
    wait_label(page, "dead", r"· 1 row\(s\)")
    wait_for(lambda: column(page, "fnb-table-dead", "id") == [job_id])
    tick_first_row(page, "fnb-table-dead", ".fnb-retry-selected", "Retry 1 selected")
    retry = page.page.locator(".fnb-retry-selected button")
    retry.click()
    wait_for(lambda: "Retry 1 selected job(s)?" in page.text(".fnb-question-dead"))
    page.page.locator(".fnb-confirm-dead button").click()
    wait_for(lambda: "retry: 1 job(s)" in page.text(".fnb-dead-notice"))

    async def status(app: fnb.App) -> str:
        job = await app.job(job_id)
        return str(job.status)

    assert query(seeded.url, status) == "pending"
    wait_label(page, "dead", r"· 0 row\(s\)")


def test_delete_all_matching_asks_first(served: Any, page: Page) -> None:
    seeded, server, _ = served
    page.open(server.url, tab="dead")
    set_text(page, ".fnb-filter-kind", "seed.fatal")
    set_text(page, ".fnb-filter-search", "bad 2")  # bad 2 and bad 20 … bad 24
    wait_label(page, "dead", r"· 6 row\(s\)")

    async def matching(app: fnb.App) -> int:
        return len(await app.jobs(status="dead", kind="seed.fatal", search="bad 2"))

    page.page.locator(".fnb-delete-matching button").click()
    question = "Delete ALL jobs matching status=dead, kind=seed.fatal, search=bad 2"
    wait_for(lambda: question in page.text(".fnb-question-dead"))
    page.page.locator(".fnb-cancel-dead button").click()  # changed my mind: nothing happens
    assert query(seeded.url, matching) == 6
    page.page.locator(".fnb-delete-matching button").click()
    page.page.locator(".fnb-confirm-dead button").click()
    wait_for(lambda: "delete: 6 job(s)" in page.text(".fnb-dead-notice"))
    assert query(seeded.url, matching) == 0
    assert query(seeded.url, lambda app: app.job(seeded.xss_job)) is not None


def test_worker_count_edit_reaches_a_running_worker(served: Any, page: Page) -> None:
    seeded, server, tmp = served

    async def ops_slots(app: fnb.App) -> int:
        return sum(1 for p in await app.processes() if p.queue == "ops")

    worker = subprocess.Popen(
        forge_cli("worker", "--db", seeded.url, "--queues", "ops", "--heartbeat-interval", "0.2"),
        env=subprocess_env(tmp),
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "worker.log").open("w"),
    )
    try:
        wait_for(lambda: query(seeded.url, ops_slots) == 2, timeout=30)
        page.open(server.url, tab="queues")
        box = page.page.locator(".fnb-workers-ops input").first
        box.wait_for()
        box.fill("3")
        box.press("Enter")
        page.page.locator(".fnb-save-ops button").click()
        wait_for(lambda: "saved workers" in page.text(".fnb-queue-notice-ops"))

        async def workers(app: fnb.App) -> int:
            return next(q.workers for q in await app.queues() if q.name == "ops")

        assert query(seeded.url, workers) == 3
        wait_for(lambda: query(seeded.url, ops_slots) == 3, timeout=30)
        wait_for(lambda: re.search(r"worker slots live: 3", page.text(".fnb-queue-state-ops")))
    finally:
        worker.terminate()
        assert worker.wait(30) == 0


def test_global_limit_is_live_editable_in_the_queues_tab(served: Any, page: Page) -> None:
    seeded, server, _tmp = served
    page.open(server.url, tab="queues")
    box = page.page.locator(".fnb-global-limit-ops input").first
    box.wait_for()
    box.fill("5")
    box.press("Enter")
    page.page.locator(".fnb-save-ops button").click()
    wait_for(lambda: "saved global_limit" in page.text(".fnb-queue-notice-ops"))

    async def global_limit(app: fnb.App) -> int:
        return next(q.global_limit for q in await app.queues() if q.name == "ops")

    assert query(seeded.url, global_limit) == 5
    box.fill("0")
    box.press("Enter")
    page.page.locator(".fnb-save-ops button").click()
    wait_for(lambda: query(seeded.url, global_limit) == 0)


def flat(page: Page, css: str) -> str:
    """`Page.text` without the space it puts after each element before punctuation."""
    return re.sub(r"\s+([:,.])", r"\1", page.text(css))


def test_jobs_of_kinds_no_live_worker_runs_are_flagged(served: Any, page: Page) -> None:
    """Workers claim only the kinds they run: the Overview and Queues say which jobs wait for
    want of one, and the flag goes once a worker that runs the kind is live."""
    seeded, server, tmp = served
    odd_kind = "<b>odd</b>"  # kinds are data: shown as text

    async def enqueue(app: fnb.App) -> None:
        await app.ensure_queue("strand", workers=1)
        await app.pause_queue("strand")  # the jobs stay pending whoever is live
        await app.enqueue_many(
            [fnb.EnqueueRequest(kind="record", queue="strand", payload={"n": i}) for i in range(3)]
        )
        await app.enqueue(fnb.EnqueueRequest(kind=odd_kind, queue="strand"))

    async def clean_up(app: fnb.App) -> None:
        await app.delete_all(queue="strand")

    query(seeded.url, enqueue)
    worker = None
    try:
        page.open(server.url)
        flag = "3 pending jobs of kind record in queue strand: no live worker runs it"
        wait_for(lambda: flag in flat(page, ".fnb-stranded"), timeout=30)
        overview = flat(page, ".fnb-stranded")
        assert f"1 pending job of kind {odd_kind} in queue strand" in overview
        assert "forge-nb worker --app module:attr" in overview
        page.tab("Queues")
        card = ".fnb-queue-stranded-strand"
        page.page.locator(card).first.wait_for()
        wait_for(
            lambda: "3 pending jobs of kind record: no live worker runs it" in flat(page, card)
        )
        save_screenshot(page, tmp, "queues-stranded.png", publish=False)

        argv = forge_cli("worker", "--db", seeded.url, "--app", "workerapp:app")
        worker = subprocess.Popen(  # runs `record` (tests/workerapp.py), works queue strand
            [*argv, "--queues", "strand", "--heartbeat-interval", "0.2"],
            env=subprocess_env(
                tmp, PYTHONPATH=str(Path(__file__).parents[1]), FORGE_NB_TEST_DIR=str(tmp)
            ),
            stdout=subprocess.DEVNULL,
            stderr=(tmp / "strand-worker.log").open("w"),
        )
        wait_for(lambda: "kind record" not in flat(page, card), timeout=30)
        assert f"1 pending job of kind {odd_kind}: no live worker runs it" in flat(page, card)
        assert page.page.evaluate("window.__xss === undefined")
    finally:
        if worker is not None:
            worker.terminate()
            assert worker.wait(30) == 0
        query(seeded.url, clean_up)


def test_dragging_the_range_overview_moves_the_timeline(served: Any, page: Page) -> None:
    _seeded, server, _ = served
    page.open(server.url)
    js_start = "Bokeh.documents[0].get_model_by_name('main_x').start"
    wait_for(lambda: page.page.evaluate(js_start) is not None)
    page.page.wait_for_timeout(1500)  # the first ticks have drawn the 6-hour overview
    before = page.page.evaluate(js_start)
    # Where the RangeTool's box is on screen: the middle of main_x on the overview's frame.
    point = page.page.evaluate(WINDOW_BOX_CENTER_JS)
    x, y = point["x"], point["y"]
    mouse = page.page.mouse
    mouse.move(x, y)
    mouse.down()
    mouse.move(x - 150, y, steps=10)
    mouse.move(x - 300, y, steps=10)
    mouse.up()
    # Wait for the drag, not for any change: the live view also slides a minute on when a
    # new minute's tick lands meanwhile (a CI run once read that instead).
    after = wait_for(lambda: (v := page.page.evaluate(js_start)) < before and v)
    assert after < before


def test_per_queue_metrics_expand_and_range(served: Any, page: Page) -> None:
    _seeded, server, _ = served
    page.open(server.url, tab="per-queue-metrics")
    page.page.locator(".fnb-expand-work button").click()
    wait_for(lambda: "queue work" in page.text(".fnb-queue-heading"))
    page.page.locator(".fnb-range button", has_text=re.compile("^24h$")).click()
    wait_for(lambda: "last 24h" in page.text(".fnb-queue-heading"))
    assert "processing p50" in page.text(".fnb-queue-heading")
    # 24 h reads 5-minute buckets, counters for the minis and latency for this queue only:
    # the seeded runs' percentiles must still arrive.
    wait_for(lambda: "processing p50 –" not in page.text(".fnb-queue-heading"))
    assert page.page.evaluate(
        "Bokeh.documents[0].get_model_by_name('queue_throughput').toolbar.active_drag.type"
    ).endswith("BoxZoomTool")
    # Every queue's mini chart is drawn with a real plot area (not collapsed to nothing).
    sizes = page.page.evaluate(MINI_FRAME_SIZES_JS)
    assert {title.split(" ")[0] for title, _, _ in sizes} >= {"default", "ops", "work"}
    assert all(width > 100 and height > 40 for _, width, height in sizes), sizes


def test_cron_toggle_and_run_now(served: Any, page: Page) -> None:
    seeded, server, _ = served
    page.open(server.url, tab="cron")
    rows = page.page.locator(".fnb-cron-table .tabulator-row")
    wait_for(lambda: rows.count() == 2)
    row = rows.filter(has_text="every-5m")
    row.locator("span[title='turn on or off']").click()

    async def enabled(app: fnb.App) -> bool:
        return next(s.enabled for s in await app.schedules() if s.name == "every-5m")

    wait_for(lambda: query(seeded.url, enabled) is True)

    async def daily_jobs(app: fnb.App) -> int:
        return len(await app.jobs(kind="report.daily", limit=1000))

    before = query(seeded.url, daily_jobs)
    rows.filter(has_text="nightly").locator("span[title='enqueue a run now']").click()
    wait_for(lambda: query(seeded.url, daily_jobs) == before + 1)
    wait_for(lambda: "enqueued job" in page.text(".fnb-cron-notice"))
