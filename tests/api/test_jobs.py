"""Job routes over real HTTP: enqueue, list, inspect, retry, cancel, delete, bulk retry."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

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

    for query in ("status=", "limit=", "status=&limit=", "queue=&kind=&search=&cursor="):
        empty = await api.get(f"/api/jobs?{query}")  # documented: empty is the same as absent
        assert empty.status == 200 and empty.body == everything.body, query

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


@pytest.mark.parametrize(
    "when",
    [
        pytest.param({"delay": 1e300}, id="delay-1e300"),
        pytest.param({"delay": 1e18}, id="delay-1e18"),
        pytest.param({"delay": 100 * 366 * 86_400}, id="delay-over-100-years"),
        pytest.param({"delay": True}, id="delay-true"),
        pytest.param({"delay": "5"}, id="delay-text"),
        pytest.param({"scheduled_at": 1e300}, id="scheduled_at-1e300"),
        pytest.param({"scheduled_at": "1e300"}, id="scheduled_at-text-1e300"),
        pytest.param({"scheduled_at": -1e12}, id="scheduled_at-before-1970"),
        pytest.param({"scheduled_at": -0.5}, id="scheduled_at-just-before-1970"),
        pytest.param({"scheduled_at": "0001-01-01T00:00:00+01:00"}, id="scheduled_at-year-0"),
        pytest.param({"scheduled_at": "9999-12-31T23:59:59-01:00"}, id="scheduled_at-year-10000"),
        pytest.param({"scheduled_at": 253402300800}, id="scheduled_at-after-9999"),
        pytest.param({"scheduled_at": True}, id="scheduled_at-true"),
        pytest.param({"scheduled_at": [1]}, id="scheduled_at-list"),
        pytest.param({"scheduled_at": "nan"}, id="scheduled_at-nan"),
    ],
)
async def test_enqueue_refuses_run_times_out_of_range_and_stores_nothing(
    app: fnb.App, api: Client, when: dict[str, Any]
) -> None:
    """Times beyond 1970..9999 (or 100 years of delay) used to be stored and break listings."""
    one = await api.post("/api/jobs", {"kind": "forge_nb.echo", **when})
    assert one.status == 422, one.body
    assert one["message"].startswith("job: ") and next(iter(when)) in one["message"]
    many = await api.post(
        "/api/jobs", [{"kind": "forge_nb.echo"}, {"kind": "forge_nb.echo", **when}]
    )
    assert many.status == 422 and many["message"].startswith("job 1: "), many.body
    assert (await app.jobs()) == []
    listed = await api.get("/api/jobs?limit=1000")
    assert listed.status == 200 and listed["jobs"] == []


async def test_enqueue_accepts_the_edges_of_the_time_range(app: fnb.App, api: Client) -> None:
    edges: list[tuple[dict[str, Any], str]] = [
        ({"scheduled_at": 0}, "1970-01-01T00:00:00+00:00"),
        ({"scheduled_at": "1970-01-01T00:00:00Z"}, "1970-01-01T00:00:00+00:00"),
        ({"scheduled_at": 253402300799}, "9999-12-31T23:59:59+00:00"),
        ({"scheduled_at": "9999-12-31T23:59:59"}, "9999-12-31T23:59:59+00:00"),  # naive: UTC
    ]
    for when, shown in edges:
        made = await api.post("/api/jobs", {"kind": "forge_nb.echo", **when})
        assert made.status == 201 and made["scheduled_at"] == shown, (when, made.body)
    far = await api.post("/api/jobs", {"kind": "forge_nb.echo", "delay": 100 * 365.25 * 86_400})
    assert far.status == 201 and datetime.fromisoformat(far["scheduled_at"]).year >= 2100
    listed = await api.get("/api/jobs?limit=1000")
    assert listed.status == 200 and len(listed["jobs"]) == 5
    for job in listed["jobs"]:
        assert (await api.get(f"/api/jobs/{job['id']}")).status == 200


async def test_a_null_payload_means_no_arguments(app: fnb.App, api: Client) -> None:
    """The document says payload is an object or null; null is the same as leaving it out."""
    made = await api.post("/api/jobs", {"kind": "forge_nb.echo", "payload": None})
    assert made.status == 201 and made["payload"] == {}
    many = await api.post("/api/jobs", [{"kind": "forge_nb.echo", "payload": None}])
    assert many.status == 201 and many["created"] == 1
    assert [j.payload for j in await app.jobs()] == [{}, {}]
    not_objects: list[Any] = [[], "x", 1, True]
    for payload in not_objects:
        bad = await api.post("/api/jobs", {"kind": "forge_nb.echo", "payload": payload})
        assert bad.status == 422, payload
    assert len(await app.jobs()) == 2


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


async def test_enqueue_takes_the_flow_control_options(app: fnb.App, api: Client) -> None:
    body = {"kind": "digest", "payload": {"n": 1}, "unique_key": "digest:1", "delay": 60}
    first = await api.post("/api/jobs", {**body, "expires_in": 3600, "unique_for": 600})
    assert first.status == 201 and first["outcome"] == "created"
    debounced = await api.post(
        "/api/jobs", {**body, "payload": {"n": 2}, "delay": 120, "on_conflict": "replace"}
    )
    assert debounced.status == 200
    assert (debounced["outcome"], debounced["id"]) == ("replaced", first["id"])
    job = await app.job(first["id"])
    assert job is not None and job.payload == {"n": 2}
    refused = await api.post("/api/jobs", {**body, "on_conflict": "overwrite"})
    assert refused.status == 422
    alone = await api.post("/api/jobs", {"kind": "digest", "unique_for": 60})  # no unique_key
    assert alone.status == 422 and "unique_key" in alone["message"]
    assert len(await app.jobs(kind="digest")) == 1


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
    not_filters: list[Any] = [{"status": 5}, {"status": "DEAD"}, {"status": "pending"}, "dead", 1]
    for not_filter in not_filters:
        assert (await api.post("/api/jobs/retry", not_filter)).status == 422, not_filter
    assert (await api.call("POST", "/api/jobs/retry", raw=b"{")).status == 400


async def test_bulk_retry_null_and_empty_mean_no_filter(app: fnb.App, api: Client) -> None:
    """Documented (RetryFilter): a null body, and null or empty fields, mean no filter."""
    await app.ensure_queue("a", paused=True)
    empty_bodies = (
        dict(raw=b"null"),
        dict(json_body={"status": None}),
        dict(json_body={"status": ""}),
        dict(json_body={"status": None, "queue": None, "kind": "", "search": ""}),
        dict(raw=b""),
    )
    for kwargs in empty_bodies:
        made = await api.post("/api/jobs", [{"kind": "k", "queue": "a"}] * 2)
        for job in made["jobs"]:
            assert (await api.post(f"/api/jobs/{job['id']}/cancel")).status == 200
        reply = await api.call("POST", "/api/jobs/retry", **kwargs)
        assert reply.status == 200 and reply.body == {"retried": 2, "status": "dead"}, kwargs
        assert (await api.get("/api/counts"))["a"]["dead"] == 0
