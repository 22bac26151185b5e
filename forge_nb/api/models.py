"""The API's records and request bodies, described once as msgspec Structs.

Why Structs: the OpenAPI schemas (`forge_nb.api.openapi`) are generated from these
classes and the request bodies are checked against the same classes (`checked`), so
the document and the validation cannot drift apart. Answers are still built as
plain dicts by `forge_nb.api.convert`; the tests check them against these schemas.
The docstrings below are the schemas' descriptions: they are written for API users.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from forge_nb.api.convert import BadInput
from forge_nb.storage.records import (
    METRIC_COUNTERS,
    QUEUE_KNOB_ALIASES,
    QUEUE_KNOBS,
    STATUSES,
    Status,
)
from forge_nb.storage.validation import MAX_DELAY_S, MAX_NAME_LENGTH, MAX_TIMESTAMP

PERCENTILES = tuple(f"{p}_p{q}" for p in ("processing", "e2e") for q in (50, 95, 99))

#: ISO 8601 text, as every time in an answer is written.
Time = Annotated[str, Meta(extra_json_schema={"format": "date-time"})]
#: A job kind (or schedule kind) as the storage accepts it.
Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
Seconds = Annotated[float, Meta(description="seconds")]
Outcome = Literal["created", "duplicate", "replaced"]
#: A job id as a request names it.
JobId = Annotated[str, Meta(min_length=1, max_length=64)]
#: Dependencies one enqueue may name (a fan-in over 10,000 jobs is the pinned case).
MAX_DEPENDENCIES = 10_000


# -- answers ----------------------------------------------------------------------------------


class Error(Struct, kw_only=True):
    """Every refusal: the status again, its reason phrase and what went wrong."""

    status: int
    error: Annotated[str, Meta(description="HTTP reason phrase")]
    message: Annotated[str, Meta(description="what went wrong, for people")]


class Job(Struct, kw_only=True):
    """A job (SPEC §4 field names, times in ISO 8601 UTC)."""

    id: str
    kind: str
    queue: str
    status: Status
    priority: Annotated[int, Meta(description="higher runs first")] | UnsetType = UNSET
    attempts: Annotated[int, Meta(description="runs started (SPEC §4)")]
    max_attempts: int
    payload: dict[str, Any]
    result: Any = UNSET
    last_error: (
        Annotated[str | None, Meta(description="error chain 'top: middle: root'")] | UnsetType
    ) = UNSET
    last_traceback: str | UnsetType | None = UNSET
    progress: Annotated[float, Meta(ge=0, le=1)] | UnsetType | None = UNSET
    progress_message: str | UnsetType | None = UNSET
    unique_key: str | UnsetType | None = UNSET
    created_at: Time
    scheduled_at: Time | UnsetType = UNSET
    started_at: Time | UnsetType | None = UNSET
    finished_at: Time | UnsetType | None = UNSET
    claimed_by: str | UnsetType | None = UNSET
    cancel_requested_at: Time | UnsetType | None = UNSET
    code_version: (
        Annotated[
            str | None,
            Meta(description="shipped code version the job runs (null: the worker's own)"),
        ]
        | UnsetType
    ) = UNSET
    dependencies: (
        Annotated[int, Meta(ge=0, description="how many jobs it depends on (`depends_on`)")]
        | UnsetType
    ) = UNSET
    waiting_on: (
        Annotated[int, Meta(ge=0, description="its dependencies not done yet (while waiting)")]
        | UnsetType
    ) = UNSET
    tags: Annotated[list[str], Meta(description="its tags, sorted")] | UnsetType = UNSET
    expires_at: (
        Annotated[
            Time | None,
            Meta(description="expires_in's deadline for its first start (null: none)"),
        ]
        | UnsetType
    ) = UNSET
    concurrency_key: (
        Annotated[
            str | None,
            Meta(description="per-key concurrency key '<kind>/<value>' (null: none)"),
        ]
        | UnsetType
    ) = UNSET


class Event(Struct, kw_only=True):
    """One entry of a job's history."""

    at: Time
    event: Annotated[
        str, Meta(description="enqueued, started, failed, throttled, retried, done, dead, …")
    ]
    attempt: int
    message: str | UnsetType | None = UNSET


class JobDetail(Job, kw_only=True):
    """A job with its event history."""

    events: list[Event]


class JobPage(Struct, kw_only=True):
    """One page of jobs, newest first."""

    jobs: list[Job]
    next_cursor: Annotated[str | None, Meta(description="pass as `cursor` for the next page")]


class Enqueued(Job, kw_only=True):
    """The job an enqueue stored, or the live job already holding its unique key."""

    outcome: Outcome


class EnqueuedJob(Struct, kw_only=True):
    """One job of a bulk enqueue."""

    id: str
    kind: str
    outcome: Outcome


class EnqueuedMany(Struct, kw_only=True):
    """What a bulk enqueue stored (all in one transaction)."""

    jobs: list[EnqueuedJob]
    created: int
    duplicates: int


class Retried(Struct, kw_only=True):
    """How many jobs a bulk retry made pending again."""

    retried: int
    status: str


class Deleted(Struct, kw_only=True):
    """A deleted job."""

    id: str
    deleted: bool


class StatusCounts(Struct, kw_only=True, forbid_unknown_fields=True):
    """Jobs per status, every status present."""

    waiting: int
    pending: int
    running: int
    failed: int
    done: int
    dead: int


Counts = dict[str, StatusCounts]


class GraphNode(Struct, kw_only=True):
    """One job of a workflow graph."""

    id: str
    kind: str
    queue: str
    status: Status
    last_error: str | None


class GraphEdge(Struct, kw_only=True):
    """``job`` depends on ``dependency``."""

    job: str
    dependency: str


class JobGraph(Struct, kw_only=True):
    """The jobs connected to one job by dependencies (both ways), nearest first."""

    job_id: Annotated[str, Meta(description="the job asked about")]
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    truncated: Annotated[
        bool, Meta(description="the graph has more jobs than `nodes` (the nearest are shown)")
    ]


class AttemptLog(Struct, kw_only=True):
    """What one attempt printed and logged: its last lines (1,000 or 64 KiB at most)."""

    attempt: int
    text: Annotated[str, Meta(description="the lines; a marker first when lines were dropped")]
    lines: Annotated[int, Meta(ge=0, description="lines the attempt wrote")]
    dropped: Annotated[int, Meta(ge=0, description="earliest lines dropped by the bound")]
    updated_at: Time


class JobLogs(Struct, kw_only=True):
    """A job's captured output, one entry per attempt that wrote any, oldest first."""

    job_id: str
    attempts: list[AttemptLog]


class BulkDone(Struct, kw_only=True):
    """How a bulk action went."""

    action: str
    matched: Annotated[int, Meta(description="jobs listed or matching")]
    done: Annotated[int, Meta(description="jobs it changed")]
    skipped: Annotated[int, Meta(description="jobs it did not apply to (e.g. running)")]
    reasons: Annotated[list[str], Meta(description="why, for the first few skipped")]


class Queue(Struct, kw_only=True):
    """A queue's live config and how many jobs it holds per status."""

    name: str
    workers: int
    paused: bool
    backoff_enabled: bool
    backoff_base_seconds: float | UnsetType = UNSET
    backoff_max_seconds: float | UnsetType = UNSET
    backoff_jitter: bool | UnsetType = UNSET
    retain_done_seconds: float | UnsetType = UNSET
    retain_dead_seconds: float | UnsetType = UNSET
    global_limit: int | UnsetType = UNSET
    counts: StatusCounts


class Queues(Struct, kw_only=True):
    """Every queue."""

    queues: list[Queue]


class Schedule(Struct, kw_only=True):
    """A cron schedule with its last and next fire."""

    name: str
    cron: Annotated[str, Meta(description="5 fields, or 6 with seconds first")]
    kind: str
    payload: dict[str, Any]
    queue: str
    enabled: bool
    tz: str | UnsetType = UNSET
    last_fire_at: Time | None
    next_fire_at: Time | None


class Schedules(Struct, kw_only=True):
    """Every cron schedule."""

    schedules: list[Schedule]


class Process(Struct, kw_only=True):
    """One worker slot of a live process."""

    id: Annotated[str, Meta(description="{queue}-{slot}-{host_id}")]
    host_id: str
    hostname: str
    pid: int
    queue: str
    current_job: str | None
    last_heartbeat: Time
    started_at: Time | UnsetType = UNSET
    version: str | UnsetType = UNSET
    kinds: (
        Annotated[list[str], Meta(description="the kinds this process runs: it claims only these")]
        | UnsetType
    ) = UNSET
    stale_after: (
        Annotated[
            float | None,
            Meta(description="seconds of silence after which this process counts as dead"),
        ]
        | UnsetType
    ) = UNSET


class Processes(Struct, kw_only=True):
    """Every worker slot of every live process."""

    processes: list[Process]


Percentile = Annotated[float | None, Meta(description="seconds")]


class Latency(Struct, kw_only=True):
    """Processing (started → finished) and end-to-end (enqueued → finished) percentiles."""

    processing_p50: Percentile
    processing_p95: Percentile
    processing_p99: Percentile
    e2e_p50: Percentile
    e2e_p95: Percentile
    e2e_p99: Percentile


class MetricBucket(Latency, kw_only=True):
    """One bucket of one queue: jobs counted per event, and latency percentiles."""

    minute: Time
    queue: str
    enqueued: int
    started: int
    completed: int
    failed: int
    retried: int
    throttled: int
    dead: int


class Metrics(Struct, kw_only=True):
    """Per-bucket, per-queue counts and the latency over the range."""

    queue: str | UnsetType | None = UNSET
    since: Time
    until: Time
    step: Annotated[Literal[1, 5, 60], Meta(description="bucket minutes")]
    metrics: list[MetricBucket]
    latency: Latency


class Index(Struct, kw_only=True):
    """What this API is and where its document lives."""

    name: str
    version: str
    openapi: str
    read_only: bool


OpenApiDocument = dict[str, Any]


# -- request bodies ---------------------------------------------------------------------------


class Body(Struct, kw_only=True, forbid_unknown_fields=True):
    """A request body: unknown fields are refused, so a typo fails loudly."""


class EnqueueBody(Body, kw_only=True):
    """One job to enqueue; null (or absent) is the default for every field but kind."""

    kind: Name
    payload: Annotated[
        dict[str, Any] | None, Meta(description="named arguments of the job; null: none")
    ] = None
    queue: Annotated[str | None, Meta(description="default: the job's queue or the router's")] = (
        None
    )
    priority: int | None = None
    delay: Annotated[
        Annotated[float, Meta(ge=0, le=MAX_DELAY_S)] | None,
        Meta(description="seconds before it may run (at most 100 years)"),
    ] = None
    scheduled_at: Annotated[
        str | Annotated[float, Meta(ge=0, le=MAX_TIMESTAMP)] | None,
        Meta(
            description="when it may run, wins over delay: ISO 8601 (naive = UTC) or epoch "
            "seconds, from 1970-01-01 to 9999-12-31 UTC"
        ),
    ] = None
    unique_key: str | None = None
    max_attempts: Annotated[int, Meta(ge=1)] | None = None
    depends_on: Annotated[
        Annotated[list[JobId], Meta(max_length=MAX_DEPENDENCIES)] | None,
        Meta(
            description="ids of jobs it waits for: it is `waiting` until all are done, and "
            "ends dead if one ends dead; an unknown id is refused (400) and nothing is stored"
        ),
    ] = None
    expires_in: Annotated[
        Annotated[float, Meta(gt=0, le=MAX_DELAY_S)] | None,
        Meta(description="seconds within which it must start, else it ends dead, `expired`"),
    ] = None
    unique_for: Annotated[
        Annotated[float, Meta(ge=0, le=MAX_DELAY_S)] | None,
        Meta(description="seconds its unique_key stays taken after it finishes (done too)"),
    ] = None
    on_conflict: Annotated[
        Literal["ignore", "replace"] | None,
        Meta(
            description="a live holder of the unique_key: ignore (answer it, the default) or "
            "replace (a pending holder takes this payload and run time: outcome `replaced`)"
        ),
    ] = None
    tags: Annotated[
        Annotated[list[str], Meta(max_length=16)] | None,
        Meta(
            description="labels to filter by (`GET /api/jobs?tag=`): at most 16, each 1-100 "
            "characters"
        ),
    ] = None


#: The body of ``POST /api/jobs``: one job, or many in one transaction.
EnqueueBodies = EnqueueBody | Annotated[list[EnqueueBody], Meta(min_length=1)]


class RetryFilter(Body, kw_only=True):
    """Which dead (or failed) jobs to retry; every field is optional, null or empty: any."""

    status: Annotated[
        Literal["dead", "failed", ""] | None,
        Meta(description="jobs in this status; null or empty: dead"),
    ] = None
    queue: Annotated[str | None, Meta(description="null or empty: every queue")] = None
    kind: Annotated[str | None, Meta(description="null or empty: every kind")] = None
    search: Annotated[
        str | None, Meta(description="substring of the payload JSON; null or empty: any")
    ] = None


class BulkFilter(Body, kw_only=True):
    """Which jobs an "all matching" action takes; every field is optional, null or empty: any."""

    status: Status | Literal[""] | None = None
    queue: str | None = None
    kind: str | None = None
    search: Annotated[str | None, Meta(description="substring of the payload JSON")] = None
    tag: str | None = None
    scheduled: Annotated[
        bool, Meta(description="only pending jobs due later (the Scheduled view)")
    ] = False


class BulkBody(Body, kw_only=True):
    """A bulk action on the jobs listed in ``ids`` or on those matching ``filter`` (one of
    the two; at most 100,000 jobs, newest first, or soonest first with ``scheduled``)."""

    action: Literal["retry", "cancel", "delete", "run_now"]
    ids: Annotated[list[JobId], Meta(max_length=100_000)] | None = None
    filter: BulkFilter | None = None


class QueueSettings(Body, kw_only=True):
    """Live settings to change; a missing field keeps its value."""

    workers: Annotated[int, Meta(ge=0, le=10_000)] | UnsetType = UNSET
    paused: bool | UnsetType = UNSET
    backoff_enabled: bool | UnsetType = UNSET
    backoff_base_seconds: Annotated[float, Meta(gt=0)] | UnsetType = UNSET
    backoff_max_seconds: Annotated[float, Meta(ge=0)] | UnsetType = UNSET
    backoff_jitter: bool | UnsetType = UNSET
    retain_done_seconds: Annotated[float, Meta(ge=0)] | UnsetType = UNSET
    retain_dead_seconds: Annotated[float, Meta(ge=0)] | UnsetType = UNSET
    global_limit: (
        Annotated[
            int,
            Meta(ge=0, le=10_000, description="most running jobs across all processes; 0: none"),
        ]
        | UnsetType
    ) = UNSET
    base_seconds: (
        Annotated[float, Meta(gt=0, description="SPEC §4's name for backoff_base_seconds")]
        | UnsetType
    ) = UNSET
    max_seconds: (
        Annotated[float, Meta(ge=0, description="SPEC §4's name for backoff_max_seconds")]
        | UnsetType
    ) = UNSET
    jitter: Annotated[bool, Meta(description="SPEC §4's name for backoff_jitter")] | UnsetType = (
        UNSET
    )


class ScheduleChanges(Body, kw_only=True):
    """What to change in a schedule; a missing field keeps its current value."""

    enabled: bool | UnsetType = UNSET
    cron: str | UnsetType = UNSET
    kind: Name | UnsetType = UNSET
    payload: dict[str, Any] | UnsetType = UNSET
    queue: Annotated[str, Meta(description="empty: the kind's default queue")] | UnsetType = UNSET
    tz: str | UnsetType = UNSET


# The records these mirror are defined by the storage: a field added there must come here.
assert set(QueueSettings.__struct_fields__) == {*QUEUE_KNOBS, *QUEUE_KNOB_ALIASES}, (
    "QueueSettings != QUEUE_KNOBS"
)
assert StatusCounts.__struct_fields__ == STATUSES, "StatusCounts != STATUSES"
assert set(MetricBucket.__struct_fields__) == {"minute", "queue", *METRIC_COUNTERS, *PERCENTILES}

#: Component names the document uses where a class name would clash elsewhere.
SCHEMA_NAMES = {"EnqueueBody": "EnqueueRequest"}
#: Schema keywords a Struct cannot state (an object body with at least one field).
SCHEMA_EXTRAS: dict[str, dict[str, Any]] = {
    "QueueSettings": {"minProperties": 1},
    "ScheduleChanges": {"minProperties": 1},
}


def fields_of(model: type[Struct]) -> tuple[str, ...]:
    """The field names of a body model (for "known: …" hints)."""
    return model.__struct_fields__


def checked(body: Any, model: Any, what: str) -> Any:
    """``body`` (parsed JSON) checked against ``model``; BadInput (422) naming the problem."""
    try:
        return msgspec.convert(body, model)
    except msgspec.ValidationError as exc:
        message = f"{what}: {exc}"
        if "unknown field" in message and isinstance(model, type) and issubclass(model, Struct):
            message += f"; known: {', '.join(fields_of(model))}"
        raise BadInput(message, 422) from None


def shape_error(exc: BadInput) -> bool:
    """The refusal is about the body's shape (not an object, an unknown field), not a value."""
    text = str(exc)
    return "unknown field" in text or "Expected `object`" in text
