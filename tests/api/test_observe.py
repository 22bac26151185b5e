"""Issue 21 over real HTTP: tags (`?tag=`, enqueue bodies) and redaction."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import forge_nb as fnb
from tests.api.conftest import FAST, Client, serve_api


@pytest.fixture
async def any_backend_api(db_url: str) -> AsyncIterator[tuple[fnb.App, Client]]:
    app = fnb.App(db_url, replace=False, **FAST)
    try:
        async with serve_api(app) as client:
            yield app, client
    finally:
        await app.close(timeout=2)


async def test_tags_over_http(any_backend_api: tuple[fnb.App, Client]) -> None:
    app, api = any_backend_api

    @app.job(kind="load")
    async def load(ctx: fnb.JobCtx, n: int) -> int:
        return n

    a = await load.options(tags=["etl", "nightly"]).enqueue(1)
    await load.enqueue(2)
    made = await api.post("/api/jobs", {"kind": "load", "payload": {"n": 3}, "tags": ["etl"]})
    assert made.status == 201 and made["tags"] == ["etl"]
    page = await api.get("/api/jobs?tag=etl")
    assert [j["id"] for j in page["jobs"]] == [made["id"], a.id]
    assert page["jobs"][1]["tags"] == ["etl", "nightly"]
    assert [j["id"] for j in (await api.get("/api/jobs?tag=nightly"))["jobs"]] == [a.id]
    assert len((await api.get("/api/jobs?tag="))["jobs"]) == 3  # empty: any
    assert (await api.get(f"/api/jobs/{a.id}"))["tags"] == ["etl", "nightly"]
    assert [j.id for j in await app.jobs(tag="nightly")] == [a.id]
    bad = await api.post("/api/jobs", {"kind": "load", "payload": {"n": 4}, "tags": [""]})
    assert bad.status == 422 and "tag" in bad["message"]
    assert len(await app.jobs()) == 3  # nothing stored


async def test_redacted_fields_are_masked_over_http(db_url: str) -> None:
    async with fnb.App(db_url, replace=False, queues=[]) as worker:

        @worker.job(kind="charge", redact=["card"])
        async def charge(ctx: fnb.JobCtx, card: str, amount: int) -> int:
            return amount

        ref = await charge.enqueue("4111-1111", 5)
    viewer = fnb.App(db_url, replace=False, queues=[], **FAST)  # no handler: like a dashboard
    try:
        async with serve_api(viewer) as api:
            listed = await api.get("/api/jobs?kind=charge")
            assert listed["jobs"][0]["payload"] == {"card": "[redacted]", "amount": 5}
            detail = await api.get(f"/api/jobs/{ref.id}")
            assert detail["payload"]["card"] == "[redacted]"
            assert "4111" not in str(listed.body) + str(detail.body)
    finally:
        await viewer.close()


async def test_job_logs_over_http(any_backend_api: tuple[fnb.App, Client]) -> None:
    app, api = any_backend_api

    @app.job(kind="talk")
    async def talk(ctx: fnb.JobCtx) -> None:
        print("hello from the job")

    ref = await talk.enqueue()
    await app.drain()
    logs = await api.get(f"/api/jobs/{ref.id}/logs")
    assert logs.status == 200 and logs["job_id"] == ref.id
    [attempt] = logs["attempts"]
    assert attempt["attempt"] == 1 and attempt["text"] == "hello from the job"
    assert attempt["lines"] == 1 and attempt["dropped"] == 0 and "T" in attempt["updated_at"]
    assert (await api.get("/api/jobs/999999/logs")).status == 404


async def test_bulk_actions_over_http(any_backend_api: tuple[fnb.App, Client]) -> None:
    app, api = any_backend_api

    @app.job(kind="later")
    async def later(ctx: fnb.JobCtx, n: int) -> None:
        return None

    @app.job(kind="breaks", max_attempts=3)
    async def breaks(ctx: fnb.JobCtx) -> None:
        raise RuntimeError("no")

    scheduled = await later.options(delay=3600, tags=["s"]).enqueue_many([(i,) for i in range(4)])
    failing = await breaks.enqueue_many([() for _ in range(3)])
    await app.drain()  # the breaks jobs fail once: failed, retrying in a while
    assert {await r.status() for r in failing} == {"failed"}

    ran = await api.post(
        "/api/jobs/bulk", {"action": "run_now", "ids": [scheduled[0].id, failing[0].id]}
    )
    assert ran.status == 200 and ran["done"] == 1 and ran["skipped"] == 1 and ran["matched"] == 2
    assert "not a pending job scheduled for later" in ran["reasons"][0]
    due = (await app.job(scheduled[0].id)).scheduled_at.timestamp()  # type: ignore[union-attr]
    assert due <= __import__("time").time()

    cancelled = await api.post(
        "/api/jobs/bulk", {"action": "cancel", "filter": {"tag": "s", "scheduled": True}}
    )
    assert cancelled["matched"] == 3 and cancelled["done"] == 3  # the one run now is due
    assert [await r.status() for r in scheduled[1:]] == ["dead"] * 3

    retried = await api.post(
        "/api/jobs/bulk", {"action": "retry", "filter": {"status": "failed", "kind": "breaks"}}
    )
    assert retried["done"] == 3
    assert [(await r.record()).attempts for r in failing] == [0, 0, 0]

    deleted = await api.post("/api/jobs/bulk", {"action": "delete", "ids": [f.id for f in failing]})
    assert deleted["done"] == 3 and await app.jobs(kind="breaks") == []

    for bad in (
        {"action": "explode", "ids": ["1"]},
        {"action": "delete"},
        {"action": "delete", "ids": ["1"], "filter": {}},
    ):
        assert (await api.post("/api/jobs/bulk", bad)).status == 422, bad
