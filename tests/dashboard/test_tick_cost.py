"""What a tick sends: the Overview's live-process table only when due or when workers come
or go, and a new session starts from the newest snapshot (no browser needed)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import forge_nb as fnb
from forge_nb.dashboard.data import SnapshotSource, Tick, source_for
from forge_nb.dashboard.pages.base import Context
from forge_nb.dashboard.pages.overview import PROCESS_TABLE_EVERY, OverviewPage
from forge_nb.storage.records import ProcessRecord

NOW = 1_800_000_000.0


def slot(n: int, job: str | None, beat: float = NOW) -> ProcessRecord:
    return ProcessRecord(
        id=f"work-{n}-H1",
        host_id="H1",
        hostname="box",
        pid=100,
        queue="work",
        current_job=job,
        last_heartbeat=datetime.fromtimestamp(beat, UTC),
        started_at=datetime.fromtimestamp(NOW - 600, UTC),
    )


def snap(at: float, processes: list[ProcessRecord]) -> Tick:
    return Tick(now=at, counts={"work": {"pending": 1, "done": 2}}, processes=processes)


@pytest.fixture
def overview(tmp_path: Path) -> Iterator[OverviewPage]:
    app = fnb.App(f"sqlite:///{tmp_path}/jobs.db")
    ctx = Context(
        app=app, source=SnapshotSource(app), read_only=False, refresh=lambda: None, streaming=False
    )
    yield OverviewPage(ctx)


def table_sends(page: OverviewPage) -> list[Any]:
    """Every value the process table was given (each one goes to the browser)."""
    sent: list[Any] = []
    page.processes.widget.param.watch(lambda event: sent.append(event.new), "value")
    return sent


def test_busy_rows_are_refreshed_every_few_ticks_not_every_tick(overview: OverviewPage) -> None:
    sent = table_sends(overview)
    overview.update(snap(NOW, [slot(0, "j0"), slot(1, None)]))
    assert len(sent) == 1  # the table joins with its first rows
    # Under load every row changes every tick (current job, heartbeat age) …
    for tick in range(1, 3 * PROCESS_TABLE_EVERY + 1):
        overview.update(snap(NOW + 1.5 * tick, [slot(0, f"j{tick}"), slot(1, None)]))
    # … and the table goes out every PROCESS_TABLE_EVERY ticks only.
    assert len(sent) == 1 + 3
    assert list(overview.processes.frame["current job"]) == [f"j{3 * PROCESS_TABLE_EVERY}", "idle"]


def test_nothing_is_sent_while_the_table_is_unchanged(overview: OverviewPage) -> None:
    sent = table_sends(overview)
    idle = [slot(0, None), slot(1, None)]
    overview.update(snap(NOW, idle))
    for _ in range(3 * PROCESS_TABLE_EVERY):  # same heartbeat, same instant: same rows
        overview.update(snap(NOW, idle))
    assert len(sent) == 1


def test_workers_coming_or_going_show_at_once(overview: OverviewPage) -> None:
    sent = table_sends(overview)
    overview.update(snap(NOW, [slot(0, "a")]))
    overview.update(snap(NOW + 1.5, [slot(0, "a"), slot(1, "b")]))  # a new worker slot
    assert len(sent) == 2 and len(overview.processes.frame) == 2
    overview.update(snap(NOW + 3.0, [slot(1, "b")]))  # one gone
    assert len(sent) == 3 and list(overview.processes.frame["current job"]) == ["b"]


def test_a_reshown_overview_resends_its_table_at_once(overview: OverviewPage) -> None:
    sent = table_sends(overview)
    rows = [slot(0, "a")]
    overview.update(snap(NOW, rows))
    overview.activated()  # the tab was shown again: the browser rebuilds the table's view
    overview.update(snap(NOW, rows))
    assert len(sent) == 2


async def test_sessions_start_from_the_newest_snapshot_a_tick_read(tmp_path: Path) -> None:
    app = fnb.App(f"sqlite:///{tmp_path}/jobs.db")
    try:
        source = source_for(app)
        assert source.latest(max_age=10) is None
        shown = snap(NOW, [slot(0, "a")])
        source.remember(shown)
        assert source.latest(max_age=10) is shown
        assert source.latest(max_age=-1) is None  # too old: a new session reads for itself
    finally:
        await app.close()


async def test_a_new_overview_is_built_showing_the_newest_snapshot(tmp_path: Path) -> None:
    from forge_nb.dashboard.app import Dashboard

    app = fnb.App(f"sqlite:///{tmp_path}/jobs.db")
    try:
        source_for(app).remember(snap(NOW, [slot(0, "job-1"), slot(1, None)]))
        board = Dashboard(app)
        board._callback.stop()  # no live loop here: only what the page is built with counts
        board._served = True  # as in a served session (notebook output never prefills)
        assert board._prefill(0)
        assert "1 / 2" in board.overview.strip.object  # busy / worker slots
        assert board.overview.processes.settled  # the table is in the page from the start
        assert list(board.overview.processes.frame["current job"]) == ["job-1", "idle"]
        assert not board._prefill(3)  # a session opened on another tab reads for itself
    finally:
        await app.close()
