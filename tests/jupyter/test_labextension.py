"""The JupyterLab extension's sources, its committed lockfile and the build the wheel ships.

``labextension/build`` is not in git: ``scripts/build_labextension.sh`` (run by
``scripts/test.sh``) builds it when the sources changed, and records their digest; a stale
or missing build fails here, as a drifted copy of the widget front-end fails
tests/notebook/test_assets.py.
"""

from __future__ import annotations

import hashlib
import json
import re

from forge_nb.dashboard.app import tab_slug
from forge_nb.dashboard.pages.cron import CronPage
from forge_nb.dashboard.pages.db_health import DbHealthPage
from forge_nb.dashboard.pages.jobs import MODES
from forge_nb.dashboard.pages.overview import OverviewPage
from forge_nb.dashboard.pages.processes import ProcessesPage
from forge_nb.dashboard.pages.queue_metrics import QueueMetricsPage
from forge_nb.dashboard.pages.queues import QueuesPage
from forge_nb.dashboard.pages.resources import ResourcesPage
from forge_nb.jupyter.proxy import ICON, NAME
from tests.notebook.support import REPO

EXT = REPO / "labextension"
BUILT = EXT / "build" / "labextension"
FIX = "run: bash scripts/build_labextension.sh"


def sources_digest() -> str:
    """What scripts/build_labextension.sh records: sha256 of `sha256sum` over every input,
    sorted by path."""
    inputs = [EXT / name for name in ("package.json", "package-lock.json", "tsconfig.json")]
    inputs.append(EXT / "install.json")
    for folder in ("src", "style"):
        inputs += [p for p in (EXT / folder).rglob("*") if p.is_file()]
    rels = sorted(p.relative_to(EXT).as_posix() for p in inputs)
    listing = "".join(
        f"{hashlib.sha256((EXT / rel).read_bytes()).hexdigest()}  {rel}\n" for rel in rels
    )
    return hashlib.sha256(listing.encode()).hexdigest()


def test_the_build_is_there_and_fresh() -> None:
    meta = json.loads((BUILT / "package.json").read_text())
    assert meta["name"] == NAME
    assert (BUILT / meta["jupyterlab"]["_build"]["load"]).is_file()
    assert json.loads((BUILT / "install.json").read_text())["packageName"] == "forge-nb"
    assert (EXT / "build" / "sources.sha256").read_text().strip() == sources_digest(), FIX


def test_the_build_is_pinned_by_a_committed_lockfile() -> None:
    package = json.loads((EXT / "package.json").read_text())
    lock = json.loads((EXT / "package-lock.json").read_text())
    assert package["name"] == NAME and package["jupyterlab"]["outputDir"] == "build/labextension"
    assert "@jupyterlab/builder" in package["devDependencies"]
    assert lock["lockfileVersion"] >= 2
    assert lock["packages"][""]["devDependencies"] == package["devDependencies"]
    assert lock["packages"][""]["dependencies"] == package["dependencies"]


def test_the_sidebar_lists_every_dashboard_tab_in_order() -> None:
    titles = [
        OverviewPage.title,
        *(MODES[m].title for m in ("jobs", "scheduled", "retries", "dead")),
    ]
    titles += [
        cls.title
        for cls in (
            CronPage,
            QueuesPage,
            ProcessesPage,
            ResourcesPage,
            DbHealthPage,
            QueueMetricsPage,
        )
    ]
    source = (EXT / "src" / "tabs.ts").read_text()
    listed = re.findall(r"\{ slug: '([^']+)', title: '([^']+)' \}", source)
    assert listed == [(tab_slug(title), title) for title in titles]


def test_the_launcher_and_the_sidebar_share_one_icon() -> None:
    assert (EXT / "style" / "icons" / "forge-nb.svg").read_bytes() == ICON.read_bytes()
    assert ICON.read_text().lstrip().startswith("<svg")


def test_the_extension_never_writes_html_from_data() -> None:
    for path in (EXT / "src").glob("*.ts"):
        source = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, f"{sink} in {path.name}: build DOM with textContent"
