"""Job routes over real HTTP: enqueue, list, inspect, retry, cancel, delete, bulk retry."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

import forge_nb as fnb
from tests.api.conftest import FAST, Client, eventually, serve_api


async def job_status(api: Client, job_id: str, status: str) -> bool:
    return (await api.get(f"/api/jobs/{job_id}"))["status"] == status


@pytest.fixture
async def any_backend_api(db_url: str) -> AsyncIterator[tuple[fnb.App, Client]]:
    app = fnb.App(db_url, **FAST)
    try:
        async with serve_api(app) as client:
            yield app, client
    finally:
        await app.close(timeout=2)


async def test_a_job_goes_through_its_life_over_http(
    any_backend_api: tuple[fnb.App, Client],
) -> None:
    app, api = any_backend_api

    @app.job(kind="add")
    async def add(ctx: fnb.JobCtx, a: int, b: int) -> int:
        return a + b

    @app.job(kind="refuse")
    async def refuse(ctx: fnb.JobCtx, why: str) -> None:
        raise fnb.Dead(why)

    await app.start()
    made = await api.post("/api/jobs", {"kind": "add", "payload": {"a": 2, "b": 3}})
    assert made.status == 201 and made["outcome"] == "created"
    assert isinstance(made["id"], str) and made["payload"] == {"a": 2, "b": 3}
    assert made.headers["Location"] == f"/api/jobs/{made['id']}"

    await eventually(lambda: job_status(api, made["id"], "done"))
    done = await api.get(f"/api/jobs/{made['id']}")
    assert done.status == 200 and done["result"] == 5 and done["attempts"] == 1
    events = [e["event"] for e in done["events"]]
    assert events[0] == "enqueued" and "started" in events and events[-1] == "done"
    datetime.fromisoformat(done["finished_at"])  # times are ISO 8601

    dead = await api.post("/api/jobs", {"kind": "refuse", "payload": {"why": "bad <input>"}})
    await eventually(lambda: job_status(api, dead["id"], "dead"))
    assert (await api.get(f"/api/jobs/{dead['id']}"))["last_error"].endswith("bad <input>")

    await app.pause_queue("default")  # keep the retried job where we can see it
    retried = await api.post(f"/api/jobs/{dead['id']}/retry")
    assert retried.status == 200 and retried["status"] == "pending" and retried["attempts"] == 0

    not_retryable = await api.post(f"/api/jobs/{made['id']}/retry")
    assert not_retryable.status == 409 and "done" in not_retryable["message"]

    deleted = await api.delete(f"/api/jobs/{made['id']}")
    assert deleted.status == 200 and deleted.body == {"id": made["id"], "deleted": True}
    assert (await api.get(f"/api/jobs/{made['id']}")).status == 404
    assert (await api.delete(f"/api/jobs/{made['id']}")).status == 404
    for path in ("/api/jobs/424242", "/api/jobs/not-an-id"):
        missing = await api.get(path)
        assert missing.status == 404 and missing["status"] == 404
        assert (await api.post(path + "/retry")).status == 404
        assert (await api.post(path + "/cancel")).status == 404


async def test_listing_filters_and_pages(app: fnb.App, api: Client) -> None:
    jobs = [
        {"kind": "fetch", "queue": "web", "payload": {"url": f"https://example.org/{i}"}}
        for i in range(5)
    ] + [{"kind": "train", "queue": "gpu", "payload": {"lr": 0.1, "tag": "needle"}}]
    made = await api.post("/api/jobs", jobs)
    assert made.status == 201 and made["created"] == 6 and made["duplicates"] == 0
    ids = [j["id"] for j in made["jobs"]]

    everything = await api.get("/api/jobs?status=&queue=&kind=&search=&limit=&cursor=")
    assert everything.status == 200 and [j["id"] for j in everything["jobs"]] == ids[::-1]
    assert everything["next_cursor"] is None

    web = await api.get("/api/jobs?queue=web&status=pending")
    assert {j["id"] for j in web["jobs"]} == set(ids[:5])
    assert [j["id"] for j in (await api.get("/api/jobs?kind=train"))["jobs"]] == [ids[5]]
    assert [j["id"] for j in (await api.get("/api/jobs?search=NEEDLE"))["jobs"]] == [ids[5]]
    assert (await api.get("/api/jobs?status=done"))["jobs"] == []

    seen: list[str] = []
    cursor = ""
    while True:
        page = await api.get(f"/api/jobs?limit=4&cursor={cursor}")
        assert len(page["jobs"]) <= 4
        seen += [j["id"] for j in page["jobs"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == ids[::-1]

    for query in ("limit=0", "limit=1001", "limit=ten", "status=sleeping", "cursor=%3Cnope%3E"):
        bad = await api.get(f"/api/jobs?{query}")
        assert bad.status == 400, query
        assert bad["error"] == "Bad Request" and bad["message"]


async def test_enqueue_refuses_bad_input_and_stores_nothing(app: fnb.App, api: Client) -> None:
    @app.job(kind="fetch")
    async def fetch(ctx: fnb.JobCtx, url: str) -> str:
        return url

    cases = [
        (400, dict(raw=b"{not json")),
        (400, dict(raw=b"")),
        (422, dict(json_body={"payload": {"url": "x"}})),  # no kind
        (422, dict(json_body={"kind": "fetch", "payload": {"url": "x"}, "prio": 5})),  # typo
        (422, dict(json_body={"kind": "fetch", "payload": ["x"]})),
        (422, dict(json_body={"kind": "fetch", "payload": {"wrong": 1}})),  # signature
        (422, dict(json_body={"kind": "fetch", "payload": {"url": "x"}, "delay": -5})),
        (422, dict(json_body={"kind": "fetch", "payload": {"url": "x"}, "priority": "high"})),
        (422, dict(json_body={"kind": "fetch", "payload": {"url": "x"}, "max_attempts": 0})),
        (422, dict(json_body={"kind": "fetch", "payload": {"url": "x"}, "scheduled_at": "soon"})),
        (422, dict(json_body="fetch")),
        (422, dict(json_body=[])),
        (422, dict(json_body=[{"kind": "fetch", "payload": {"url": "a"}}, {"kind": ""}])),
    ]
    for status, kwargs in cases:
        reply = await api.call("POST", "/api/jobs", **kwargs)
        assert reply.status == status, (kwargs, reply.body)
        assert reply["status"] == status and reply["message"]
    assert (await api.get("/api/jobs"))["jobs"] == []
    assert (await app.jobs()) == []


async def test_enqueue_options_unique_keys_and_unknown_kinds(app: fnb.App, api: Client) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    first = await api.post(
        "/api/jobs",
        {
            "kind": "report.build",  # no handler here: a worker elsewhere may have one
            "payload": {"day": "2026-01-01"},
            "queue": "reports",
            "priority": 7,
            "max_attempts": 2,
            "unique_key": "report:2026-01-01",
            "scheduled_at": later.isoformat(),
        },
    )
    assert first.status == 201
    assert (first["queue"], first["priority"], first["max_attempts"]) == ("reports", 7, 2)
    assert abs(datetime.fromisoformat(first["scheduled_at"]) - later) < timedelta(seconds=1)

    again = await api.post("/api/jobs", {"kind": "report.build", "unique_key": "report:2026-01-01"})
    assert again.status == 200 and again["outcome"] == "duplicate" and again["id"] == first["id"]

    delayed = await api.post("/api/jobs", {"kind": "report.build", "delay": 600})
    assert datetime.fromisoformat(delayed["scheduled_at"]) > datetime.now(UTC) + timedelta(
        seconds=500
    )


async def test_cancel_pending_and_running_jobs(app: fnb.App, api: Client) -> None:
    started = asyncio.Event()
    release = threading.Event()

    @app.job(kind="long")
    async def long(ctx: fnb.JobCtx) -> None:
        started.set()
        await asyncio.sleep(3600)

    @app.job(kind="stubborn")
    def stubborn(ctx: fnb.JobCtx) -> str:
        release.wait(30)  # ignores its cancel token until the test lets go
        return "finished anyway"

    waiting = await api.post("/api/jobs", {"kind": "long", "delay": 3600})
    cancelled = await api.post(f"/api/jobs/{waiting['id']}/cancel")
    assert cancelled.status == 200
    assert cancelled["status"] == "dead" and cancelled["last_error"] == "cancelled"
    twice = await api.post(f"/api/jobs/{waiting['id']}/cancel")
    assert twice.status == 409 and "already dead" in twice["message"]

    await app.start()
    running = await api.post("/api/jobs", {"kind": "long"})
    await asyncio.wait_for(started.wait(), 10)
    refused = await api.delete(f"/api/jobs/{running['id']}")
    assert refused.status == 409 and "cancel it first" in refused["message"]
    stopped = await api.post(f"/api/jobs/{running['id']}/cancel")
    assert stopped.status in (200, 202)  # an async job on this loop stops at once
    await eventually(lambda: job_status(api, running["id"], "dead"))
    assert (await api.get(f"/api/jobs/{running['id']}"))["last_error"] == "cancelled"

    busy = await api.post("/api/jobs", {"kind": "stubborn"})
    try:
        await eventually(lambda: job_status(api, busy["id"], "running"))
        accepted = await api.post(f"/api/jobs/{busy['id']}/cancel")
        assert accepted.status == 202 and accepted["status"] == "running"
        assert accepted["cancel_requested_at"] is not None
    finally:
        release.set()
    await eventually(lambda: job_status(api, busy["id"], "dead"))
    assert (await api.get(f"/api/jobs/{busy['id']}"))["last_error"] == "cancelled"


async def test_bulk_retry_by_filter(app: fnb.App, api: Client) -> None:
    await app.ensure_queue("a", paused=True)
    await app.ensure_queue("b", paused=True)
    made = await api.post(
        "/api/jobs",
        [{"kind": "k", "queue": q, "payload": {"n": i}} for q in ("a", "b") for i in range(3)],
    )
    for job in made["jobs"]:  # cancelled pending jobs are dead jobs
        assert (await api.post(f"/api/jobs/{job['id']}/cancel")).status == 200

    only_a = await api.post("/api/jobs/retry", {"queue": "a", "search": '"n":1'})
    assert only_a.status == 200 and only_a.body == {"retried": 1, "status": "dead"}
    rest = await api.post("/api/jobs/retry")
    assert rest["retried"] == 5
    counts = (await api.get("/api/counts")).body
    assert counts["a"]["pending"] == 3 and counts["b"]["pending"] == 3
    assert counts["a"]["dead"] == 0

    for body in ({"queue": "nope"}, {"status": "done"}, {"queue": 5}, {"when": "now"}, []):
        bad = await api.post("/api/jobs/retry", body)
        assert bad.status == 422, body
    assert (await api.call("POST", "/api/jobs/retry", raw=b"{")).status == 400
