"""Plain data passed across the storage contract.

Every time is a float of seconds since the epoch (UTC) inside the storage layer;
the public records (`JobRecord`, `ProcessRecord`) turn them into aware datetimes
so notebook users and the dashboard get something readable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

Status = Literal["waiting", "pending", "running", "failed", "done", "dead"]

#: Every job status, in lifecycle order (pinned). ``waiting``: some dependency is not done.
STATUSES: tuple[Status, ...] = ("waiting", "pending", "running", "failed", "done", "dead")
#: Statuses that hold a unique key (a job not finished yet).
LIVE_STATUSES: tuple[Status, ...] = ("waiting", "pending", "running", "failed")
TERMINAL_STATUSES: tuple[Status, ...] = ("done", "dead")

DEFAULT_MAX_ATTEMPTS = 5


def to_datetime(ts: float | None) -> datetime | None:
    """Epoch seconds to an aware UTC datetime (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


@dataclass(slots=True)
class NewJob:
    """One job to insert. The storage validates it before writing anything.

    Not frozen: a bulk enqueue builds one per job, and a frozen dataclass's ``__init__``
    (``object.__setattr__`` per field) cost three times as much (1.36 vs 0.45 us).
    """

    kind: str
    queue: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    priority: int = 0
    #: Seconds from now before the job may run; must be >= 0.
    delay: float = 0.0
    #: Absolute run time (epoch seconds); wins over ``delay`` when set.
    scheduled_at: float | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    unique_key: str | None = None
    #: The shipped code version this job runs (None: whatever handler the worker has).
    code_version: str | None = None
    #: Ids of jobs that must be ``done`` before this one may run (it waits until then).
    depends_on: Sequence[str] = ()
    #: Flow control (SPEC §9.3; checked by `storage.flow_rules`): seconds within which the
    #: job must start, else it ends dead "expired".
    expires_in: float | None = None
    #: Seconds the unique key stays taken after the holder finishes (``done`` included).
    unique_for: float | None = None
    #: What a live holder of the unique key does: "ignore" (return it) or "replace" (a
    #: pending holder takes this job's payload and run time).
    on_conflict: str = "ignore"
    #: Per-key concurrency: the key's value (the storage prefixes the kind) and its limit.
    concurrency_key: str | None = None
    key_limit: int | None = None
    #: Labels to filter by (`forge_nb.storage.extras`).
    tags: Sequence[str] = ()
    #: Values of ``app.propagate``d context variables at enqueue (JSON), set around the run.
    context: Mapping[str, Any] | None = None


class EnqueueResult(NamedTuple):
    """What happened to one `NewJob`: a new row, or the live job holding its unique key.

    A named tuple, not a dataclass: a bulk enqueue makes one per job, at a third of the cost.
    """

    id: str
    outcome: Literal["created", "duplicate", "replaced"]
    status: Status


def created_results(ids: Iterable[int]) -> list[EnqueueResult]:
    """The results of new pending jobs with these ids, in order. Built by ``tuple.__new__``:
    a bulk enqueue makes one per job, and the named tuple's own ``__new__`` (Python code)
    costs half as much again."""
    new = tuple.__new__
    return [new(EnqueueResult, (str(i), "created", "pending")) for i in ids]


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job a worker now owns; ``attempt`` is the run number this claim started (from 1)."""

    id: str
    kind: str
    queue: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    priority: int
    created_at: float
    scheduled_at: float
    code_version: str | None = None
    #: How many jobs this one depended on (0: no `JobCtx.dependency_results` to read).
    dependencies: int = 0


FinishStatus = Literal["done", "failed", "dead", "pending"]


@dataclass(slots=True)
class Finish:
    """How one claimed run ended.

    ``status`` is where the job goes; ``event`` names the history entry
    (``done``, ``failed``, ``dead``, ``throttled``, ``cancelled``, ``released``).
    ``refund_attempt`` gives the run's attempt back (throttled, graceful release,
    cancellation). ``scheduled_at`` is the next run time for ``failed``/``pending``.
    ``log`` is what the attempt logged and had not stored yet: written in the outcome's
    transaction (not frozen: the worker attaches it once the run has ended).
    """

    job_id: str
    attempt: int
    status: FinishStatus
    event: str
    result_json: str | None = None
    error: str | None = None
    traceback: str | None = None
    scheduled_at: float | None = None
    refund_attempt: bool = False
    log: JobLog | None = None


@dataclass(frozen=True, slots=True)
class ReapedJob:
    """A running job taken back from a dead process: now ``failed`` or ``dead``."""

    id: str
    kind: str
    queue: str
    status: Status
    host_id: str


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Filters of the inspection queries; every field is optional and ANDed."""

    status: Status | None = None
    queue: str | None = None
    kind: str | None = None
    #: Substring searched in the payload JSON text (case-insensitive for ASCII).
    search: str | None = None
    #: Only pending jobs due after this time (epoch s), soonest first: the Scheduled view.
    scheduled_after: float | None = None
    #: Only jobs carrying this tag.
    tag: str | None = None


class JobLog(NamedTuple):
    """What one attempt of a job logged: its last lines (bounded), as they stand. A named
    tuple: a worker makes one per logging attempt per flush, so it is built cheaply."""

    job_id: str
    attempt: int
    text: str
    #: Lines the attempt wrote, and how many of the earliest were dropped by the bound.
    lines: int
    dropped: int
    updated_at: float


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One stored entry of a job's history."""

    job_id: str
    at: float
    event: str
    attempt: int
    message: str | None = None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job row as users see it (pinned field names, SPEC §4)."""

    id: str
    kind: str
    queue: str
    status: Status
    priority: int
    attempts: int
    max_attempts: int
    payload: dict[str, Any]
    result: Any
    last_error: str | None
    last_traceback: str | None
    progress: float | None
    progress_message: str | None
    unique_key: str | None
    created_at: datetime
    scheduled_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    claimed_by: str | None
    cancel_requested_at: datetime | None
    #: The shipped code version the job runs (None: the worker's own handler of the kind).
    code_version: str | None = None
    #: How many jobs it depends on, and how many of those are not done yet (while waiting).
    dependencies: int = 0
    waiting_on: int = 0
    #: Its tags, sorted (`forge_nb.storage.extras`).
    tags: tuple[str, ...] = ()
    #: ``expires_in``'s deadline for its first start (None: none, or it started).
    expires_at: datetime | None = None
    #: Its per-key concurrency key, ``"<kind>/<value>"`` (a waiting keyed job without
    #: dependencies is held behind its key's limit).
    concurrency_key: str | None = None

    def with_tags(self, tags: tuple[str, ...]) -> JobRecord:
        """A copy carrying ``tags`` (read from their own table after the row)."""
        return dataclasses.replace(self, tags=tags)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (datetimes as ISO 8601 strings).

        Field by field, not ``dataclasses.asdict``: that copies the payload and result
        recursively, which is wasted work and fails on deeply nested values.
        """
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        return out


@dataclass(frozen=True, slots=True)
class GraphNode:
    """One job of a workflow graph, as much as drawing it needs."""

    id: str
    kind: str
    queue: str
    status: Status
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class JobGraph:
    """The jobs connected to one job by dependencies: ``edges`` are (job, its dependency).

    ``truncated``: the graph has more jobs than were read (the nearest ones are shown).
    """

    nodes: list[GraphNode]
    edges: list[tuple[str, str]]
    truncated: bool


@dataclass(frozen=True, slots=True)
class ShippedCode:
    """One published version of a kind's code (a ``forge_nb_code`` row).

    ``code`` is None when only the catalogue (metadata) was read.
    """

    version: str
    kind: str
    python: str
    forge_nb_version: str
    signature: str
    created_at: float
    code: bytes | None = None


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of `list_jobs`; pass ``next_cursor`` back to get the next page."""

    jobs: list[JobRecord]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """A queue's live-editable settings, stored in the database (defaults as SPEC §4)."""

    name: str
    workers: int = 10
    paused: bool = False
    backoff_enabled: bool = True
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 300.0
    backoff_jitter: bool = True
    retain_done_seconds: float = 86_400.0
    retain_dead_seconds: float = 604_800.0
    #: Most running jobs of the queue across every process (0: no such limit).
    global_limit: int = 0

    @property
    def base_seconds(self) -> float:
        """SPEC §4's name for ``backoff_base_seconds``."""
        return self.backoff_base_seconds

    @property
    def max_seconds(self) -> float:
        """SPEC §4's name for ``backoff_max_seconds``."""
        return self.backoff_max_seconds

    @property
    def jitter(self) -> bool:
        """SPEC §4's name for ``backoff_jitter``."""
        return self.backoff_jitter


#: Knobs `update_queue` accepts, with the type each must have.
QUEUE_KNOBS: dict[str, type] = {
    "workers": int,
    "paused": bool,
    "backoff_enabled": bool,
    "backoff_base_seconds": float,
    "backoff_max_seconds": float,
    "backoff_jitter": bool,
    "retain_done_seconds": float,
    "retain_dead_seconds": float,
    "global_limit": int,
}

#: SPEC §4's names for the backoff knobs, each accepted for the stored (prefixed) name.
QUEUE_KNOB_ALIASES: dict[str, str] = {
    "base_seconds": "backoff_base_seconds",
    "max_seconds": "backoff_max_seconds",
    "jitter": "backoff_jitter",
}


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """One worker slot of one process (id ``"{queue}-{slot}-{host_id}"``)."""

    id: str
    host_id: str
    hostname: str
    pid: int
    queue: str
    current_job: str | None
    last_heartbeat: datetime
    started_at: datetime
    version: str = ""
    #: The kinds this process runs (its handlers): it claims only these.
    kinds: tuple[str, ...] = ()
    #: Seconds of silence after which this process counts as dead: its own setting, which
    #: every reaper honours (None: the reaper's own).
    stale_after: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = dataclasses.asdict(self)
        out["last_heartbeat"] = self.last_heartbeat.isoformat()
        out["started_at"] = self.started_at.isoformat()
        out["kinds"] = list(self.kinds)
        return out


@dataclass(frozen=True, slots=True)
class StrandedKind:
    """Jobs of one kind waiting in a queue where no live process runs that kind.

    Nothing claims them (a process claims only the kinds it has handlers for), so they
    wait, attempts unspent, until a process that runs the kind starts: worth a flag.
    """

    queue: str
    kind: str
    #: Waiting (pending or failed) jobs, counted up to a cap.
    jobs: int
    #: True when counting stopped at the cap: there are at least ``jobs``.
    capped: bool = False

    def describe(self) -> str:
        """One line for people, e.g. "3 pending jobs of kind `x` in queue `default`: …"."""
        n = f"{self.jobs:,}{'+' if self.capped else ''}"
        noun = "job" if self.jobs == 1 and not self.capped else "jobs"
        return (
            f"{n} pending {noun} of kind `{self.kind}` in queue `{self.queue}`: "
            "no live worker runs it"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (with the `describe` text as ``message``)."""
        return {**dataclasses.asdict(self), "message": self.describe()}


@dataclass(frozen=True, slots=True)
class Schedule:
    """A cron schedule row."""

    name: str
    cron: str
    kind: str
    payload: dict[str, Any]
    queue: str
    enabled: bool = True
    tz: str = "UTC"
    last_fire_at: float | None = None
    next_fire_at: float | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """Who holds a named lease, until when."""

    name: str
    holder: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket shared by every process."""

    scope: str
    capacity: float
    refill_per_second: float
    tokens: float
    updated_at: float
    held_until: float = 0.0
    #: The template (``"stripe:*"``) this bucket was made from; None for one made by name.
    template: str | None = None


@dataclass(frozen=True, slots=True)
class RateLimitTemplate:
    """A pattern (``"stripe:*"``) that acquiring a matching scope makes a bucket from."""

    pattern: str
    capacity: float
    refill_per_second: float


@dataclass(slots=True)
class MetricRow:
    """One process's totals for one queue and one minute.

    Each process rewrites its own row for the current minute; readers add rows up.
    Histograms map a latency bucket index (see ``runtime.metrics``) to a count.
    Not frozen: a 6-hour read builds thousands, and a frozen __init__ cost twice as much.
    """

    minute: int
    queue: str
    host_id: str
    enqueued: int = 0
    started: int = 0
    completed: int = 0
    failed: int = 0
    retried: int = 0
    throttled: int = 0
    dead: int = 0
    processing_hist: dict[int, int] = field(default_factory=dict)
    e2e_hist: dict[int, int] = field(default_factory=dict)


METRIC_COUNTERS: tuple[str, ...] = (
    "enqueued",
    "started",
    "completed",
    "failed",
    "retried",
    "throttled",
    "dead",
)
