"""The OpenAPI 3.1 document served at ``/api/openapi.json``.

The schemas are generated from the Structs of `forge_nb.api.models` (the same ones
that check request bodies); this module adds what a schema cannot say: which route
answers what, and why it may refuse. A test checks that its paths and methods are
exactly the mounted routes and that real responses match its schemas.
"""

from __future__ import annotations

from typing import Any

import msgspec

from forge_nb.api import models
from forge_nb.api.jobs import GRAPH_LIMIT
from forge_nb.runtime.version import VERSION
from forge_nb.storage.records import STATUSES

Schema = dict[str, Any]
REF = "#/components/schemas/{name}"

#: Every model the document names, under its class name (see `models.SCHEMA_NAMES`).
COMPONENTS: list[Any] = [
    models.Error,
    models.Job,
    models.Event,
    models.JobDetail,
    models.JobPage,
    models.EnqueueBody,
    models.Enqueued,
    models.EnqueuedMany,
    models.RetryFilter,
    models.Retried,
    models.Deleted,
    models.StatusCounts,
    models.GraphNode,
    models.GraphEdge,
    models.JobGraph,
    models.AttemptLog,
    models.JobLogs,
    models.BulkFilter,
    models.BulkBody,
    models.BulkDone,
    models.QueueSettings,
    models.Queue,
    models.Queues,
    models.Schedule,
    models.Schedules,
    models.ScheduleChanges,
    models.Process,
    models.Processes,
    models.Latency,
    models.MetricBucket,
    models.Metrics,
    models.Index,
]
#: Components that are not Structs (a map, any object): name -> type.
ALIASES: dict[str, Any] = {"Counts": models.Counts, "OpenApiDocument": models.OpenApiDocument}


def _renamed(node: Any) -> Any:
    """Apply `models.SCHEMA_NAMES` to every ``$ref`` below ``node``."""
    if isinstance(node, dict):
        out = {k: _renamed(v) for k, v in node.items()}
        target = out.get("$ref")
        if isinstance(target, str):
            name = target.rsplit("/", 1)[1]
            out["$ref"] = REF.format(name=models.SCHEMA_NAMES.get(name, name))
        return out
    if isinstance(node, list):
        return [_renamed(v) for v in node]
    return node


def build_schemas() -> tuple[dict[str, Schema], dict[Any, Schema]]:
    """(components, schema of each type used in `PATHS`) from the models, generated once."""
    types = [*COMPONENTS, *ALIASES.values(), models.EnqueueBodies, models.RetryFilter | None]
    found, components = msgspec.json.schema_components(types, ref_template=REF)
    schemas = {models.SCHEMA_NAMES.get(k, k): _renamed(v) for k, v in components.items()}
    for index, name in enumerate(ALIASES, len(COMPONENTS)):
        schemas[name] = _renamed(found[index])
    for name, extra in models.SCHEMA_EXTRAS.items():
        schemas[name].update(extra)
    by_type = {t: _renamed(s) for t, s in zip(types, found, strict=True) if t not in COMPONENTS}
    return schemas, by_type


SCHEMAS, _INLINE = build_schemas()


def ref(model: Any) -> Schema:
    """A reference to a component, the inline schema of a union, or ``model`` if a schema."""
    if isinstance(model, dict):
        return model
    if model in _INLINE:
        return _INLINE[model]
    name = model if isinstance(model, str) else model.__name__
    return {"$ref": REF.format(name=models.SCHEMA_NAMES.get(name, name))}


#: What an enqueue answers: one job (object body) or a summary (array body).
ENQUEUED = {"oneOf": [ref(models.Enqueued), ref(models.EnqueuedMany)]}


def ok(model: Any, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref(model)}}}


def error(description: str) -> dict[str, Any]:
    return ok(models.Error, description)


def body(model: Any, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": ref(model)}}}


def query(name: str, description: str, schema: Schema | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


JOB_ID = path_param("job_id", "the job's id")
QUEUE_NAME = path_param("name", "the queue's name")
SCHEDULE_NAME = path_param("name", "the schedule's name")
TIME_HELP = (
    "epoch seconds, ISO 8601 (naive = UTC) or a span ago: 30m, 6h, 7d; "
    "from 1970-01-01 to 9999-12-31 UTC"
)

BAD_REQUEST = error(
    "malformed request: a query value, a path that is not UTF-8, or a body that is not JSON"
)
INVALID = error("the request is well-formed but its values are invalid")
NOT_FOUND = error("no such job, queue or schedule")
CONFLICT = error("the job's state does not allow this")
#: Every mutation can be refused the same two ways.
MUTATION_REFUSALS = {
    "403": error("read-only mode, or a cross-origin browser request"),
}
AUTH = {"401": error("auth is on and no valid credentials were sent")}
#: Every route that reads or writes the database.
UNAVAILABLE = {"503": error("the database cannot be reached or refused the operation")}


def operation(
    op_id: str,
    summary: str,
    responses: dict[str, Any],
    *,
    parameters: list[dict[str, Any]] | None = None,
    request_body: dict[str, Any] | None = None,
    mutation: bool = False,
    database: bool = True,
    tag: str = "jobs",
) -> dict[str, Any]:
    """One operation; the refusals every route shares are added to ``responses``.

    401 always; 403 for a mutation; 503 when it uses the database (``database``); 400 when
    a path parameter may arrive undecodable (Tornado refuses a path that is not UTF-8).
    """
    out: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag]}
    if parameters:
        out["parameters"] = parameters
    if request_body:
        out["requestBody"] = request_body
    shared: dict[str, Any] = {**AUTH}
    if any(p["in"] == "path" for p in parameters or ()):
        shared["400"] = BAD_REQUEST
    if mutation:
        shared.update(MUTATION_REFUSALS)
    if database:
        shared.update(UNAVAILABLE)
    out["responses"] = {**responses, **shared}
    return out


def get_one(op_id: str, summary: str, model: Any, param: Schema, tag: str) -> dict[str, Any]:
    """Read one named resource (404 when there is none)."""
    responses = {"200": ok(model), "404": NOT_FOUND}
    return operation(op_id, summary, responses, parameters=[param], tag=tag)


def edit_one(
    op_id: str, summary: str, model: Any, changes: Any, param: Schema, tag: str
) -> dict[str, Any]:
    """Change one named resource with a ``changes`` body; answer it as ``model``."""
    responses = {"200": ok(model), "400": BAD_REQUEST, "404": NOT_FOUND, "422": INVALID}
    return operation(
        op_id,
        summary,
        responses,
        parameters=[param],
        request_body=body(changes),
        mutation=True,
        tag=tag,
    )


def list_all(op_id: str, summary: str, model: Any, tag: str) -> dict[str, Any]:
    """Read a whole collection (no parameters, nothing to refuse but the shared refusals)."""
    return operation(op_id, summary, {"200": ok(model)}, tag=tag)


def filtered(
    op_id: str, summary: str, model: Any, parameters: list[dict[str, Any]], tag: str = "jobs"
) -> dict[str, Any]:
    """A read narrowed by query ``parameters``: 400 when a value is malformed."""
    responses = {"200": ok(model), "400": BAD_REQUEST}
    return operation(op_id, summary, responses, parameters=parameters, tag=tag)


def named(
    get: tuple[str, str], patch: tuple[str, str], model: Any, changes: Any, param: Schema, tag: str
) -> dict[str, Any]:
    """A named resource read with GET and changed with PATCH: (operationId, summary) each."""
    return {
        "get": get_one(*get, model, param, tag),
        "patch": edit_one(*patch, model, changes, param, tag),
    }


def job_action(op_id: str, summary: str, answers: dict[str, Any]) -> dict[str, Any]:
    """A change to one job: 404 for an unknown id, 409 when its state does not allow it."""
    responses = {**answers, "404": NOT_FOUND, "409": CONFLICT}
    return operation(op_id, summary, responses, parameters=[JOB_ID], mutation=True)


def jobs_action(op_id: str, summary: str, model: Any, request_body: Schema) -> dict[str, Any]:
    """A change to the jobs a body lists or matches: 400 for a malformed body, 422 for
    values out of range; the answer says what was done (``model``)."""
    responses = {"200": ok(model), "400": BAD_REQUEST, "422": INVALID}
    return operation(op_id, summary, responses, request_body=request_body, mutation=True)


PATHS: dict[str, dict[str, Any]] = {
    "/api": {
        "get": operation(
            "index",
            "What this API is and where its document lives",
            {"200": ok(models.Index)},
            database=False,
            tag="meta",
        )
    },
    "/api/openapi.json": {
        "get": operation(
            "openapi", "This document", {"200": ok("OpenApiDocument")}, database=False, tag="meta"
        )
    },
    "/api/jobs": {
        "get": filtered(
            "listJobs",
            "Jobs newest first, keyset paged; every filter is optional and ANDed; "
            "an empty query value is the same as none",
            models.JobPage,
            [
                query(
                    "status", "job status; empty: any", {"type": "string", "enum": ["", *STATUSES]}
                ),
                query("queue", "queue name; empty: any"),
                query("kind", "job kind; empty: any"),
                query(
                    "search",
                    "substring of the payload JSON (case-insensitive ASCII); empty: any. "
                    "A search page scans 50,000 job ids, so it may hold fewer than `limit` "
                    "jobs and still have a `next_cursor` to the older ids",
                ),
                query("tag", "only jobs carrying this tag; empty: any"),
                query(
                    "limit",
                    "page size; empty: 50",
                    {
                        "anyOf": [
                            {"type": "integer", "minimum": 1, "maximum": 1000},
                            {"type": "string", "maxLength": 0},
                        ],
                        "default": 50,
                    },
                ),
                query("cursor", "`next_cursor` of the previous page; empty: the first page"),
            ],
        ),
        "post": operation(
            "enqueue",
            "Enqueue a job (object) or many in one transaction (array)",
            {
                "201": ok(ENQUEUED, "created (array: at least one created)"),
                "200": ok(ENQUEUED, "a live job already holds the unique key: that job"),
                "400": BAD_REQUEST,
                "422": INVALID,
            },
            request_body=body(models.EnqueueBodies),
            mutation=True,
        ),
    },
    "/api/jobs/retry": {
        "post": jobs_action(
            "retryMatching",
            "Retry every dead (or failed) job matching a filter",
            models.Retried,
            body(models.RetryFilter | None, required=False),
        )
    },
    "/api/jobs/bulk": {
        "post": jobs_action(
            "bulkAction",
            "Retry, cancel, delete or run now the jobs listed or matching a filter",
            models.BulkDone,
            body(models.BulkBody),
        )
    },
    "/api/jobs/{job_id}": {
        "get": get_one(
            "getJob", "One job with its event history", models.JobDetail, JOB_ID, "jobs"
        ),
        "delete": job_action(
            "deleteJob", "Delete a job that is not running", {"200": ok(models.Deleted)}
        ),
    },
    "/api/jobs/{job_id}/graph": {
        "get": get_one(
            "getJobGraph",
            f"The workflow around a job: every job connected to it by dependencies, "
            f"nearest first, at most {GRAPH_LIMIT}",
            models.JobGraph,
            JOB_ID,
            "jobs",
        )
    },
    "/api/jobs/{job_id}/logs": {
        "get": get_one(
            "getJobLogs",
            "What a job printed and logged, per attempt (live while it runs, at most 0.5 s behind)",
            models.JobLogs,
            JOB_ID,
            "jobs",
        )
    },
    "/api/jobs/{job_id}/retry": {
        "post": job_action(
            "retryJob",
            "A dead or failed job runs again now, attempts reset",
            {"200": ok(models.Job)},
        )
    },
    "/api/jobs/{job_id}/cancel": {
        "post": job_action(
            "cancelJob",
            "Cancel a job: pending/failed end dead now; a running one stops where it runs",
            {
                "200": ok(models.Job, "cancelled (now dead, error 'cancelled')"),
                "202": ok(models.Job, "running: cancel requested, it stops within a heartbeat"),
            },
        )
    },
    "/api/counts": {
        "get": operation("counts", "{queue: {status: n}}", {"200": ok("Counts")}, tag="queues")
    },
    "/api/queues": {
        "get": list_all(
            "listQueues", "Every queue's live config and counts", models.Queues, "queues"
        )
    },
    "/api/queues/{name}": named(
        ("getQueue", "One queue"),
        (
            "updateQueue",
            "Change live settings (workers, pause, backoff, retention); workers follow next tick",
        ),
        models.Queue,
        models.QueueSettings,
        QUEUE_NAME,
        "queues",
    ),
    "/api/schedules": {
        "get": list_all("listSchedules", "Every cron schedule", models.Schedules, "cron")
    },
    "/api/schedules/{name}": named(
        ("getSchedule", "One schedule"),
        (
            "updateSchedule",
            "Enable/disable, or change expression, kind, payload, queue or time zone",
        ),
        models.Schedule,
        models.ScheduleChanges,
        SCHEDULE_NAME,
        "cron",
    ),
    "/api/schedules/{name}/run": {
        "post": operation(
            "runSchedule",
            "Enqueue the schedule's job now (its timetable is unchanged)",
            {
                "201": ok(models.Enqueued),
                "200": ok(models.Enqueued),
                "404": NOT_FOUND,
                "422": INVALID,
            },
            parameters=[SCHEDULE_NAME],
            mutation=True,
            tag="cron",
        )
    },
    "/api/processes": {
        "get": list_all(
            "listProcesses",
            "One record per worker slot of every live process",
            models.Processes,
            "monitoring",
        )
    },
    "/api/metrics": {
        "get": filtered(
            "metrics",
            "Per-minute (or 5-minute, or hourly), per-queue counts and latency percentiles; "
            "default range: last hour",
            models.Metrics,
            [
                query("queue", "one queue; empty: all"),
                query(
                    "step",
                    "bucket width in minutes: 1, 5 or 60 (cheap for long ranges); empty: 1",
                    {"enum": ["", "1", "5", "60"], "default": "1"},
                ),
                query("since", TIME_HELP + "; absent or empty: an hour before until"),
                query("until", TIME_HELP + "; absent or empty: now"),
            ],
            tag="monitoring",
        )
    },
}


def openapi_document(api_root: str = "/api", read_only: bool = False) -> dict[str, Any]:
    """The document, with paths relative to where the API is mounted (``api_root``)."""
    base = api_root[: -len("/api")] if api_root.endswith("/api") else ""
    description = (
        "JSON API of forge-nb, served next to the dashboard. Errors are "
        '`{"status", "error", "message"}`. With auth on, every route needs HTTP Basic '
        "credentials (401 otherwise). Mutations are refused with 403 in read-only mode "
        "and from cross-origin browser pages."
    )
    if read_only:
        description += " **This server is read-only.**"
    return {
        "openapi": "3.1.0",
        "info": {"title": "forge-nb", "version": VERSION, "description": description},
        "servers": [{"url": base or "/"}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
        },
        "security": [{}, {"basic": []}],
    }
