"""Every shipped notebook runs top to bottom under nbclient, in a fresh directory and database."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from nbclient.exceptions import CellExecutionError

from tests.notebook.support import (
    execute,
    execute_twice,
    kernel_env,
    load,
    outputs,
    read_app,
    text_of,
    widget_views,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_quickstart_runs_and_its_jobs_finish(tmp_path: Path) -> None:
    data = tmp_path / "data"
    nb = execute(load("quickstart.ipynb"), tmp_path, kernel_env(FORGE_NB_DATA_DIR=str(data)))

    text = text_of(nb)
    assert "300 walks done" in text
    assert "'rows': 200000" in text  # the sync pandas job's result
    # The summary of 300 refs, the queue widget and the single-job view: three widgets, not 300.
    assert len(widget_views(nb)) == 3
    assert nb.metadata["kernelspec"]["name"] == "python3"

    # The notebook used the embedded SQLite file in FORGE_NB_DATA_DIR.
    db = data / "forge_nb.db"
    assert db.exists()
    counts = await read_app(f"sqlite:///{db}", lambda app: app.counts())
    assert counts["default"]["done"] >= 301
    assert counts["default"]["dead"] == 0


async def test_quickstart_cells_can_be_run_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    execute_twice(load("quickstart.ipynb"), tmp_path, kernel_env(FORGE_NB_DATA_DIR=str(data)))

    async def check(app):
        return await app.counts(), await app.jobs(kind="simulate", status="done", limit=1000)

    counts, walks = await read_app(f"sqlite:///{data / 'forge_nb.db'}", check)
    assert len(walks) == 600  # both runs' jobs finished, none lost or doubled
    assert counts["default"]["dead"] == 0


async def test_dead_letters_finds_errors_and_retries_a_selection(tmp_path: Path) -> None:
    data = tmp_path / "data"
    nb = execute(load("dead_letters.ipynb"), tmp_path, kernel_env(FORGE_NB_DATA_DIR=str(data)))

    text = text_of(nb)
    assert "47 parsed, 13 dead" in text
    assert "unreadable checksum: ValueError: invalid literal for int()" in text  # the chain, typed
    assert "retried 8 jobs" in text and "8 recovered" in text
    assert "5 still dead" in text

    async def check(app):
        return await app.counts(), await app.jobs(status="dead", limit=100)

    counts, dead = await read_app(f"sqlite:///{data / 'forge_nb.db'}", check)
    assert counts["ingest"]["done"] == 55 and counts["ingest"]["dead"] == 5
    assert all("truncated" in (job.last_error or "") for job in dead)


async def test_dashboard_notebook_shows_it_inline_and_serves_it(tmp_path: Path) -> None:
    port = free_port()
    env = kernel_env(FORGE_NB_DATA_DIR=str(tmp_path / "data"), FORGE_NB_DASHBOARD_PORT=str(port))
    nb = execute(load("dashboard.ipynb"), tmp_path, env)

    text = text_of(nb)
    assert f"'http://127.0.0.1:{port}/'" in text
    assert '200 {"etl":' in text  # the API answered from the kernel's loop
    assert "200 dashboard page:" in text
    assert f"http://127.0.0.1:{port}/ 200" in text  # served again on the same port
    mimes = {mime for out in outputs(nb) for mime in out.get("data", {})}
    assert "application/vnd.holoviews_exec.v0+json" in mimes  # the inline dashboard
    # Bokeh and Panel come with the notebook (megabytes of inline JavaScript), not from a CDN;
    # test_browser.py checks that it renders with no network.
    scripts = "".join(
        str(out["data"].get("application/javascript", "")) for out in outputs(nb) if "data" in out
    )
    assert len(scripts) > 1_000_000


async def test_postgres_cluster_shares_work_between_two_worker_processes(
    tmp_path: Path, pg_url: str
) -> None:
    env = kernel_env(FORGE_NB_DATABASE_URL=pg_url)
    nb = execute(load("postgres_cluster.ipynb"), tmp_path, env)

    text = text_of(nb)
    assert "60 jobs done by 2 processes" in text
    assert "results of the new jobs by code version: {2: 10}" in text
    assert "exit codes: [0, 0]" in text  # both stopped gracefully on SIGTERM
    # Jobs defined in cells, run by `forge-nb worker --shipped-code`: no file written.
    assert "files written next to the notebook: []" in text
    assert list(tmp_path.iterdir()) == []
    match = re.search(r"thread executor ([\d.]+) s, process executor ([\d.]+) s", text)
    assert match is not None, text

    async def check(app):
        return await app.jobs(status="done", queue="cluster", limit=100), await app.processes()

    done, processes = await read_app(pg_url, check)
    assert len(done) == 70
    v1 = [job for job in done if job.result["version"] == 1]
    assert len(v1) == 60 and len({job.result["pid"] for job in v1}) == 2
    assert len({job.code_version for job in done}) == 2  # two shipped versions
    assert processes == []  # the workers unregistered on the way out


async def test_postgres_cluster_explains_a_missing_database_url(tmp_path: Path) -> None:
    with pytest.raises(CellExecutionError, match="FORGE_NB_DATABASE_URL"):
        execute(load("postgres_cluster.ipynb"), tmp_path, kernel_env())


async def test_workflows_notebook_fans_out_and_in(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    env = kernel_env(FORGE_NB_DATA_DIR=str(data), FORGE_NB_DASHBOARD_PORT=str(port))
    nb = execute(load("workflows.ipynb"), tmp_path, env)

    text = text_of(nb)
    assert "82 jobs enqueued" in text
    assert "combined 39 pages, 1950 rows" in text
    assert "first five: [50, 50, 50, 50, 50]" in text
    assert "everything:" in text and "dead" in text
    assert "page 13: 404 not found" in text
    assert re.search(r"\d+ process dependency \d+ dead", text)
    # total's graph is the whole workflow (connected through the processes both combine use).
    assert "82 jobs, 119 edges" in text
    assert f"http://127.0.0.1:{port}/?tab=workflow&job=" in text
    assert len(widget_views(nb)) == 1  # the progress view of 82 refs: one widget
    mimes = {mime for out in outputs(nb) for mime in out.get("data", {})}
    assert "application/vnd.holoviews_exec.v0+json" in mimes  # the graph, inline

    async def check(app):
        return await app.counts()

    counts = await read_app(f"sqlite:///{data / 'forge_nb.db'}", check)
    assert counts["default"]["done"] == 39 + 39 + 1
    assert counts["default"]["dead"] == 3 and counts["default"]["waiting"] == 0
