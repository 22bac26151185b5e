"""The Workflow view and the inspector's workflow links, in a real browser against
``forge-nb dashboard --read-only`` on a SQLite file holding a small workflow.

fetch a, b (done) and c (dead) → combine(a, b) (done) → report(combine, c) (dead by cascade);
gate (pending, no worker) → later(gate) (waiting).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import forge_nb as fnb
from tests.dashboard.support import (
    Page,
    Served,
    forge_cli,
    free_port,
    query,
    run_sync,
    start_server,
    subprocess_env,
    wait_for,
)

NODES_JS = """() => {
  const doc = window.Bokeh && Bokeh.documents[0];  // null while a new page loads
  const m = doc ? doc.get_model_by_name("workflow_nodes") : null;
  return m === null ? null : {id: [...m.data.id], status: [...m.data.status], x: [...m.data.x]};
}"""


@dataclass
class Flow:
    url: str
    ids: dict[str, str]


async def build_flow(url: str) -> Flow:
    async with fnb.App(url, poll_interval=0.1, tick_interval=0.1) as app:

        @app.job(kind="fetch", max_attempts=1)
        async def fetch(ctx: fnb.JobCtx, name: str) -> str:
            if name == "c":
                raise fnb.Dead("source c <down>")
            return name

        @app.job(kind="combine")
        async def combine(ctx: fnb.JobCtx) -> str:
            return "".join(sorted(ctx.dependency_results.values()))

        a = await fetch.enqueue("a")
        b = await fetch.enqueue("b")
        c = await fetch.enqueue("c")
        total = await combine.options(depends_on=[a, b]).enqueue()
        report = await app.enqueue(fnb.EnqueueRequest("report", {}, depends_on=[total.id, c.id]))
        gate = await app.enqueue(fnb.EnqueueRequest("gate", {}, queue="held"))
        later = await app.enqueue(fnb.EnqueueRequest("later", {}, depends_on=[gate.id]))
        await app.start()
        await fnb.gather([a, b, total])

        async def settled() -> bool:
            job = await app.job(report.id)
            return job is not None and job.status == "dead"

        deadline = 100
        while not await settled() and deadline:
            deadline -= 1
            await __import__("asyncio").sleep(0.1)
        ids = {"a": a.id, "b": b.id, "c": c.id, "combine": total.id, "report": report.id}
        return Flow(url, {**ids, "gate": gate.id, "later": later.id})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flow, Served]]:
    tmp = tmp_path_factory.mktemp("workflow")
    flow = run_sync(lambda: build_flow(f"sqlite:///{tmp}/jobs.db"))
    server = start_server(
        forge_cli("dashboard", "--db", flow.url, "--port", str(free_port()), "--read-only"),
        subprocess_env(tmp),
        tmp / "dashboard.log",
    )
    try:
        yield flow, server
    finally:
        server.stop()


def nodes(page: Page) -> dict[str, Any] | None:
    found: dict[str, Any] | None = page.page.evaluate(NODES_JS)
    return found if found and found["id"] else None


def test_the_workflow_view_draws_the_graph_in_layers(
    served: tuple[Flow, Served], page: Page
) -> None:
    flow, server = served
    ids = flow.ids
    page.page.goto(f"{server.url}?tab=workflow&job={ids['combine']}")
    page.page.locator(".fnb-wf-summary").first.wait_for()
    shown = wait_for(lambda: nodes(page))
    status = dict(zip(shown["id"], shown["status"], strict=True))
    layer = dict(zip(shown["id"], shown["x"], strict=True))
    assert status == {
        ids["a"]: "done",
        ids["b"]: "done",
        ids["c"]: "dead",
        ids["combine"]: "done",
        ids["report"]: "dead",
    }
    assert layer[ids["a"]] == layer[ids["b"]] == layer[ids["c"]] == 0
    assert layer[ids["combine"]] == 1 and layer[ids["report"]] == 2
    summary = page.text(".fnb-wf-summary-pane")
    assert re.search(rf"Workflow of job {ids['combine']} ?: 5 job\(s\), 4 dependencies", summary)
    assert "done 3" in summary and "dead 2" in summary
    assert page.page.locator("canvas").count() >= 1
    assert page.page.locator(".fnb-wf-job input").input_value() == ids["combine"]


def test_the_view_is_live_and_takes_a_typed_job_id(served: tuple[Flow, Served], page: Page) -> None:
    flow, server = served
    ids = flow.ids
    page.page.goto(f"{server.url}?tab=workflow")
    page.page.locator(".fnb-wf-job input").fill(ids["later"])
    page.page.locator(".fnb-wf-job input").press("Enter")
    shown = wait_for(lambda: nodes(page))
    assert dict(zip(shown["id"], shown["status"], strict=True)) == {
        ids["gate"]: "pending",
        ids["later"]: "waiting",
    }

    async def add_dependent(app: fnb.App) -> str:
        ref = await app.enqueue(fnb.EnqueueRequest("after", {}, depends_on=[ids["later"]]))
        return ref.id

    added = query(flow.url, add_dependent)
    grown = wait_for(lambda: (n := nodes(page)) and added in n["id"] and n)
    assert len(grown["id"]) == 3
    assert "waiting 2" in page.text(".fnb-wf-summary-pane")

    page.page.locator(".fnb-wf-job input").fill("424242424242")
    page.page.locator(".fnb-wf-job input").press("Enter")
    wait_for(lambda: "no job 424242424242" in page.text(".fnb-wf-summary-pane"))
    assert nodes(page) is None


def test_the_inspector_links_dependencies_dependents_and_the_workflow(
    served: tuple[Flow, Served], page: Page
) -> None:
    flow, server = served
    ids = flow.ids
    page.page.goto(f"{server.url}?tab=jobs&job={ids['combine']}")
    wait_for(lambda: "Dependents" in page.text(".fnb-inspector"))
    text = page.text(".fnb-inspector")
    assert "depends on 2 job(s), 2 done; 1 job(s) depend on it" in text
    deps = page.page.locator(".fnb-dependencies .fnb-job-link")
    assert sorted(deps.all_inner_texts()) == sorted([ids["a"], ids["b"]])
    assert re.search(rf"{ids['report']} report dead dependency {ids['c']} dead", text)
    # A dependent's link opens that job in the inspector.
    page.page.locator(".fnb-dependents .fnb-job-link").first.click()
    page.page.wait_for_url(re.compile(rf"job={ids['report']}$"))
    wait_for(lambda: "Dependencies" in page.text(".fnb-inspector"))
    text = page.text(".fnb-inspector")
    assert f"Job {ids['report']}" in text and "waiting on" not in text
    assert "depends on 2 job(s)" in text and "; 0 job(s) depend on it" in text
    # The Workflow link draws the graph around it.
    page.page.locator(".fnb-workflow-link").click()
    page.page.wait_for_url(re.compile(r"tab=workflow"))
    shown = wait_for(lambda: nodes(page))
    assert len(shown["id"]) == 5


def test_a_job_outside_any_workflow_has_no_workflow_section(
    served: tuple[Flow, Served], page: Page, tmp_path: Path
) -> None:
    flow, server = served

    async def lone(app: fnb.App) -> str:
        return (await app.enqueue(fnb.EnqueueRequest("lone", {}, queue="held"))).id

    job_id = query(flow.url, lone)
    page.page.goto(f"{server.url}?tab=jobs&job={job_id}")
    wait_for(lambda: f"Job {job_id}" in page.text(".fnb-inspector"))
    assert page.page.locator(".fnb-workflow-link").count() == 0
