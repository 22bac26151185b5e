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
        ("/api/jobs/{job_id}/graph", "get"): await api.get(f"/api/jobs/{made['id']}/graph"),
        ("/api/jobs/{job_id}/graph", "get", 404): await api.get("/api/jobs/123456789/graph"),
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


def schema_of(doc: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    """The schema of a query parameter (``name``) or, for ``name="body"``, of the body."""
    op = doc["paths"][path][method]
    if name == "body":
        return op["requestBody"]["content"]["application/json"]["schema"]
    return next(p["schema"] for p in op["parameters"] if p["name"] == name)


def valid(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> bool:
    return validator(doc, schema).is_valid(value)


async def test_every_operation_documents_the_refusals_it_can_answer(api: Client) -> None:
    """401 everywhere; 403 on mutations; 503 wherever the database is used; 400 where a path
    parameter may be undecodable; 422 wherever a body is read."""
    doc = (await api.get("/api/openapi.json")).body
    for path, item in doc["paths"].items():
        for method, op in item.items():
            codes = set(op["responses"])
            where = f"{method.upper()} {path}"
            assert "401" in codes, where
            assert ("403" in codes) == (method != "get"), where
            assert ("503" in codes) == (path not in ("/api", "/api/openapi.json")), where
            if "{" in path:
                assert {"400", "404"} <= codes, where
            if "requestBody" in op:
                assert {"400", "422"} <= codes, where
            for code, response in op["responses"].items():
                if code.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (where, code)


async def test_refusals_seen_over_http_are_documented(app: fnb.App, api: Client) -> None:
    """Each refusal the fuzz test found undocumented or as a 500 is now a declared JSON error."""
    doc = (await api.get("/api/openapi.json")).body
    await app.ensure_schedule("tick", "*/5 * * * *", "forge_nb.echo")
    made = await api.post("/api/jobs", {"kind": "forge_nb.echo"})
    replies = [
        ("/api/metrics", "get", 400, await api.get("/api/metrics?since=0&until=1e300")),
        ("/api/metrics", "get", 400, await api.get("/api/metrics?since=-99999999999999")),
        ("/api/metrics", "get", 200, await api.get("/api/metrics?until=0")),
        ("/api/jobs", "get", 200, await api.get("/api/jobs?status=&limit=")),
        ("/api/jobs", "post", 422, await api.post("/api/jobs", {"kind": "k", "delay": 1e300})),
        ("/api/jobs", "post", 201, await api.post("/api/jobs", {"kind": "k", "payload": None})),
        ("/api/jobs/retry", "post", 200, await api.call("POST", "/api/jobs/retry", raw=b"null")),
        ("/api/jobs/retry", "post", 200, await api.post("/api/jobs/retry", {"status": ""})),
        (
            "/api/schedules/{name}",
            "patch",
            422,
            await api.patch("/api/schedules/tick", {"kind": ""}),
        ),
        ("/api/jobs/{job_id}", "get", 400, await api.get("/api/jobs/%ff")),
        ("/api/jobs/{job_id}", "delete", 400, await api.delete("/api/jobs/%ff")),
        ("/api/jobs/{job_id}/retry", "post", 400, await api.post("/api/jobs/%ff/retry")),
        ("/api/jobs/{job_id}/cancel", "post", 400, await api.post("/api/jobs/%ff/cancel")),
        ("/api/queues/{name}", "get", 400, await api.get("/api/queues/%ff")),
        ("/api/schedules/{name}", "get", 400, await api.get("/api/schedules/%ff")),
        ("/api/schedules/{name}/run", "post", 400, await api.post("/api/schedules/%ff/run")),
    ]
    for path, method, status, reply in replies:
        assert reply.status == status, (path, method, reply.body)
        check(doc, path, method, reply)
    assert (await api.get(f"/api/jobs/{made['id']}")).status == 200


async def test_document_says_what_empty_and_null_mean(api: Client) -> None:
    """Empty query values and null body fields mean "absent" where the handlers say so, and
    the document's bounds are the storage's (1970..9999, 100 years of delay)."""
    doc = (await api.get("/api/openapi.json")).body
    status = schema_of(doc, "/api/jobs", "get", "status")
    assert valid(doc, status, "") and valid(doc, status, "dead")
    assert not valid(doc, status, "sleeping")
    limit = schema_of(doc, "/api/jobs", "get", "limit")
    assert all(valid(doc, limit, v) for v in ("", 1, 1000))
    assert not any(valid(doc, limit, v) for v in (0, 1001, "ten", " "))

    retry = schema_of(doc, "/api/jobs/retry", "post", "body")
    filters: list[Any] = [None, {}, {"status": None}, {"status": ""}, {"queue": ""}]
    assert all(valid(doc, retry, f) for f in filters)
    not_filters: list[Any] = [[], {"status": "done"}, {"when": "now"}, {"queue": 5}]
    assert not any(valid(doc, retry, f) for f in not_filters)

    enqueue = {"$ref": "#/components/schemas/EnqueueRequest"}
    good: list[dict[str, Any]] = [
        {"kind": "k", "payload": None},
        {"kind": "k", "payload": {"n": 1}},
        {"kind": "k", "delay": 0, "scheduled_at": 0},
        {"kind": "k", "scheduled_at": 253402300799},
        {"kind": "k", "scheduled_at": "2030-01-01T00:00:00Z"},
    ]
    for body in good:
        assert valid(doc, enqueue, body), body
    bad: list[dict[str, Any]] = [
        {"kind": ""},
        {"kind": "k", "payload": []},
        {"kind": "k", "delay": 1e300},
        {"kind": "k", "delay": -1},
        {"kind": "k", "delay": True},
        {"kind": "k", "scheduled_at": 1e300},
        {"kind": "k", "scheduled_at": -1e12},
        {"kind": "k", "scheduled_at": True},
    ]
    for body in bad:
        assert not valid(doc, enqueue, body), body

    changes = {"$ref": "#/components/schemas/ScheduleChanges"}
    assert valid(doc, changes, {"kind": "k"}) and not valid(doc, changes, {"kind": ""})
