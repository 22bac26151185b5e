"""A session builds only the tabs it shows (page loads stay cheap), without a browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import forge_nb as fnb
from forge_nb.dashboard.app import Dashboard, tab_slug
from forge_nb.dashboard.pages.cron import CronPage
from forge_nb.dashboard.pages.overview import OverviewPage
from tests.dashboard.support import TABS


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    """A notebook-style (not served) dashboard; its periodic callback is stopped after."""
    board = Dashboard(fnb.App(f"sqlite:///{tmp_path}/jobs.db"))
    yield board
    callback: Any = board._callback
    if callback is not None:
        callback.stop()


def test_only_the_overview_is_built_up_front(dashboard: Dashboard) -> None:
    assert [slot.title for slot in dashboard.slots] == TABS
    assert [type(page) for page in dashboard.pages] == [OverviewPage]
    assert [len(slot.holder.objects) for slot in dashboard.slots] == [1] + [0] * (len(TABS) - 1)


def test_showing_a_tab_builds_its_page_once(dashboard: Dashboard) -> None:
    cron = TABS.index("Cron")
    dashboard.tabs.active = cron
    page = dashboard.active_page
    assert isinstance(page, CronPage)
    assert dashboard.slots[cron].holder.objects == [page.panel]
    dashboard.tabs.active = 0
    dashboard.tabs.active = cron
    assert dashboard.active_page is page
    assert len(dashboard.pages) == 2


def test_tab_slugs_are_known_without_building_pages(dashboard: Dashboard) -> None:
    assert [tab_slug(slot.title) for slot in dashboard.slots][-3:] == [
        "db-health",
        "per-queue-metrics",
        "workflow",
    ]
    assert len(dashboard.pages) == 1
