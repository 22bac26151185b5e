"""`app.widget()` logic on both backends: what it shows, and what its buttons do to the database.

Front-end clicks are simulated through the widget's real message handler
(``_handle_msg``, the path a comm message from the browser takes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import forge_nb as fnb
from forge_nb.notebook.widget import QueueWidget
from forge_nb.storage.records import MetricRow
from tests.notebook.support import FAST, eventually


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[fnb.App]:
    application = fnb.App(db_url, **FAST)
    try:
        yield application
    finally:
        await application.close(timeout=1)


@pytest.fixture
async def widget(app: fnb.App) -> AsyncIterator[QueueWidget]:
    w = app.widget()
    try:
        yield w
    finally:
        w.close()


def click(widget: Any, **msg: Any) -> None:
    """What the browser sends when a button is clicked (``model.send``)."""
    content = {"method": "custom", "content": {**msg, "seq": f"test-{msg['type']}"}}
    widget._handle_msg({"content": {"data": content}, "buffers": []})


def set_state_from_browser(widget: Any, **state: Any) -> None:
    """What the browser sends when it changes a synced trait (``model.save_changes``)."""
    content = {"method": "update", "state": state, "buffer_paths": []}
    widget._handle_msg({"content": {"data": content}, "buffers": []})


def blocking_job(app: fnb.App, release: asyncio.Event, queue: str = "default") -> Any:
    @app.job(kind="block", queue=queue)
    async def block(ctx: fnb.JobCtx, n: int) -> int:
        await ctx.progress(0.25, f"waiting {n}")
        await release.wait()
        return n

    return block


def row(widget: QueueWidget, queue: str) -> dict[str, Any]:
    return next(r for r in widget.queues if r["name"] == queue)


async def test_shows_counts_per_queue_and_running_jobs_with_progress(app: fnb.App) -> None:
    release = asyncio.Event()
    block = blocking_job(app, release)
    await app.ensure_queue("default", workers=2)
    await app.ensure_queue("empty", workers=1)
    await app.start()
    await block.enqueue_many([(i,) for i in range(5)])
    widget = app.widget()
    try:
        await eventually(lambda: _running_with_progress(widget, 2))
        default = row(widget, "default")
        assert default["counts"] == {
            "waiting": 0,
            "pending": 3,
            "running": 2,
            "failed": 0,
            "done": 0,
            "dead": 0,
        }
        assert default["workers"] == 2 and default["paused"] is False
        assert row(widget, "empty")["counts"]["pending"] == 0
        assert widget.running_total == 2
        assert {j["message"] for j in widget.running} <= {f"waiting {i}" for i in range(5)}
        assert widget.live and widget.source == app.safe_url

        release.set()

        async def all_done() -> bool:
            return row(widget, "default")["counts"]["done"] == 5

        await eventually(all_done)
        assert widget.running == [] and widget.running_total == 0
    finally:
        widget.close()


async def _running_with_progress(widget: QueueWidget, n: int) -> bool:
    return len(widget.running) == n and all(j["progress"] == 0.25 for j in widget.running)


async def test_cancel_button_cancels_a_running_job(app: fnb.App, widget: QueueWidget) -> None:
    release = asyncio.Event()
    block = blocking_job(app, release)
    await app.start()
    ref = await block.enqueue(1)
    await eventually(lambda: _running_with_progress(widget, 1))

    click(widget, type="cancel", job_id=widget.running[0]["id"])
    await widget.settle()

    assert widget.notice["level"] == "info" and widget.notice["seq"] == "test-cancel"

    async def cancelled() -> Any:
        job = await app.job(ref.id)
        return job if job.status == "dead" else None

    job = await eventually(cancelled)
    assert "cancelled" in (job.last_error or "")

    async def gone() -> bool:
        return widget.running == []

    await eventually(gone)


async def test_pause_and_resume_buttons(app: fnb.App, widget: QueueWidget) -> None:
    await app.ensure_queue("reports")
    click(widget, type="pause", queue="reports")
    await widget.settle()
    assert {q.name: q.paused for q in await app.queues()}["reports"] is True

    async def shown_paused() -> bool:
        return any(r["name"] == "reports" and r["paused"] for r in widget.queues)

    await eventually(shown_paused)

    click(widget, type="resume", queue="reports")
    await widget.settle()
    assert {q.name: q.paused for q in await app.queues()}["reports"] is False


async def test_worker_minus_and_plus_change_the_stored_worker_count(
    app: fnb.App, widget: QueueWidget
) -> None:
    await app.ensure_queue("default", workers=1)
    click(widget, type="workers", queue="default", delta=1)
    await widget.settle()
    click(widget, type="workers", queue="default", delta=1)
    await widget.settle()
    assert (await app.queues())[0].workers == 3
    for _ in range(5):  # never below zero
        click(widget, type="workers", queue="default", delta=-1)
        await widget.settle()
    assert (await app.queues())[0].workers == 0
    assert widget.notice["text"] == "default: 0 workers"


async def test_retry_dead_button_retries_only_that_queues_dead_jobs(
    app: fnb.App, widget: QueueWidget
) -> None:
    attempts: dict[int, int] = {}

    @app.job(kind="flaky", queue="a", max_attempts=1)
    async def flaky(ctx: fnb.JobCtx, n: int) -> int:
        attempts[n] = attempts.get(n, 0) + 1
        if attempts[n] == 1:
            raise RuntimeError(f"first try of {n} fails")
        return n

    @app.job(kind="doomed", queue="b", max_attempts=1)
    async def doomed(ctx: fnb.JobCtx) -> None:
        raise fnb.Dead("no")

    await app.start()
    await flaky.enqueue_many([(i,) for i in range(4)])
    await doomed.enqueue()

    async def dead_shown() -> bool:
        names = {r["name"]: r["counts"]["dead"] for r in widget.queues}
        return names == {"a": 4, "b": 1}

    await eventually(dead_shown)
    click(widget, type="retry_dead", queue="a")
    await widget.settle()
    assert widget.notice["text"] == "retried 4 dead jobs of a"

    async def retried() -> bool:
        counts = await app.counts()
        return counts["a"]["done"] == 4 and counts["b"]["dead"] == 1

    await eventually(retried)


async def test_actions_also_arrive_through_synced_state(app: fnb.App, widget: QueueWidget) -> None:
    """Hosts without ``model.send`` (Panel's adapter) write the ``_action`` trait instead."""
    await app.ensure_queue("default")
    set_state_from_browser(widget, _action={"type": "pause", "queue": "default", "seq": "s1"})
    await widget.settle()
    assert (await app.queues())[0].paused is True
    assert widget.notice["seq"] == "s1"


async def test_bad_actions_report_an_error_and_change_nothing(
    app: fnb.App, widget: QueueWidget
) -> None:
    await app.ensure_queue("default", workers=2)
    click(widget, type="explode", queue="default")
    assert widget.notice["level"] == "error" and "explode" in widget.notice["text"]
    click(widget, type="pause", queue="nope")
    await widget.settle()
    assert widget.notice["level"] == "error" and "nope" in widget.notice["text"]
    click(widget, type="workers", queue="default", delta="many")
    await widget.settle()
    assert widget.notice["level"] == "error"
    click(widget, type="cancel", job_id="424242")
    await widget.settle()
    assert widget.notice["level"] == "error"
    config = (await app.queues())[0]
    assert config.workers == 2 and config.paused is False


async def test_many_jobs_in_flight_send_one_small_update_per_refresh(app: fnb.App) -> None:
    release = asyncio.Event()
    block = blocking_job(app, release)
    await app.ensure_queue("default", workers=50)
    await app.start()
    await block.enqueue_many([(i,) for i in range(10_000)])
    widget = QueueWidget(app, interval=60)  # refreshed by hand below
    try:
        sent: list[dict[str, Any]] = []
        original = widget.comm.send

        def record(data: Any = None, **kw: Any) -> Any:
            sent.append(data)
            return original(data, **kw)

        widget.comm.send = record

        async def fifty_running() -> bool:
            return (await app.counts())["default"]["running"] == 50

        async def first_update_sent() -> bool:
            return bool(widget.queues)  # the widget's own first read, begun at creation

        await eventually(fifty_running)
        await eventually(first_update_sent)  # else it may land after sent.clear() below
        sent.clear()
        await widget.refresh()
        # One batched state message, not one per job (the liveness beat may tick meanwhile).
        updates = [m for m in sent if set(m.get("state", {})) != {"beat"}]
        assert len(updates) == 1, updates
        assert len(widget.running) == 20  # capped; the rest is "n more"
        assert widget.running_total == 50
        assert row(widget, "default")["counts"]["pending"] == 9_950
    finally:
        widget.close()
        release.set()


async def test_sparkline_keeps_one_unit_and_a_fixed_half_hour(app: fnb.App) -> None:
    """Jobs finished per minute, one point per minute of the last 30, from the first read
    on: the unit and the time axis never change as history builds up."""
    await app.ensure_queue("fresh")
    await app.ensure_queue("busy")
    minute = int(time.time() // 60)
    storage = await app.storage()
    # Four past minutes of totals, as the runtime's metrics writer stores them.
    await storage.write_metrics(
        [
            MetricRow(minute=minute - k, queue="busy", host_id="h1", completed=10 * k, dead=1)
            for k in (1, 2, 3, 4)
        ]
    )
    widget = app.widget()
    try:
        await eventually(lambda: _has_rows(widget))
        busy, fresh = row(widget, "busy"), row(widget, "fresh")
        for queue in (busy, fresh):
            assert queue["spark_unit"] == "/min" and len(queue["spark"]) == 30
            assert "per minute" in queue["spark_label"]
        assert busy["spark"][-5:-1] == [41.0, 31.0, 21.0, 11.0]  # completed + dead, oldest first
        assert fresh["spark"] == [0.0] * 30  # no history: zeros, same unit, same axis
    finally:
        widget.close()


async def test_the_widget_beats_while_live_and_stops_with_its_app(app: fnb.App) -> None:
    """The beat lets the browser tell a live kernel from a restarted one."""
    await app.ensure_queue("default")
    widget = app.widget()
    widget.beat_s = 0.05
    try:
        first = widget.beat
        await asyncio.sleep(0.3)
        assert widget.live and widget.beat > first
        await app.close()

        async def stopped() -> bool:
            return not widget.live

        await eventually(stopped)
        beat = widget.beat
        await asyncio.sleep(0.2)
        assert widget.beat == beat
    finally:
        widget.close()


async def test_closing_the_widget_stops_its_updates(app: fnb.App) -> None:
    await app.ensure_queue("default")
    widget = app.widget()
    await eventually(lambda: _has_rows(widget))
    assert len(widget._updater) == 1
    widget.close()
    await asyncio.sleep(0.05)
    assert len(widget._updater) == 0 and widget.live is False


async def test_a_new_widget_for_the_same_app_replaces_the_old_one(app: fnb.App) -> None:
    """Re-running a cell that ends in ``app.widget()`` must not pile up pollers."""
    await app.ensure_queue("default")
    first = app.widget()
    second = app.widget()
    try:
        await asyncio.sleep(0.05)
        assert first.live is False and len(first._updater) == 0
        assert second.live is True and len(second._updater) == 1
        other = fnb.App(app.url, **FAST)  # another App keeps its own widget
        third = other.widget()
        assert second.live is True and third.live is True
        third.close()
        await other.close()
    finally:
        second.close()


async def test_closing_the_app_stops_the_widget_without_reopening_the_database(
    app: fnb.App,
) -> None:
    await app.ensure_queue("default")
    widget = app.widget()
    try:
        await eventually(lambda: _has_rows(widget))
        await app.close()

        async def stopped() -> bool:
            return not widget.live

        await eventually(stopped)
        await asyncio.sleep(0.2)
        assert app._storage is None
    finally:
        widget.close()


async def _has_rows(widget: QueueWidget) -> bool:
    return bool(widget.queues)


async def test_the_widget_flags_jobs_no_live_worker_runs(
    app: fnb.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("forge_nb.notebook.snapshot.STRANDED_REFRESH_S", 0.0)

    @app.job(kind="mine")
    async def mine(ctx: fnb.JobCtx) -> int:
        return 1

    await app.start()
    await app.enqueue_many([fnb.EnqueueRequest(kind="score") for _ in range(3)])
    assert await (await mine.enqueue()).wait(10) == 1
    widget = QueueWidget(app, interval=60)  # refreshed by hand below
    try:
        await widget.refresh()
        assert widget.stranded == [
            {
                "queue": "default",
                "kind": "score",
                "jobs": 3,
                "capped": False,
                "message": "3 pending jobs of kind `score` in queue `default`: "
                "no live worker runs it",
            }
        ]
        assert row(widget, "default")["counts"]["pending"] == 3, "waiting, not dead"

        @app.job(kind="score")  # the cell that defines it is run: they run, the flag goes
        async def score(ctx: fnb.JobCtx) -> int:
            return 2

        async def cleared() -> bool:
            await widget.refresh()
            return widget.stranded == [] and row(widget, "default")["counts"]["done"] == 4

        await eventually(cleared)
    finally:
        widget.close()
