"""The OpenAPI document tells the truth: same routes and methods, and real replies fit its schemas."""

from __future__ import annotations

from typing import Any

import jsonschema

import forge_nb as fnb
from forge_nb.api.routes import ROUTES
from tests.api.conftest import Client, eventually

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator whose ``#/components/...`` references resolve inside the document."""
    return jsonschema.Draft202012Validator({**schema, "components": doc["components"]})


def check(doc: dict[str, Any], path: str, method: str, reply: Any) -> None:
    """``reply`` is valid against what the document declares for this status."""
    responses = doc["paths"][path][method]["responses"]
    declared = responses.get(str(reply.status))
    assert declared is not None, f"{method.upper()} {path} answered {reply.status}, not declared"
    schema = declared["content"]["application/json"]["schema"]
    errors = sorted(validator(doc, schema).iter_errors(reply.body), key=str)
    assert not errors, f"{method.upper()} {path} {reply.status}: {errors[0].message}"


def refs_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for value in node.values() for r in refs_in(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs_in(value)]
    return []


async def test_document_lists_exactly_the_routes_and_methods(api: Client) -> None:
    reply = await api.get("/api/openapi.json")
    assert reply.status == 200
    doc = reply.body
    assert doc["openapi"].startswith("3.1") and doc["info"]["version"] == fnb.__version__
    jsonschema.Draft202012Validator.check_schema({"$defs": doc["components"]["schemas"]})

    mounted = {"/api" + template: handler for template, handler in ROUTES}
    assert set(doc["paths"]) == set(mounted)
    for path, handler in mounted.items():
        documented = {m for m in doc["paths"][path] if m in HTTP_METHODS}
        assert documented == {m.lower() for m in handler.allowed_methods()}, path
    ops = [op for item in doc["paths"].values() for m, op in item.items() if m in HTTP_METHODS]
    assert len({op["operationId"] for op in ops}) == len(ops)
    for name in refs_in(doc):
        assert name.startswith("#/components/schemas/")
        assert name.rsplit("/", 1)[1] in doc["components"]["schemas"], name
    for op in ops:
        assert "401" in op["responses"]
    index = await api.get("/api")
    assert index["openapi"] == "/api/openapi.json"


async def test_real_replies_match_the_documented_schemas(app: fnb.App, api: Client) -> None:
    doc = (await api.get("/api/openapi.json")).body

    @app.job(kind="double")
    async def double(ctx: fnb.JobCtx, n: int) -> int:
        return 2 * n

    await app.ensure_schedule("often", "*/5 * * * *", "double", payload={"n": 1})
    await app.start()

    made = await api.post("/api/jobs", {"kind": "double", "payload": {"n": 4}})
    check(doc, "/api/jobs", "post", made)
    many = await api.post("/api/jobs", [{"kind": "double", "payload": {"n": 1}}])
    check(doc, "/api/jobs", "post", many)
    await eventually(lambda: _done(api, made["id"]))
    await eventually(lambda: _has_processes(api))

    replies = {
        ("/api", "get"): await api.get("/api"),
        ("/api/jobs", "get"): await api.get("/api/jobs"),
        ("/api/jobs", "get", 400): await api.get("/api/jobs?limit=0"),
        ("/api/jobs/{job_id}", "get"): await api.get(f"/api/jobs/{made['id']}"),
        ("/api/jobs/{job_id}", "get", 404): await api.get("/api/jobs/123456789"),
        ("/api/jobs/{job_id}/retry", "post"): await api.post(f"/api/jobs/{made['id']}/retry"),
        ("/api/jobs/retry", "post"): await api.post("/api/jobs/retry", {"status": "failed"}),
        ("/api/counts", "get"): await api.get("/api/counts"),
        ("/api/queues", "get"): await api.get("/api/queues"),
        ("/api/queues/{name}", "patch"): await api.patch("/api/queues/default", {"workers": 2}),
        ("/api/queues/{name}", "patch", 422): await api.patch("/api/queues/default", {"x": 1}),
        ("/api/schedules", "get"): await api.get("/api/schedules"),
        ("/api/schedules/{name}", "patch"): await api.patch(
            "/api/schedules/often", {"enabled": False}
        ),
        ("/api/schedules/{name}/run", "post"): await api.post("/api/schedules/often/run"),
        ("/api/processes", "get"): await api.get("/api/processes"),
        ("/api/metrics", "get"): await api.get("/api/metrics?since=1h"),
    }
    for key, reply in replies.items():
        check(doc, key[0], key[1], reply)
    assert replies[("/api/jobs/{job_id}/retry", "post")].status == 409  # done: a declared error
    cancel = await api.post(f"/api/jobs/{many['jobs'][0]['id']}/cancel")
    check(doc, "/api/jobs/{job_id}/cancel", "post", cancel)
    deleted = await api.delete(f"/api/jobs/{made['id']}")
    check(doc, "/api/jobs/{job_id}", "delete", deleted)


async def _done(api: Client, job_id: str) -> bool:
    return (await api.get(f"/api/jobs/{job_id}"))["status"] == "done"


async def _has_processes(api: Client) -> bool:
    return bool((await api.get("/api/processes"))["processes"])
