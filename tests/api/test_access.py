"""Who may do what: read-only mode, basic auth, cross-origin guard, and JSON errors everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import forge_nb as fnb
from tests.api.conftest import Client, serve_api

#: One request per mutation route; each must be refused without touching anything.
MUTATIONS = [
    ("POST", "/api/jobs", {"kind": "forge_nb.echo"}),
    ("POST", "/api/jobs/retry", {}),
    ("POST", "/api/jobs/{id}/retry", None),
    ("POST", "/api/jobs/{id}/cancel", None),
    ("DELETE", "/api/jobs/{id}", None),
    ("PATCH", "/api/queues/default", {"paused": True}),
    ("PATCH", "/api/schedules/tick", {"enabled": False}),
    ("POST", "/api/schedules/tick/run", None),
]
READS = [
    "/api",
    "/api/openapi.json",
    "/api/jobs",
    "/api/jobs/{id}",
    "/api/counts",
    "/api/queues",
    "/api/queues/default",
    "/api/schedules",
    "/api/schedules/tick",
    "/api/processes",
    "/api/metrics",
]


async def seed(app: fnb.App) -> str:
    """A cancelled (dead) job, a queue and a schedule for the routes to act on."""
    ref = await app.enqueue(fnb.EnqueueRequest(kind="forge_nb.echo", delay=3600))
    await app.cancel(ref.id)
    await app.ensure_schedule("tick", "*/5 * * * *", "forge_nb.echo")
    return ref.id


async def snapshot(app: fnb.App) -> tuple:
    jobs = [(j.id, j.status, j.attempts) for j in await app.jobs()]
    queues = [(q.name, q.paused) for q in await app.queues()]
    schedules = [(s.name, s.enabled) for s in await app.schedules()]
    return jobs, queues, schedules


async def call(api: Client, method: str, path: str, body, job_id: str, **kw):
    return await api.call(method, path.replace("{id}", job_id), body, **kw)


async def test_read_only_refuses_every_mutation_and_keeps_reads(app: fnb.App) -> None:
    job_id = await seed(app)
    before = await snapshot(app)
    async with serve_api(app, read_only=True) as api:
        for method, path, body in MUTATIONS:
            reply = await call(api, method, path, body, job_id)
            assert reply.status == 403, (method, path)
            assert reply["status"] == 403 and "read-only" in reply["message"]
        for path in READS:
            assert (await api.get(path.replace("{id}", job_id))).status == 200, path
        assert (await api.get("/api"))["read_only"] is True
        # the routes still exist: unknown ids are still told apart from refusals
        assert (await api.get("/api/jobs/999999")).status == 404
    assert await snapshot(app) == before


async def test_basic_auth_guards_every_route(app: fnb.App, tmp_path: Path) -> None:
    job_id = await seed(app)
    before = await snapshot(app)
    async with serve_api(app, basic_auth="s3cret") as api:
        for method, path, body in MUTATIONS:
            for auth in (None, ("ops", "wrong")):
                reply = await call(api, method, path, body, job_id, auth=auth)
                assert reply.status == 401, (method, path, auth)
                assert reply.headers["WWW-Authenticate"].startswith("Basic ")
        for path in READS:
            assert (await api.get(path.replace("{id}", job_id))).status == 401, path
        assert await snapshot(app) == before

        garbled = await api.get("/api/counts", headers={"Authorization": "Basic %%%"})
        assert garbled.status == 401
        assert (await api.get("/api/counts", auth=("anyone", "s3cret"))).status == 200
        paused = await api.patch("/api/queues/default", {"paused": True}, auth=("ops", "s3cret"))
        assert paused.status == 200 and paused["paused"] is True

    users = tmp_path / "users.json"
    users.write_text(json.dumps({"ana": "pw-ana", "bo": "pw-bo"}))
    async with serve_api(app, basic_auth=str(users), read_only=True) as api:
        assert (await api.get("/api/counts", auth=("ana", "pw-ana"))).status == 200
        assert (await api.get("/api/counts", auth=("ana", "pw-bo"))).status == 401
        assert (await api.get("/api/counts", auth=("eve", "pw-ana"))).status == 401
        # authenticated, but the server is read-only: 403, not 401
        refused = await api.post("/api/jobs/retry", {}, auth=("bo", "pw-bo"))
        assert refused.status == 403


async def test_cross_origin_browser_mutations_are_refused(app: fnb.App, api: Client) -> None:
    job_id = await seed(app)
    evil = {"Origin": "https://evil.example"}
    refused = await api.post(f"/api/jobs/{job_id}/retry", headers=evil)
    assert refused.status == 403 and "cross-origin" in refused["message"]
    assert (await api.post("/api/jobs", {"kind": "x"}, headers={"Origin": "null"})).status == 403
    assert (await app.job(job_id)).status == "dead"
    assert (await api.get("/api/counts", headers=evil)).status == 200  # reads are harmless

    own = {"Origin": api.base}  # the dashboard page itself, served from the same origin
    assert (await api.post(f"/api/jobs/{job_id}/retry", headers=own)).status == 200


async def test_errors_are_json_with_a_status(app: fnb.App, api: Client) -> None:
    unknown = await api.get("/api/nothing/here")
    assert unknown.status == 404 and unknown.body["status"] == 404
    assert unknown["error"] == "Not Found" and "/api/nothing/here" in unknown["message"]
    assert (await api.delete("/api/nothing")).status == 404

    wrong_method = await api.call("PUT", "/api/jobs", {"kind": "x"})
    assert wrong_method.status == 405 and wrong_method["status"] == 405
    assert set(wrong_method.headers["Allow"].split(", ")) == {"GET", "POST"}
    assert (await api.delete("/api/counts")).status == 405
    assert (await api.get("/api/jobs/")).status == 200  # a trailing slash is fine


async def test_an_unreachable_database_is_503_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Callers learn only that the database is unreachable; where it is goes to the log."""
    app = fnb.App("postgresql://forge:s3cret-pw@127.0.0.1:1/nowhere")
    try:
        async with serve_api(app) as api:
            for path in ("/api/counts", "/api/jobs"):
                reply = await api.get(path)
                assert reply.status == 503, reply.body
                assert reply["message"] == "database unreachable"
        assert "127.0.0.1:1" in caplog.text and "s3cret-pw" not in caplog.text
    finally:
        await app.close()
