"""Live views of enqueued jobs: one job (`JobView`) and many jobs in one line (`JobsSummary`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import forge_nb as fnb
from forge_nb.notebook.refs_view import JobsSummary, JobView
from tests.notebook.support import FAST, eventually


@pytest.fixture
async def app(sqlite_url: str) -> AsyncIterator[fnb.App]:
    application = fnb.App(sqlite_url, **FAST)
    try:
        yield application
    finally:
        await application.close(timeout=1)


async def test_job_view_follows_a_job_from_progress_to_result(app: fnb.App) -> None:
    step = asyncio.Event()
    release = asyncio.Event()

    @app.job(kind="train")
    async def train(ctx: fnb.JobCtx, lr: float) -> dict:
        await ctx.progress(0.5, "epoch 5/10")
        step.set()
        await release.wait()
        return {"lr": lr, "loss": 0.125, "note": "<b>not html</b>"}

    await app.start()
    ref = await train.enqueue(0.01)
    view = JobView(ref)
    try:
        assert view.job_id == ref.id and view.kind == "train"

        async def halfway() -> bool:
            return view.status == "running" and view.progress == 0.5

        await eventually(halfway)
        assert view.message == "epoch 5/10" and view.attempts == 1
        release.set()

        async def finished() -> bool:
            return view.status == "done"

        await eventually(finished)
        assert '"loss": 0.125' in view.result
        assert "<b>not html</b>" in view.result  # shipped as text; the browser sets textContent
        assert view.error == ""
        await asyncio.sleep(0.1)
        assert len(view._updater) == 0  # stops polling once the job ended
    finally:
        view.close()


async def test_job_view_shows_the_error_of_a_dead_job(app: fnb.App) -> None:
    @app.job(kind="broken", max_attempts=1)
    async def broken(ctx: fnb.JobCtx) -> None:
        try:
            raise KeyError("config")
        except KeyError as exc:
            raise ValueError("could not load settings") from exc

    await app.start()
    ref = await broken.enqueue()
    view = JobView(ref)
    try:

        async def dead() -> bool:
            return view.status == "dead"

        await eventually(dead)
        assert view.error == "ValueError: could not load settings: KeyError: 'config'"
        assert view.result == ""
        # The traceback rides along for the view's toggle.
        assert view.traceback.startswith("Traceback (most recent call last)")
        assert view.traceback.rstrip().endswith("ValueError: could not load settings")
    finally:
        view.close()


async def test_job_view_cancel_button(app: fnb.App) -> None:
    @app.job(kind="forever")
    async def forever(ctx: fnb.JobCtx) -> None:
        await asyncio.sleep(3600)

    await app.start()
    ref = await forever.enqueue()
    view = JobView(ref)
    try:

        async def running() -> bool:
            return view.status == "running"

        await eventually(running)
        content = {"method": "custom", "content": {"type": "cancel", "seq": "c1"}}
        view._handle_msg({"content": {"data": content}, "buffers": []})

        async def dead() -> bool:
            return view.status == "dead"

        await eventually(dead)
        assert (await ref.status()) == "dead"
        assert view.notice["seq"] == "c1"
    finally:
        view.close()


async def test_summary_counts_many_jobs_in_one_widget(app: fnb.App) -> None:
    @app.job(kind="maybe", max_attempts=1)
    async def maybe(ctx: fnb.JobCtx, n: int) -> int:
        if n % 5 == 0:
            raise fnb.Dead(f"{n} is a multiple of five")
        await asyncio.sleep(0.01)
        return n

    await app.ensure_queue("default", workers=4)
    refs = await maybe.enqueue_many([(n,) for n in range(50)])
    summary = JobsSummary(refs)
    try:
        assert summary.counts["pending"] == 50 and summary.kinds == "maybe"
        await app.start()

        async def finished() -> bool:
            return summary.counts["done"] + summary.counts["dead"] == 50

        await eventually(finished)
        assert summary.counts == {
            "waiting": 0,
            "pending": 0,
            "running": 0,
            "failed": 0,
            "done": 40,
            "dead": 10,
        }
        await asyncio.sleep(0.1)
        assert len(summary._updater) == 0  # stops once everything ended
        failed = sorted(summary.failures, key=lambda f: int(f["id"]))
        assert [f["id"] for f in failed] == [refs[n].id for n in range(0, 50, 5)]
        assert failed[1] == {"id": refs[5].id, "kind": "maybe", "error": "5 is a multiple of five"}
    finally:
        summary.close()


async def test_summary_shows_a_workflow_waiting_then_its_failures(app: fnb.App) -> None:
    """The progress view of a workflow: waiting jobs, then the dead ones with their errors."""
    gate = asyncio.Event()

    @app.job(kind="fetch", max_attempts=1)
    async def fetch(ctx: fnb.JobCtx, n: int) -> int:
        await gate.wait()
        if n == 0:
            raise fnb.Dead("source 0 is down")
        return n

    @app.job(kind="combine")
    async def combine(ctx: fnb.JobCtx) -> int:
        return sum(ctx.dependency_results.values())

    await app.start()
    fetches = await fetch.enqueue_many([(n,) for n in range(3)])
    total = await combine.options(depends_on=fetches[1:]).enqueue()
    doomed = await combine.options(depends_on=fetches).enqueue()
    summary = JobsSummary([*fetches, total, doomed], interval=0.05)
    try:

        async def waiting() -> bool:
            return summary.counts["waiting"] == 2

        await eventually(waiting)
        gate.set()

        async def finished() -> bool:
            return summary.counts["done"] == 3 and summary.counts["dead"] == 2

        await eventually(finished)
        errors = {f["id"]: f["error"] for f in summary.failures}
        assert errors == {
            fetches[0].id: "source 0 is down",
            doomed.id: f"dependency {fetches[0].id} dead",
        }
    finally:
        summary.close()


async def test_summary_follows_jobs_run_by_another_process(app: fnb.App, sqlite_url: str) -> None:
    """No completion waiter fires here: the summary polls, within its per-refresh budget."""
    other = fnb.App(sqlite_url, **FAST)

    @other.job(kind="echo2")
    async def echo2(ctx: fnb.JobCtx, n: int) -> int:
        return n

    @app.job(kind="echo2")
    async def echo2_here(ctx: fnb.JobCtx, n: int) -> int:
        return n

    refs = await echo2_here.enqueue_many([(n,) for n in range(150)])
    summary = JobsSummary(refs, interval=0.05)
    try:
        await other.start()

        async def finished() -> bool:
            return summary.counts["done"] == 150

        await eventually(finished)
    finally:
        summary.close()
        await other.close(timeout=1)


async def test_an_empty_list_shows_an_empty_summary(app: fnb.App) -> None:
    summary = JobsSummary([])
    try:
        assert summary.counts == {
            "waiting": 0,
            "pending": 0,
            "running": 0,
            "failed": 0,
            "done": 0,
            "dead": 0,
        }
        assert len(summary._updater) == 0
    finally:
        summary.close()


async def test_views_beat_while_they_follow_a_job_and_stop_when_it_ended(app: fnb.App) -> None:
    """The beat tells the browser a kernel is behind the view (see notebook/liveness.py)."""
    release = asyncio.Event()

    @app.job(kind="wait")
    async def wait(ctx: fnb.JobCtx) -> str:
        await release.wait()
        return "ok"

    await app.start()
    ref = await wait.enqueue()
    view = JobView(ref)
    summary = JobsSummary([ref])
    view.beat_s = summary.beat_s = 0.05
    try:
        assert view.live and summary.live
        first = (view.beat, summary.beat)
        await asyncio.sleep(0.3)
        assert view.beat > first[0] and summary.beat > first[1]
        release.set()

        async def ended() -> bool:
            return not view.live and not summary.live

        await eventually(ended)
        beats = (view.beat, summary.beat)
        await asyncio.sleep(0.2)
        assert (view.beat, summary.beat) == beats  # nothing left to follow: no more beats
    finally:
        view.close()
        summary.close()
