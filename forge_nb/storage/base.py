"""The storage contract: every database operation forge-nb performs, in one place.

Both `SqliteStorage` and `PostgresStorage` implement `Storage`; nothing above
this package knows which one it talks to. Times are float epoch seconds and are
always passed in by the caller (``now``), so one clock drives a whole operation
and tests can move it. Job ids are strings everywhere.

Each method is one transaction: it either applies fully or not at all, and bad
input raises before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from forge_nb.storage.records import (
    ClaimedJob,
    EnqueueResult,
    Finish,
    JobEvent,
    JobFilter,
    JobGraph,
    JobLog,
    JobPage,
    JobRecord,
    Lease,
    MetricRow,
    NewJob,
    ProcessRecord,
    QueueConfig,
    RateLimit,
    RateLimitTemplate,
    ReapedJob,
    Schedule,
    ShippedCode,
    Status,
    StrandedKind,
)


@runtime_checkable
class Storage(Protocol):
    """Backend-agnostic storage (pinned name)."""

    #: The URL this storage was opened with, password masked (safe to log or show).
    safe_url: str
    #: ``"sqlite"`` or ``"postgres"``: for messages and benchmarks only, never for branching.
    backend: str

    # -- lifecycle -------------------------------------------------------------
    async def open(self) -> None:
        """Connect and apply pending migrations (safe when many processes open at once)."""

    async def close(self) -> None:
        """Release every connection and thread; idempotent."""

    async def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied (empty when up to date)."""

    async def schema_version(self) -> int:
        """The newest migration applied to this database."""

    async def watch(self, on_change: Callable[[str | None], None] | None) -> None:
        """Call ``on_change(queue)`` soon after another process enqueues into ``queue``.

        ``None`` as the argument means "something changed; queue unknown". Best
        effort: polling stays the fallback. Idempotent: calling it again (every
        tick) re-establishes a lost listener; ``watch(None)`` stops watching.
        """

    # -- jobs: write path ------------------------------------------------------
    async def enqueue(self, jobs: Sequence[NewJob], now: float) -> list[EnqueueResult]:
        """Insert jobs in one transaction, one result per input in order.

        A job whose ``unique_key`` is held by a live job (pending/running/failed)
        is not inserted: its result is that job's id with outcome ``duplicate``.
        Queues named by the jobs are created with default config if missing.
        Created jobs are added to the ``enqueued`` metric of the minute (row host ``*``)
        in the same transaction.
        """

    async def claim(
        self,
        queue: str,
        host_id: str,
        limit: int,
        now: float,
        *,
        kinds: Collection[str] | None = None,
        exclude_versions: Collection[str] = (),
    ) -> list[ClaimedJob]:
        """Atomically move up to ``limit`` runnable jobs of ``queue`` to ``running``.

        Runnable: status pending or failed, ``scheduled_at <= now``, kind in ``kinds``,
        queue not paused. Order: priority desc, scheduled_at, id. Sets claimed_by=host_id,
        started_at=now, attempts+1. A job is never handed to two claimers.

        ``kinds`` is what the claiming process can run (its handlers): jobs of other kinds
        stay pending, attempts unspent, and cost the claim nothing however many wait ahead
        of runnable ones. Empty: nothing is claimed. ``None`` (tools and tests) claims any
        kind, by sorting the queue's runnable jobs: slow on a big backlog.

        ``exclude_versions``: shipped code versions this process cannot run (signature or
        Python version): their jobs stay pending, attempts unspent. Jobs without a version
        are never excluded.
        """

    async def release_claims(
        self, queue: str, host_id: str, claimed_at: Sequence[float]
    ) -> list[str]:
        """Return to ``pending`` what claims of ``queue`` by ``host_id`` at these times took.

        For a claim whose reply was lost (the connection broke after the commit): its
        jobs would stay ``running`` under a live host the reaper never suspects. Each
        claim stamps ``started_at`` with its own ``now``, so exactly its jobs match.
        The attempt the claim spent is given back. Returns their ids.
        """

    async def finish(self, host_id: str, finishes: Sequence[Finish], now: float) -> list[str]:
        """Apply run outcomes in one transaction; return the ids actually finalized.

        A finish applies only while the job is still ``running`` under ``host_id``
        with ``attempts == finish.attempt``: a run the reaper already took back
        is ignored (so a job ends ``done`` exactly once). Writes a history event
        for every finish except ``done``.
        """

    async def update_progress(self, updates: Sequence[tuple[str, float, str]]) -> None:
        """Store (job_id, fraction, message) for running jobs; others are ignored."""

    # -- jobs: admin -------------------------------------------------------------
    async def get_job(self, job_id: str) -> JobRecord | None:
        """One job, or None when the id is unknown or malformed."""

    async def list_jobs(
        self, filter: JobFilter, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        """Newest first (id descending), keyset-paged by ``cursor``."""

    async def job_events(self, job_id: str) -> list[JobEvent]:
        """Stored history of one job, oldest first."""

    async def counts(self) -> dict[str, dict[Status, int]]:
        """``{queue: {status: n}}`` for every known queue, every status present.

        Exact and cheap at any table size: the counts are kept as jobs change.
        """

    async def fold_counts(self) -> int:
        """Compact the bookkeeping behind `counts` (the leader calls it); return rows folded."""

    async def retry(self, job_id: str, now: float) -> Status | None:
        """Dead/failed job → pending now with attempts reset; return its previous status.

        None when unknown. Any other status is returned unchanged and nothing happens.
        """

    async def retry_many(self, filter: JobFilter, now: float) -> int:
        """`retry` every dead/failed job matching ``filter``; return how many."""

    async def delete(self, job_id: str) -> Status | None:
        """Delete a job that is not running; return its status (None if unknown).

        A running job is left alone and ``"running"`` is returned.
        """

    async def delete_many(self, filter: JobFilter) -> int:
        """Delete every non-running job matching ``filter``; return how many."""

    async def request_cancel(self, job_id: str, now: float) -> Status | None:
        """Cancel a job; return its status afterwards (None if unknown).

        Pending/failed → ``dead`` with error ``cancelled`` at once. Running → the
        cancel flag is set (``running`` returned) for its owner to act on.
        Terminal jobs are returned unchanged.
        """

    async def cancel_requests(self, host_id: str) -> list[str]:
        """Ids of ``host_id``'s running jobs whose cancel flag is set."""

    # -- workflows ---------------------------------------------------------------------
    # A job enqueued with ``depends_on`` is ``waiting`` until every dependency is ``done``
    # and turns ``pending`` in the transaction that finishes the last one. A dependency
    # ending ``dead`` (cancel included) or deleted queues a cascade that ends its waiting
    # dependents ``dead``, transitively; `retry` of it makes them wait again.
    async def dependency_results(self, job_id: str) -> dict[str, Any]:
        """``{dependency id: its result}`` of one job, in one query."""

    async def dependencies(self, job_id: str, limit: int = 1000) -> list[JobRecord]:
        """The jobs ``job_id`` waits (or waited) for, by id."""

    async def dependents(self, job_id: str, limit: int = 1000) -> list[JobRecord]:
        """The jobs that wait (or waited) for ``job_id``, by id."""

    async def job_graph(self, job_id: str, limit: int = 500) -> JobGraph:
        """Every job connected to ``job_id`` by dependencies (nearest first, up to ``limit``)."""

    async def cascade_dead(self, now: float, limit: int = 1000) -> int:
        """End up to ``limit`` waiting dependents of dead or deleted dependencies, with error
        ``dependency <id> dead`` (or ``deleted``); return how many. The leader calls it until
        it returns less than ``limit``: a cascade of any size goes in bounded steps."""

    # -- flow control (SPEC §9.3) --------------------------------------------------
    async def expire_jobs(self, now: float, limit: int = 1000) -> int:
        """End up to ``limit`` jobs not started by their ``expires_at`` (``expires_in``):
        ``dead`` with error ``expired``; return how many. The claim never starts them."""

    async def plan_queue_slots(
        self, queue: str, host_id: str, limit: int, live_after: float
    ) -> tuple[int, int, int]:
        """``global_limit``: keep the queue's ``limit`` slot rows, free dead processes' once
        their jobs were reaped; (this process's fair share, slots held, held under limit)."""

    async def held_queue_slots(self, queue: str, host_id: str, limit: int) -> tuple[int, int]:
        """(slots of ``queue`` the process holds, of which under ``limit``)."""

    async def release_queue_slots(self, queue: str, host_id: str, n: int) -> None:
        """Give back ``n`` of the process's slots of ``queue``."""

    async def take_queue_slots(self, queue: str, host_id: str, n: int, limit: int) -> int:
        """Take up to ``n`` free slots of ``queue`` under ``limit``; how many."""

    # -- queues ------------------------------------------------------------------
    async def ensure_queue(self, name: str, **knobs: Any) -> QueueConfig:
        """Create the queue if missing, then apply ``knobs``; return its config."""

    async def update_queue(self, name: str, **knobs: Any) -> QueueConfig:
        """Apply ``knobs`` to an existing queue; `UnknownQueue` if it does not exist."""

    async def queues(self) -> list[QueueConfig]:
        """Every queue's config, by name."""

    # -- processes, heartbeats, reaper ---------------------------------------------
    async def register_processes(self, processes: Sequence[ProcessRecord]) -> None:
        """Insert or replace worker-slot rows."""

    async def unregister_processes(self, process_ids: Sequence[str]) -> None:
        """Remove worker-slot rows (a pool shrank or a process stopped)."""

    async def heartbeat(
        self,
        host_id: str,
        now: float,
        current_jobs: Mapping[str, str | None],
        kinds: Collection[str] | None = None,
    ) -> None:
        """Touch every slot row of ``host_id``; set each slot's current job.

        ``kinds``, when given, replaces the kinds every slot row of the host lists (the
        process registered or dropped a handler).
        """

    async def processes(self) -> list[ProcessRecord]:
        """Every registered worker slot."""

    async def publish_code(self, code: ShippedCode) -> bool:
        """Store one version of a kind's code (``code.code`` set); False if it was there.

        Versions are content hashes: a row never changes once written.
        """

    async def code_catalogue(self) -> list[ShippedCode]:
        """Every published version, oldest first, without the code bytes."""

    async def code_stamp(self) -> tuple[int, float | None]:
        """(number of versions, newest ``created_at``): a cheap change check."""

    async def get_code(self, version: str) -> ShippedCode | None:
        """One version with its code bytes, or None."""

    async def job_contexts(self, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{job id: context}``: what ``app.propagate``d variables held at enqueue."""

    async def write_job_logs(self, logs: Sequence[JobLog]) -> None:
        """Store (insert or replace) each attempt's log; logs of deleted jobs are dropped."""

    async def job_logs(self, job_id: str) -> list[JobLog]:
        """Every logged attempt of a job, oldest first."""

    async def run_now(self, job_id: str, now: float) -> str | None:
        """A pending job scheduled after ``now`` becomes due now; returns its queue (None:
        not a pending job scheduled for later)."""

    async def set_redaction(self, kind: str, fields: Sequence[str]) -> None:
        """Store the payload fields the views of ``kind``'s jobs mask (replacing any)."""

    async def redactions(self) -> dict[str, tuple[str, ...]]:
        """``{kind: fields}`` of every kind with redacted fields."""

    async def stranded_kinds(
        self, live_since: float, count_up_to: int = 1_000, limit: int = 50
    ) -> list[StrandedKind]:
        """(queue, kind) pairs with waiting jobs that no live process runs, by queue and kind.

        Waiting: pending or failed. Live: a slot row of that queue heartbeated since
        ``live_since`` and lists the kind. Each pair's jobs are counted up to
        ``count_up_to`` (``capped`` beyond); at most ``limit`` pairs. Cheap at any table
        size: one index seek per distinct (queue, kind) with waiting jobs, plus the capped
        counts of the stranded ones.
        """

    async def reap(
        self, now: float, stale_before: float, host_ids: Sequence[str] = ()
    ) -> list[ReapedJob]:
        """Take back the running jobs of dead processes as a failed attempt, ``worker lost``.

        A process is dead when none of its slots heartbeated within its own
        ``stale_after`` before ``now`` (since ``stale_before`` for slots that
        recorded none), when it has no slot rows, or when it is listed in
        ``host_ids``. Its jobs go ``failed`` (retry now) or ``dead`` when
        attempts are used up; its slot rows are deleted.
        """

    # -- cron ----------------------------------------------------------------------
    async def upsert_schedule(self, schedule: Schedule) -> Schedule:
        """Create or update a schedule by name (keeps last_fire_at of an existing one)."""

    async def schedules(self) -> list[Schedule]:
        """Every schedule, by name."""

    async def set_schedule_enabled(self, name: str, enabled: bool) -> bool:
        """Toggle a schedule; False if the name is unknown."""

    async def record_fire(self, name: str, fired_at: float, next_fire_at: float | None) -> None:
        """Remember a schedule's last fire and the next one due."""

    async def fire_schedule(
        self,
        name: str,
        expected_next: float,
        fire_at: float,
        next_fire_at: float,
        job: NewJob,
        now: float,
    ) -> bool:
        """Fire one tick atomically: advance the schedule and enqueue ``job``, or do nothing.

        Applies only while the schedule is enabled and its ``next_fire_at`` still
        equals ``expected_next`` (compare-and-set), so two would-be leaders can
        never both fire a tick. The job's unique key guards a second time.
        """

    # -- leases ----------------------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        """Take or renew ``name`` for ``holder`` until now+ttl; False if someone else holds it."""

    async def release_lease(self, name: str, holder: str) -> None:
        """Give a lease up early (only if ``holder`` holds it)."""

    async def leases(self) -> list[Lease]:
        """Every lease row."""

    # -- rate limits -------------------------------------------------------------------
    async def ensure_rate_limit(
        self,
        scope: str,
        capacity: float,
        refill_per_second: float,
        now: float,
        template: bool | None = None,
    ) -> RateLimit:
        """Create a bucket (full) or update its capacity and refill rate. A scope with
        ``*`` is a template (``template=True`` insists; one without ``*`` is a ValueError):
        taking from a scope with no bucket makes one from the longest matching template."""

    async def take_tokens(self, scope: str, n: float, now: float) -> float:
        """Take ``n`` tokens if available; return 0.0 if taken, else seconds to wait.

        `UnknownRateLimit` if the scope does not exist.
        """

    async def drain_rate_limit(self, scope: str, hold_until: float, now: float) -> None:
        """Empty the bucket and keep it empty until ``hold_until``."""

    async def rate_limits(self) -> list[RateLimit]:
        """Every bucket made by name (those made from templates: `busiest_rate_limits`)."""

    async def rate_limit_templates(self) -> list[RateLimitTemplate]:
        """Every rate-limit template, by pattern."""

    async def busiest_rate_limits(self, limit: int = 20) -> list[RateLimit]:
        """The live buckets made from templates that were used last."""

    async def sweep_rate_limits(self, now: float, idle_before: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` template buckets unused since ``idle_before`` and full
        again; how many went."""

    # -- metrics and retention ------------------------------------------------------------
    async def write_metrics(self, rows: Sequence[MetricRow]) -> None:
        """Insert or replace per-(minute, queue, host) totals."""

    async def read_metrics(
        self, since: float, until: float, queue: str | None = None, histograms: bool = True
    ) -> list[MetricRow]:
        """Rows whose minute lies in [since, until], optionally for one queue.

        ``histograms=False`` leaves them empty (counters only: much cheaper to read).
        """

    async def sum_metrics(
        self, step: int, since: float, until: float, queue: str | None = None
    ) -> list[MetricRow]:
        """Counters summed per (``step``-minute bucket, queue) over all hosts, oldest first.

        Rows of minutes in [since, until]; ``minute`` is the bucket's first minute,
        ``host_id`` is ``'*'`` and histograms are empty. Summing in the database
        returns one row per bucket instead of one per host and minute.
        """

    async def sum_histograms(
        self, step: int, since: float, until: float, queue: str | None = None
    ) -> tuple[dict[int, int], dict[int, int]]:
        """Processing and end-to-end histograms added up over a range, in the database.

        ``step`` 1 reads minute rows, 5 or 60 that step's roll-ups (whose first minute
        lies in [since, until]). Totals over days need no row decoded here.
        """

    async def write_rollups(self, step: int, rows: Sequence[MetricRow], through: int) -> None:
        """Replace ``step``-minute roll-up rows and mark minutes before ``through`` rolled up.

        One transaction: readers see either the old rows and mark or the new ones.
        """

    async def read_rollups(
        self,
        step: int,
        since: float,
        until: float,
        queue: str | None = None,
        histograms: bool = True,
    ) -> list[MetricRow]:
        """Roll-up rows (``host_id`` ``'*'``) whose first minute lies in [since, until]."""

    async def rollup_marks(self) -> dict[int, int]:
        """Per step, the first minute not rolled up yet (steps never rolled are absent)."""

    async def purge(self, queue: str, status: Status, finished_before: float, limit: int) -> int:
        """Delete up to ``limit`` terminal jobs of ``queue`` finished before the cutoff."""

    async def purge_metrics(self, before_minute: int) -> int:
        """Delete metric, roll-up and sample rows older than ``before_minute``; return how many."""

    # -- samples: resources and database health ------------------------------------------
    async def write_samples(self, samples: Sequence[tuple[int, str, str, dict[str, Any]]]) -> None:
        """Insert or replace (minute, host_id, kind, data) samples."""

    async def read_samples(
        self, kind: str, since: float, until: float
    ) -> list[tuple[int, str, dict[str, Any]]]:
        """(minute, host_id, data) of one kind in a time range, oldest first."""

    def pool_capacity(self) -> int:
        """How many database operations can run at once (connections usable in parallel)."""
