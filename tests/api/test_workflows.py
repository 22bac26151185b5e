"""Workflows over real HTTP: ``depends_on`` in ``POST /api/jobs``, ``waiting`` in counts and
filters, and ``GET /api/jobs/{id}/graph``."""

from __future__ import annotations

import asyncio

import forge_nb as fnb
from tests.api.conftest import Client, eventually


async def _status(api: Client, job_id: str, status: str) -> bool:
    return (await api.get(f"/api/jobs/{job_id}"))["status"] == status


async def test_a_job_waits_for_its_dependencies_then_runs(app: fnb.App, api: Client) -> None:
    gate = asyncio.Event()

    @app.job(kind="fetch")
    async def fetch(ctx: fnb.JobCtx, n: int) -> int:
        await gate.wait()
        return n

    @app.job(kind="combine")
    async def combine(ctx: fnb.JobCtx) -> int:
        return sum(ctx.dependency_results.values())

    await app.start()
    a = await api.post("/api/jobs", {"kind": "fetch", "payload": {"n": 2}})
    b = await api.post("/api/jobs", {"kind": "fetch", "payload": {"n": 3}})
    total = await api.post("/api/jobs", {"kind": "combine", "depends_on": [a["id"], b["id"]]})
    assert total.status == 201 and total["status"] == "waiting"
    assert total["dependencies"] == 2 and total["waiting_on"] == 2

    counts = (await api.get("/api/counts")).body["default"]
    assert counts["waiting"] == 1 and next(iter(counts)) == "waiting"
    waiting = await api.get("/api/jobs?status=waiting")
    assert [j["id"] for j in waiting["jobs"]] == [total["id"]]

    graph = await api.get(f"/api/jobs/{total['id']}/graph")
    assert graph.status == 200 and graph["job_id"] == total["id"] and not graph["truncated"]
    assert {n["id"]: n["status"] for n in graph["nodes"]}[total["id"]] == "waiting"
    assert {n["id"] for n in graph["nodes"]} == {a["id"], b["id"], total["id"]}
    assert sorted((e["job"], e["dependency"]) for e in graph["edges"]) == sorted(
        [(total["id"], a["id"]), (total["id"], b["id"])]
    )
    # The same graph from a dependency's side.
    other = await api.get(f"/api/jobs/{a['id']}/graph")
    assert {n["id"] for n in other["nodes"]} == {a["id"], b["id"], total["id"]}

    gate.set()
    await eventually(lambda: _status(api, total["id"], "done"))
    assert (await api.get(f"/api/jobs/{total['id']}"))["result"] == 5


async def test_an_unknown_dependency_is_refused_and_nothing_is_stored(
    app: fnb.App, api: Client
) -> None:
    real = await api.post("/api/jobs", {"kind": "fetch"})
    refused = await api.post(
        "/api/jobs", {"kind": "combine", "depends_on": [real["id"], "999999999"]}
    )
    assert refused.status == 400 and refused["status"] == 400
    assert "unknown dependency" in refused["message"] and "999999999" in refused["message"]
    many = await api.post(
        "/api/jobs",
        [{"kind": "x"}, {"kind": "combine", "depends_on": ["999999999"]}],
    )
    assert many.status == 400 and "unknown dependency" in many["message"]
    assert [j["id"] for j in (await api.get("/api/jobs"))["jobs"]] == [real["id"]]


async def test_bad_depends_on_values_are_invalid(app: fnb.App, api: Client) -> None:
    for bad in ("123", [1, 2], [""], {"a": 1}):
        reply = await api.post("/api/jobs", {"kind": "combine", "depends_on": bad})
        assert reply.status == 422 and "depends_on" in reply["message"], (bad, reply.body)
    assert (await api.get("/api/jobs"))["jobs"] == []


async def test_the_graph_of_an_unknown_job_is_404(app: fnb.App, api: Client) -> None:
    for job_id in ("123456789", "not-an-id"):
        reply = await api.get(f"/api/jobs/{job_id}/graph")
        assert reply.status == 404 and job_id in reply["message"]


async def test_a_dead_dependency_shows_in_the_graph(app: fnb.App, api: Client) -> None:
    @app.job(kind="refuse")
    async def refuse(ctx: fnb.JobCtx) -> None:
        raise fnb.Dead("no <data>")

    await app.start()
    bad = await api.post("/api/jobs", {"kind": "refuse"})
    after = await api.post("/api/jobs", {"kind": "later", "depends_on": [bad["id"]]})
    await eventually(lambda: _status(api, after["id"], "dead"))
    graph = await api.get(f"/api/jobs/{after['id']}/graph")
    errors = {n["id"]: n["last_error"] for n in graph["nodes"]}
    assert errors[bad["id"]].endswith("no <data>")
    assert errors[after["id"]] == f"dependency {bad['id']} dead"


async def test_a_job_shows_its_expiry_and_concurrency_key(app: fnb.App, api: Client) -> None:
    """Issue 20: the job JSON carries expires_at and concurrency_key (held: waiting)."""

    @app.job(kind="charge", concurrency_key="customer", key_limit=1)
    async def charge(ctx: fnb.JobCtx, customer: str) -> None:
        return None

    first = await api.post(
        "/api/jobs", {"kind": "charge", "payload": {"customer": "c1"}, "expires_in": 600}
    )
    second = await api.post("/api/jobs", {"kind": "charge", "payload": {"customer": "c1"}})
    job = (await api.get(f"/api/jobs/{first['id']}")).body
    assert job["concurrency_key"] == "charge/c1" and job["expires_at"].endswith("+00:00")
    held = (await api.get(f"/api/jobs/{second['id']}")).body
    assert (held["status"], held["concurrency_key"], held["expires_at"]) == (
        "waiting",
        "charge/c1",
        None,
    )
