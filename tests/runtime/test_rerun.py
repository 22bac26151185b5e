"""A new App on the same database replaces the previous one (a re-run ``app = fnb.App()``
cell): the old one stops claiming at once and closes gracefully; one App's workers run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import forge_nb as fnb
from forge_nb.runtime import rerun

FAST = {"heartbeat_interval": 0.2, "poll_interval": 0.1, "tick_interval": 0.1}


@pytest.fixture
async def apps() -> AsyncIterator[list[fnb.App]]:
    made: list[fnb.App] = []
    try:
        yield made
    finally:
        for app in reversed(made):
            await app.close(timeout=1)


def new_app(apps: list[fnb.App], url: str, **kw: object) -> fnb.App:
    app = fnb.App(url, replace=True, **FAST, **kw)  # type: ignore[arg-type]
    apps.append(app)
    return app


async def test_the_new_app_runs_every_job_once_its_predecessor_is_done(
    db_url: str, apps: list[fnb.App], capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[tuple[str, int]] = []
    release = asyncio.Event()
    old = new_app(apps, db_url)

    @old.job(kind="score")
    async def score_v1(ctx: fnb.JobCtx, n: int) -> str:
        ran.append(("v1", n))
        if n == 0:
            await release.wait()  # running while the cell is re-run
        return "v1"

    await old.ensure_queue("default", workers=4)
    await old.start()
    first = await score_v1.enqueue(0)
    while ("v1", 0) not in ran:
        await asyncio.sleep(0.01)

    new = new_app(apps, db_url)  # the re-run cell: sync, the loop is ours
    # The old App claims nothing from now on, even before its shutdown has run.
    later = await score_v1.enqueue(1)  # an old job function still enqueues (into the db)
    await asyncio.sleep(0.3)
    assert ("v1", 1) not in ran

    @new.job(kind="score")
    async def score_v2(ctx: fnb.JobCtx, n: int) -> str:
        ran.append(("v2", n))
        return "v2"

    release.set()  # the running job finishes within the grace period
    handle = await new.start()  # waits for the old App to be closed
    assert old.closed and old.handle is None
    refs = await score_v2.enqueue_many([(n,) for n in range(2, 12)])
    assert await first.wait(10) == "v1"
    assert [await r.wait(10) for r in [later, *refs]] == ["v2"] * 11
    assert [who for who, n in ran if n > 0] == ["v2"] * 11
    hosts = {p.host_id for p in await new.processes()}
    assert hosts == {handle.host_id}
    out = capsys.readouterr().out
    assert "forge-nb: closed the previous App on" in out
    assert "(1 running job: 0 given back to pending, 1 finished)" in out


async def test_a_job_still_running_after_the_grace_period_is_given_back(
    sqlite_url: str, apps: list[fnb.App], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(rerun, "REPLACE_GRACE_S", 0.3)
    runs: list[str] = []
    old = new_app(apps, sqlite_url)

    @old.job(kind="slow")
    async def slow_v1(ctx: fnb.JobCtx) -> str:
        runs.append("v1")
        await asyncio.sleep(3600)
        return "v1"

    await old.start()
    ref = await slow_v1.enqueue()
    while not runs:
        await asyncio.sleep(0.01)
    new = new_app(apps, sqlite_url)

    @new.job(kind="slow")
    async def slow_v2(ctx: fnb.JobCtx) -> str:
        runs.append("v2")
        return "v2"

    await new.start()
    assert await ref.wait(10) == "v2"
    job = await new.job(ref.id)
    assert job.attempts == 1, "the given-back run spent no attempt"
    assert runs == ["v1", "v2"]
    assert "(1 running job: 1 given back to pending, 0 finished)" in capsys.readouterr().out


async def test_old_refs_and_job_functions_keep_working_through_the_new_app(
    sqlite_url: str, apps: list[fnb.App]
) -> None:
    old = new_app(apps, sqlite_url)

    @old.job(kind="echo")
    async def echo(ctx: fnb.JobCtx, n: int) -> int:
        return n

    await old.start()
    new = new_app(apps, sqlite_url)
    new.job(kind="echo")(echo.fn)
    await new.start()
    ref = await echo.enqueue(5)  # made with the old App
    assert await ref.wait(10) == 5
    assert old.closed  # it lent the new App's connections: it opened none of its own
    with pytest.raises(RuntimeError, match="replaced by a newer App"):
        await old.start()


async def test_apps_made_outside_main_or_with_replace_false_stay_side_by_side(
    sqlite_url: str, apps: list[fnb.App]
) -> None:
    first = fnb.App(sqlite_url, **FAST)  # made in a test module, not __main__
    second = fnb.App(sqlite_url, replace=False, **FAST)
    apps += [first, second]
    await first.ensure_queue("default", workers=1)
    await first.start()
    await second.start()
    assert first.handle is not None and first.handle.running
    assert len({p.host_id for p in await first.processes()}) == 2


async def test_reprs_say_what_they_are(sqlite_url: str, apps: list[fnb.App]) -> None:
    app = new_app(apps, sqlite_url)
    assert repr(app) == f"<forge_nb.App on {app.safe_url} · not started · 0 handlers>"

    @app.job(kind="a")
    async def a(ctx: fnb.JobCtx) -> None:
        return None

    await app.ensure_queue("default", workers=3)
    handle = await app.start()
    assert (
        repr(app) == f"<forge_nb.App on {app.safe_url} · running, queues: default · 1 handler: a>"
    )
    assert repr(handle) == (
        f"<forge_nb.QueueHandle running on {app.safe_url} · host {app.host_id} · "
        "queues: default (3 workers) · 0 jobs running · 1 handler>"
    )
    replacement = new_app(apps, sqlite_url)
    assert "replaced by a newer App, closing" in repr(app)
    await replacement.start()
    assert repr(app).startswith(f"<forge_nb.App on {app.safe_url} · replaced by a newer App ·")
    assert "QueueHandle stopped" in repr(handle)
