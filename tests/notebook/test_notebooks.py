"""Every shipped notebook runs top to bottom under nbclient, in a fresh directory and database."""

from __future__ import annotations

from pathlib import Path

from tests.notebook.support import (
    execute,
    execute_twice,
    kernel_env,
    load,
    read_app,
    text_of,
    widget_views,
)


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
