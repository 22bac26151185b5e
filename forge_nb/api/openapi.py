"""The OpenAPI 3.1 document served at ``/api/openapi.json``.

Written by hand next to the handlers; a test checks that its paths and methods
are exactly the mounted routes and that real responses match its schemas.
"""

from __future__ import annotations

from typing import Any

from forge_nb.runtime.runtime import VERSION
from forge_nb.storage.records import METRIC_COUNTERS, STATUSES
from forge_nb.storage.validation import MAX_DELAY_S, MAX_NAME_LENGTH, MAX_TIMESTAMP

Schema = dict[str, Any]

PERCENTILES = tuple(f"{p}_p{q}" for p in ("processing", "e2e") for q in (50, 95, 99))


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(type_: str, **extra: Any) -> Schema:
    return {"type": [type_, "null"], **extra}


def obj(properties: dict[str, Schema], required: list[str] | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required is not None:
        schema["required"] = required
    return schema


def listing(key: str, item: str, **more: Schema) -> Schema:
    return obj({key: {"type": "array", "items": ref(item)}, **more}, [key, *more])


TIME = {"type": "string", "format": "date-time"}
TIME_OR_NULL = nullable("string", format="date-time")
STATUS = {"type": "string", "enum": list(STATUSES)}
ANY_JSON: Schema = {}
#: A job kind (or queue, schedule) name as the storage accepts it.
NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH}
#: Epoch seconds the storage accepts: 1970-01-01 to 9999-12-31 UTC.
EPOCH_RANGE = {"minimum": 0, "maximum": MAX_TIMESTAMP}

JOB = obj(
    {
        "id": {"type": "string"},
        "kind": {"type": "string"},
        "queue": {"type": "string"},
        "status": STATUS,
        "priority": {"type": "integer", "description": "higher runs first"},
        "attempts": {"type": "integer", "description": "runs started (SPEC §4)"},
        "max_attempts": {"type": "integer"},
        "payload": {"type": "object"},
        "result": ANY_JSON,
        "last_error": nullable("string", description="error chain 'top: middle: root'"),
        "last_traceback": nullable("string"),
        "progress": nullable("number", minimum=0, maximum=1),
        "progress_message": nullable("string"),
        "unique_key": nullable("string"),
        "created_at": TIME,
        "scheduled_at": TIME,
        "started_at": TIME_OR_NULL,
        "finished_at": TIME_OR_NULL,
        "claimed_by": nullable("string"),
        "cancel_requested_at": TIME_OR_NULL,
        "code_version": nullable(
            "string", description="shipped code version the job runs (null: the worker's own)"
        ),
    },
    ["id", "kind", "queue", "status", "attempts", "max_attempts", "payload", "created_at"],
)

SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        {
            "status": {"type": "integer"},
            "error": {"type": "string", "description": "HTTP reason phrase"},
            "message": {"type": "string", "description": "what went wrong, for people"},
        },
        ["status", "error", "message"],
    ),
    "Job": JOB,
    "Event": obj(
        {
            "at": TIME,
            "event": {
                "type": "string",
                "description": "enqueued, started, failed, throttled, retried, done, dead, …",
            },
            "attempt": {"type": "integer"},
            "message": nullable("string"),
        },
        ["at", "event", "attempt"],
    ),
    "JobDetail": {
        "allOf": [
            ref("Job"),
            obj({"events": {"type": "array", "items": ref("Event")}}, ["events"]),
        ]
    },
    "JobPage": listing(
        "jobs",
        "Job",
        next_cursor=nullable("string", description="pass as `cursor` for the next page"),
    ),
    "EnqueueRequest": obj(
        {
            "kind": NAME,
            "payload": nullable("object", description="named arguments of the job; null: none"),
            "queue": nullable("string", description="default: the job's queue or the router's"),
            "priority": nullable("integer"),
            "delay": nullable(
                "number",
                minimum=0,
                maximum=MAX_DELAY_S,
                description="seconds before it may run (at most 100 years)",
            ),
            "scheduled_at": {
                "type": ["string", "number", "null"],
                **EPOCH_RANGE,
                "description": "when it may run, wins over delay: ISO 8601 (naive = UTC) or "
                "epoch seconds, from 1970-01-01 to 9999-12-31 UTC",
            },
            "unique_key": nullable("string"),
            "max_attempts": nullable("integer", minimum=1),
        },
        ["kind"],
        additionalProperties=False,
    ),
    "Enqueued": {
        "allOf": [
            ref("Job"),
            obj(
                {"outcome": {"type": "string", "enum": ["created", "duplicate"]}},
                ["outcome"],
            ),
        ]
    },
    "EnqueuedMany": obj(
        {
            "jobs": {
                "type": "array",
                "items": obj(
                    {
                        "id": {"type": "string"},
                        "kind": {"type": "string"},
                        "outcome": {"type": "string", "enum": ["created", "duplicate"]},
                    },
                    ["id", "kind", "outcome"],
                ),
            },
            "created": {"type": "integer"},
            "duplicates": {"type": "integer"},
        },
        ["jobs", "created", "duplicates"],
    ),
    "RetryFilter": {
        **obj(
            {
                "status": {
                    "type": ["string", "null"],
                    "enum": ["dead", "failed", "", None],
                    "default": "dead",
                    "description": "jobs in this status; null or empty: dead",
                },
                "queue": nullable("string", description="null or empty: every queue"),
                "kind": nullable("string", description="null or empty: every kind"),
                "search": nullable(
                    "string", description="substring of the payload JSON; null or empty: any"
                ),
            },
            additionalProperties=False,
        ),
        "type": ["object", "null"],
        "description": "every field is optional; null (or no body) retries every dead job",
    },
    "Retried": obj(
        {"retried": {"type": "integer"}, "status": {"type": "string"}}, ["retried", "status"]
    ),
    "Deleted": obj({"id": {"type": "string"}, "deleted": {"type": "boolean"}}, ["id", "deleted"]),
    "StatusCounts": obj(
        {s: {"type": "integer"} for s in STATUSES}, list(STATUSES), additionalProperties=False
    ),
    "Counts": {"type": "object", "additionalProperties": ref("StatusCounts")},
    "QueueSettings": obj(
        {
            "workers": {"type": "integer", "minimum": 0, "maximum": 10000},
            "paused": {"type": "boolean"},
            "backoff_enabled": {"type": "boolean"},
            "backoff_base_seconds": {"type": "number", "exclusiveMinimum": 0},
            "backoff_max_seconds": {"type": "number", "minimum": 0},
            "backoff_jitter": {"type": "boolean"},
            "retain_done_seconds": {"type": "number", "minimum": 0},
            "retain_dead_seconds": {"type": "number", "minimum": 0},
        },
        additionalProperties=False,
        minProperties=1,
    ),
    "Queue": obj(
        {
            "name": {"type": "string"},
            "workers": {"type": "integer"},
            "paused": {"type": "boolean"},
            "backoff_enabled": {"type": "boolean"},
            "backoff_base_seconds": {"type": "number"},
            "backoff_max_seconds": {"type": "number"},
            "backoff_jitter": {"type": "boolean"},
            "retain_done_seconds": {"type": "number"},
            "retain_dead_seconds": {"type": "number"},
            "counts": ref("StatusCounts"),
        },
        ["name", "workers", "paused", "backoff_enabled", "counts"],
    ),
    "Queues": listing("queues", "Queue"),
    "Schedule": obj(
        {
            "name": {"type": "string"},
            "cron": {"type": "string", "description": "5 fields, or 6 with seconds first"},
            "kind": {"type": "string"},
            "payload": {"type": "object"},
            "queue": {"type": "string"},
            "enabled": {"type": "boolean"},
            "tz": {"type": "string"},
            "last_fire_at": TIME_OR_NULL,
            "next_fire_at": TIME_OR_NULL,
        },
        ["name", "cron", "kind", "payload", "queue", "enabled", "last_fire_at", "next_fire_at"],
    ),
    "Schedules": listing("schedules", "Schedule"),
    "ScheduleChanges": obj(
        {
            "enabled": {"type": "boolean"},
            "cron": {"type": "string"},
            "kind": NAME,
            "payload": {"type": "object"},
            "queue": {"type": "string", "description": "empty: the kind's default queue"},
            "tz": {"type": "string"},
        },
        additionalProperties=False,
        minProperties=1,
    ),
    "Process": obj(
        {
            "id": {"type": "string", "description": "{queue}-{slot}-{host_id}"},
            "host_id": {"type": "string"},
            "hostname": {"type": "string"},
            "pid": {"type": "integer"},
            "queue": {"type": "string"},
            "current_job": nullable("string"),
            "last_heartbeat": TIME,
            "started_at": TIME,
            "version": {"type": "string"},
            "kinds": {
                "type": "array",
                "items": {"type": "string"},
                "description": "the kinds this process runs: it claims only these",
            },
        },
        ["id", "host_id", "hostname", "pid", "queue", "current_job", "last_heartbeat"],
    ),
    "Processes": listing("processes", "Process"),
    "Latency": obj(
        {k: nullable("number", description="seconds") for k in PERCENTILES}, list(PERCENTILES)
    ),
    "MetricBucket": obj(
        {
            "minute": TIME,
            "queue": {"type": "string"},
            **{c: {"type": "integer"} for c in METRIC_COUNTERS},
            **{k: nullable("number", description="seconds") for k in PERCENTILES},
        },
        ["minute", "queue", *METRIC_COUNTERS, *PERCENTILES],
    ),
    "Metrics": obj(
        {
            "queue": nullable("string"),
            "since": TIME,
            "until": TIME,
            "step": {"type": "integer", "enum": [1, 5, 60], "description": "bucket minutes"},
            "metrics": {"type": "array", "items": ref("MetricBucket")},
            "latency": ref("Latency"),
        },
        ["since", "until", "step", "metrics", "latency"],
    ),
    "Index": obj(
        {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "openapi": {"type": "string"},
            "read_only": {"type": "boolean"},
        },
        ["name", "version", "openapi", "read_only"],
    ),
    "OpenApiDocument": {"type": "object"},
}


def error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": ref("Error")}},
    }


def ok(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref(schema)}}}


def body(schema: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": ref(schema)}}}


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


PATHS: dict[str, dict[str, Any]] = {
    "/api": {
        "get": operation(
            "index",
            "What this API is and where its document lives",
            {"200": ok("Index")},
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
        "get": operation(
            "listJobs",
            "Jobs newest first, keyset paged; every filter is optional and ANDed; "
            "an empty query value is the same as none",
            {"200": ok("JobPage"), "400": BAD_REQUEST},
            parameters=[
                query("status", "job status; empty: any", {**STATUS, "enum": ["", *STATUSES]}),
                query("queue", "queue name; empty: any"),
                query("kind", "job kind; empty: any"),
                query(
                    "search",
                    "substring of the payload JSON (case-insensitive ASCII); empty: any. "
                    "A search page scans 50,000 job ids, so it may hold fewer than `limit` "
                    "jobs and still have a `next_cursor` to the older ids",
                ),
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
                "201": {
                    "description": "created (array: at least one created)",
                    "content": {
                        "application/json": {
                            "schema": {"oneOf": [ref("Enqueued"), ref("EnqueuedMany")]}
                        }
                    },
                },
                "200": {
                    "description": "a live job already holds the unique key: that job",
                    "content": {
                        "application/json": {
                            "schema": {"oneOf": [ref("Enqueued"), ref("EnqueuedMany")]}
                        }
                    },
                },
                "400": BAD_REQUEST,
                "422": INVALID,
            },
            request_body={
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                ref("EnqueueRequest"),
                                {"type": "array", "items": ref("EnqueueRequest"), "minItems": 1},
                            ]
                        }
                    }
                },
            },
            mutation=True,
        ),
    },
    "/api/jobs/retry": {
        "post": operation(
            "retryMatching",
            "Retry every dead (or failed) job matching a filter",
            {"200": ok("Retried"), "400": BAD_REQUEST, "422": INVALID},
            request_body=body("RetryFilter", required=False),
            mutation=True,
        )
    },
    "/api/jobs/{job_id}": {
        "get": operation(
            "getJob",
            "One job with its event history",
            {"200": ok("JobDetail"), "404": NOT_FOUND},
            parameters=[JOB_ID],
        ),
        "delete": operation(
            "deleteJob",
            "Delete a job that is not running",
            {"200": ok("Deleted"), "404": NOT_FOUND, "409": CONFLICT},
            parameters=[JOB_ID],
            mutation=True,
        ),
    },
    "/api/jobs/{job_id}/retry": {
        "post": operation(
            "retryJob",
            "A dead or failed job runs again now, attempts reset",
            {"200": ok("Job"), "404": NOT_FOUND, "409": CONFLICT},
            parameters=[JOB_ID],
            mutation=True,
        )
    },
    "/api/jobs/{job_id}/cancel": {
        "post": operation(
            "cancelJob",
            "Cancel a job: pending/failed end dead now; a running one stops where it runs",
            {
                "200": ok("Job", "cancelled (now dead, error 'cancelled')"),
                "202": ok("Job", "running: cancel requested, it stops within a heartbeat"),
                "404": NOT_FOUND,
                "409": CONFLICT,
            },
            parameters=[JOB_ID],
            mutation=True,
        )
    },
    "/api/counts": {
        "get": operation("counts", "{queue: {status: n}}", {"200": ok("Counts")}, tag="queues")
    },
    "/api/queues": {
        "get": operation(
            "listQueues",
            "Every queue's live config and counts",
            {"200": ok("Queues")},
            tag="queues",
        )
    },
    "/api/queues/{name}": {
        "get": operation(
            "getQueue",
            "One queue",
            {"200": ok("Queue"), "404": NOT_FOUND},
            parameters=[QUEUE_NAME],
            tag="queues",
        ),
        "patch": operation(
            "updateQueue",
            "Change live settings (workers, pause, backoff, retention); workers follow next tick",
            {"200": ok("Queue"), "400": BAD_REQUEST, "404": NOT_FOUND, "422": INVALID},
            parameters=[QUEUE_NAME],
            request_body=body("QueueSettings"),
            mutation=True,
            tag="queues",
        ),
    },
    "/api/schedules": {
        "get": operation(
            "listSchedules", "Every cron schedule", {"200": ok("Schedules")}, tag="cron"
        )
    },
    "/api/schedules/{name}": {
        "get": operation(
            "getSchedule",
            "One schedule",
            {"200": ok("Schedule"), "404": NOT_FOUND},
            parameters=[SCHEDULE_NAME],
            tag="cron",
        ),
        "patch": operation(
            "updateSchedule",
            "Enable/disable, or change expression, kind, payload, queue or time zone",
            {"200": ok("Schedule"), "400": BAD_REQUEST, "404": NOT_FOUND, "422": INVALID},
            parameters=[SCHEDULE_NAME],
            request_body=body("ScheduleChanges"),
            mutation=True,
            tag="cron",
        ),
    },
    "/api/schedules/{name}/run": {
        "post": operation(
            "runSchedule",
            "Enqueue the schedule's job now (its timetable is unchanged)",
            {"201": ok("Enqueued"), "200": ok("Enqueued"), "404": NOT_FOUND, "422": INVALID},
            parameters=[SCHEDULE_NAME],
            mutation=True,
            tag="cron",
        )
    },
    "/api/processes": {
        "get": operation(
            "listProcesses",
            "One record per worker slot of every live process",
            {"200": ok("Processes")},
            tag="monitoring",
        )
    },
    "/api/metrics": {
        "get": operation(
            "metrics",
            "Per-minute (or 5-minute, or hourly), per-queue counts and latency percentiles; "
            "default range: last hour",
            {"200": ok("Metrics"), "400": BAD_REQUEST},
            parameters=[
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
