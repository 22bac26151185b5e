"""Issue 21 in a real browser: tags in the Jobs table (column and filter), redaction, and
the propagated context in the inspector."""

from __future__ import annotations

import contextvars
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import forge_nb as fnb
from tests.dashboard.support import (
    Page,
    Served,
    backend_url,
    forge_cli,
    free_port,
    http_get,
    query,
    run_sync,
    start_server,
    subprocess_env,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Seed:
    url: str
    tagged: list[str]
    secret_job: str


SECRET = "hunter2-very-secret"
TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("tenant")


async def seed(url: str) -> Seed:
    """Jobs with and without tags (pending: no worker runs them)."""
    async with fnb.App(url, queues=[], replace=False) as app:
        tagged = await app.enqueue_many(
            [fnb.EnqueueRequest("obs.load", {"i": i}, tags=["etl", f"day-{i}"]) for i in range(3)]
        )
        await app.enqueue_many([fnb.EnqueueRequest("obs.load", {"i": i}) for i in range(5)])

        @app.job(kind="obs.login", redact=["password"])
        async def login(ctx: fnb.JobCtx, user: str, password: str) -> None:
            return None

        app.propagate(TENANT)
        TENANT.set("acme-tenant")
        secret = await login.enqueue("ann", SECRET)

        @app.job(kind="obs.later", queue="later")
        async def later(ctx: fnb.JobCtx, n: int) -> None:
            return None

        @app.job(kind="obs.flaky", queue="flaky", max_attempts=3)
        async def flaky(ctx: fnb.JobCtx, n: int) -> None:
            raise RuntimeError("flaky")

        await app.ensure_queue(
            "flaky", backoff_base_seconds=3600, backoff_max_seconds=7200, backoff_jitter=False
        )
        await later.options(delay=3600).enqueue_many([(i,) for i in range(5)])
        await flaky.enqueue_many([(i,) for i in range(3)])
        await app.drain(queues=["flaky"])  # each fails once: the Retries tab
    return Seed(url, [r.id for r in tagged], secret.id)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Seed, Served]]:
    tmp: Path = tmp_path_factory.mktemp(f"observe-{request.param}")
    urls = backend_url(request, request.param, tmp)
    url = next(urls)
    seeded = run_sync(lambda: seed(url))
    server = start_server(
        forge_cli("dashboard", "--db", url, "--port", str(free_port())),
        subprocess_env(tmp),
        tmp / "dashboard.log",
    )
    try:
        yield seeded, server
    finally:
        code = server.stop()
        urls.close()
    assert code == 0, f"dashboard exited {code} on SIGINT:\n{server.log_text()}"


def label(page: Page, mode: str) -> str:
    return page.text(f".fnb-page-{mode}")


def wait_label(page: Page, mode: str, pattern: str) -> None:
    wait_for(lambda: re.search(pattern, label(page, mode)), timeout=20)


def set_text(page: Page, css: str, value: str) -> None:
    box = page.page.locator(f"{css} input").first
    box.fill(value)
    box.press("Enter")


def column(page: Page, table: str, field: str) -> list[str]:
    cells = page.page.locator(f".{table} .tabulator-row .tabulator-cell[tabulator-field='{field}']")
    return [c.strip() for c in cells.all_inner_texts()]


def test_the_jobs_table_shows_and_filters_tags(served: Any, page: Page) -> None:
    seeded, server = served
    page.open(server.url, tab="jobs")
    set_text(page, ".fnb-filter-kind", "obs.load")
    wait_label(page, "jobs", r"· 8 row\(s\)")
    wait_for(lambda: "day-1, etl" in column(page, "fnb-table-jobs", "tags"))
    set_text(page, ".fnb-filter-tag", "etl")
    wait_label(page, "jobs", r"· 3 row\(s\)$")
    wait_for(lambda: column(page, "fnb-table-jobs", "id") == seeded.tagged[::-1])
    set_text(page, ".fnb-filter-tag", "day-2")
    wait_label(page, "jobs", r"· 1 row\(s\)$")
    wait_for(lambda: column(page, "fnb-table-jobs", "id") == [seeded.tagged[2]])


def test_redacted_fields_are_masked_in_the_table_and_inspector(served: Any, page: Page) -> None:
    seeded, server = served
    page.open(server.url, tab="jobs")
    set_text(page, ".fnb-filter-kind", "obs.login")
    wait_label(page, "jobs", r"· 1 row\(s\)")
    wait_for(lambda: column(page, "fnb-table-jobs", "id") == [seeded.secret_job])
    [payload] = column(page, "fnb-table-jobs", "payload")
    assert "[redacted]" in payload and "ann" in payload and SECRET not in payload
    page.page.locator(".fnb-table-jobs .tabulator-cell[tabulator-field='kind']").first.click()
    wait_for(lambda: "Payload" in page.text(".fnb-inspector"))
    text = page.text(".fnb-inspector")
    assert "[redacted]" in text and SECRET not in text
    assert SECRET not in page.page.content()
    assert "acme-tenant" in text  # the propagated context, shown under Context


def test_the_inspector_tails_a_running_jobs_logs(served: Any, page: Page, tmp_path: Path) -> None:
    seeded, server = served
    gate = tmp_path / "gate"

    async def enqueue(app: fnb.App) -> str:
        ref = await app.enqueue(fnb.EnqueueRequest("obs.tail", {"gate": str(gate)}, queue="tail"))
        return ref.id

    job_id = query(seeded.url, enqueue)
    env = {**subprocess_env(tmp_path), "PYTHONPATH": str(REPO)}
    worker = subprocess.Popen(
        [
            *forge_cli(
                "worker",
                "--db",
                seeded.url,
                "--app",
                "tests.dashboard.obsjobs:app",
                "--queues",
                "tail",
                "--heartbeat-interval",
                "0.2",
            )
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        page.open(server.url, tab="jobs")
        set_text(page, ".fnb-filter-kind", "obs.tail")
        wait_for(lambda: column(page, "fnb-table-jobs", "id") == [job_id])
        page.page.locator(".fnb-table-jobs .tabulator-cell[tabulator-field='kind']").first.click()
        wait_for(lambda: "tail line one" in page.text(".fnb-inspector"), timeout=30)
        assert "tail line two" not in page.text(".fnb-inspector")  # live: the job still runs
        gate.write_text("go")
        wait_for(lambda: "tail line two" in page.text(".fnb-inspector"), timeout=30)
    finally:
        worker.terminate()
        worker.wait(10)


def test_the_dashboard_server_serves_prometheus_metrics(served: Any) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    _seeded, server = served
    status, body = http_get(server.url.rstrip("/") + "/metrics")
    assert status == 200
    found = {
        (s.labels["queue"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == "forge_nb_jobs"
    }
    assert found[("default", "pending")] >= 9 and found[("default", "dead")] == 0


def test_bulk_run_now_on_the_scheduled_tab(served: Any, page: Page) -> None:
    seeded, server = served
    page.open(server.url, tab="scheduled")
    set_text(page, ".fnb-filter-kind", "obs.later")
    wait_label(page, "scheduled", r"· 5 row\(s\)")
    page.page.locator(".fnb-table-scheduled .tabulator-row input[type='checkbox']").first.check()
    run = page.page.locator(".fnb-run-now-selected button")
    wait_for(lambda: run.inner_text() == "Run now 1 selected")
    run.click()
    wait_for(lambda: "Run now 1 selected job(s)?" in page.text(".fnb-question-scheduled"))
    page.page.locator(".fnb-confirm-scheduled button").click()
    wait_for(lambda: "run now: 1 job(s)" in page.text(".fnb-scheduled-notice"))
    wait_label(page, "scheduled", r"· 4 row\(s\)")

    async def due_now(app: fnb.App) -> int:
        jobs = await app.jobs(kind="obs.later")
        return sum(j.scheduled_at.timestamp() <= time.time() for j in jobs)

    assert query(seeded.url, due_now) == 1


def test_bulk_cancel_all_matching_on_the_retries_tab_shows_the_count(
    served: Any, page: Page
) -> None:
    seeded, server = served
    page.open(server.url, tab="retries")
    set_text(page, ".fnb-filter-kind", "obs.flaky")
    wait_label(page, "retries", r"· 3 row\(s\)")
    page.page.locator(".fnb-cancel-matching button").click()
    question = "Cancel ALL jobs matching status=failed, kind=obs.flaky (3 job(s))?"
    wait_for(lambda: question in page.text(".fnb-question-retries"))
    page.page.locator(".fnb-confirm-retries button").click()
    wait_for(lambda: "cancel: 3 job(s)" in page.text(".fnb-retries-notice"))

    async def statuses(app: fnb.App) -> set[str]:
        return {j.status for j in await app.jobs(kind="obs.flaky")}

    assert query(seeded.url, statuses) == {"dead"}


def test_bulk_delete_all_matching_on_the_jobs_tab_asks_first(served: Any, page: Page) -> None:
    seeded, server = served
    page.open(server.url, tab="jobs")
    set_text(page, ".fnb-filter-tag", "day-0")
    wait_label(page, "jobs", r"· 1 row\(s\)")
    page.page.locator(".fnb-delete-matching button").first.click()
    wait_for(lambda: "(1 job(s))?" in page.text(".fnb-question-jobs"))
    page.page.locator(".fnb-cancel-jobs button").click()  # changed my mind

    async def tagged(app: fnb.App) -> int:
        return len(await app.jobs(tag="day-0"))

    assert query(seeded.url, tagged) == 1
    page.page.locator(".fnb-delete-matching button").first.click()
    wait_for(lambda: "(1 job(s))?" in page.text(".fnb-question-jobs"))
    page.page.locator(".fnb-confirm-jobs button").click()
    wait_for(lambda: "delete: 1 job(s)" in page.text(".fnb-jobs-notice"))
    assert query(seeded.url, tagged) == 0
