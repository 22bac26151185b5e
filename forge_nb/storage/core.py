"""The SQL core: every storage operation that is one named statement, written once.

``sql/common.sql`` holds those written alike in both dialects, once; both dialects'
``queries.sql`` hold the rest under the same names, with the same numbered parameters
(``?1`` in SQLite, ``$1`` in Postgres), so the Python around
them (arguments, validation, decoding rows) is the same for both. A backend subclasses
`SqlCore` and supplies only how a statement runs (`_select`, `_change`, `_change_all`)
and how a list travels as one parameter (`_list_param`); what truly differs (the
claim, bulk inserts, finishing a batch, notifications, multi-statement transactions)
stays in the backend.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

from forge_nb.errors import UnknownRateLimit
from forge_nb.storage import extras, rows, rules
from forge_nb.storage.flow_core import FlowCore
from forge_nb.storage.flow_rules import Flow, prepare_flows
from forge_nb.storage.kinds import claim_arms
from forge_nb.storage.records import (
    STATUSES,
    ClaimedJob,
    EnqueueResult,
    GraphNode,
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
    Schedule,
    ShippedCode,
    Status,
    StrandedKind,
)
from forge_nb.storage.rows import metric_params, rollup_params
from forge_nb.storage.validation import (
    check_bucket,
    check_filter,
    check_name,
    check_queue_knobs,
    dependency_links,
    dump_json,
    escape_like,
    prepare_jobs,
)

MAX_PAGE = 1000
#: Most jobs one read of a workflow returns (dependencies, dependents, a graph).
MAX_GRAPH = 10_000
#: Tries of a statement that lost a race to a concurrent writer before giving up.
RACE_RETRIES = 5

#: One statement's parameters; a batch is a sequence of them.
Params = Sequence[Any]


class ClaimRequest(NamedTuple):
    """One claim: the queue's best runnable jobs, of ``arms`` (the kinds, padded with None
    to the statement's arm count; None: any kind), not of the ``excluded`` code versions."""

    queue: str
    host_id: str
    limit: int
    now: float
    arms: list[str | None] | None
    excluded: list[str]


class EnqueueBatch(NamedTuple):
    """A checked enqueue batch: each job's row (`validation.prepare_job`) and flow options
    (None: none), the dependencies of those that have some (by index in the batch) and the
    batch's tags and contexts."""

    prepared: list[tuple[Any, ...]]
    flows: list[Flow | None]
    links: list[tuple[int, list[int]]]
    extras: extras.Extras


class SqlCore(FlowCore):
    """The dialect-neutral half of `SqliteStorage` and `PostgresStorage`."""

    #: The dialect's named statements (``sql/common.sql``, ``sql/<dialect>/queries.sql`` and
    #: ``dialect.sql``).
    Q: dict[str, str]

    # -- what each dialect supplies -----------------------------------------------------------
    async def _select(self, name: str, *params: Any) -> list[Any]:
        """Run a read-only statement; all its rows."""
        raise NotImplementedError

    async def _change(self, name: str, *params: Any) -> list[Any]:
        """Run one writing statement (atomic by itself); the rows it returns."""
        raise NotImplementedError

    async def _change_all(self, batches: Sequence[tuple[str, Sequence[Params]]]) -> None:
        """Run each named statement once per parameter set, all in one transaction."""
        raise NotImplementedError

    def _list_param(self, values: Sequence[str]) -> Any:
        """A list of strings as one parameter (SQLite: a JSON array; Postgres: an array)."""
        raise NotImplementedError

    def _key_list_param(self, keys: Sequence[int]) -> Any:
        """A list of job keys as one parameter (SQLite: a JSON array; Postgres: an array)."""
        raise NotImplementedError

    def _placeholder(self, n: int) -> str:
        """The ``n``-th parameter in this dialect's SQL."""
        raise NotImplementedError

    async def _select_sql(self, sql: str, params: Params) -> list[Any]:
        """A read of SQL assembled from this dialect's templates (job lists)."""
        raise NotImplementedError

    async def _claim_rows(self, claim: ClaimRequest) -> list[Any]:
        """The rows of one claim statement (see `Storage.claim`)."""
        raise NotImplementedError

    async def _fire_schedule(
        self, cas: Params, prepared: list[tuple[Any, ...]], now: float
    ) -> bool:
        """Advance a schedule by compare-and-set (``fire_schedule``'s parameters) and, when
        it moved, enqueue ``prepared`` in the same transaction."""
        raise NotImplementedError

    async def _purge_jobs(self, queue: str, status: str, before: float, limit: int) -> int:
        """Delete up to ``limit`` such jobs and their events; how many went."""
        raise NotImplementedError

    async def _insert(self, batch: EnqueueBatch, now: float) -> list[EnqueueResult]:
        """Write a checked, non-empty enqueue batch in one transaction."""
        raise NotImplementedError

    async def _apply_queue_knobs(
        self, name: str, knobs: Mapping[str, Any], create: bool
    ) -> QueueConfig:
        """Apply checked knobs to queue ``name`` (made first if ``create``); its settings."""
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------
    async def _select_one(self, name: str, *params: Any) -> Any:
        found = await self._select(name, *params)
        return found[0] if found else None

    def filter_terms(
        self, filter: JobFilter, *, with_tag: bool = True
    ) -> tuple[list[str], list[Any]]:
        """WHERE terms for a job filter; every value is a bound parameter."""
        check_filter(filter)
        terms: list[tuple[str, Any]] = []
        if filter.status is not None:
            if filter.status not in STATUSES:
                raise ValueError(
                    f"unknown status {filter.status!r}; use one of {', '.join(STATUSES)}"
                )
            terms.append(("status = {p}", filter.status))
        if filter.queue is not None:
            terms.append(("queue = {p}", filter.queue))
        if filter.kind is not None:
            terms.append(("kind = {p}", filter.kind))
        if filter.search:
            terms.append((self.Q["payload_search_term"], escape_like(filter.search)))
        if filter.tag is not None and with_tag:
            terms.append((self.Q["tag_filter_term"], filter.tag))
        where = [t.replace("{p}", self._placeholder(i)) for i, (t, _) in enumerate(terms, 1)]
        return where, [value for _, value in terms]

    # -- jobs ------------------------------------------------------------------------------
    async def enqueue(self, jobs: Sequence[NewJob], now: float) -> list[EnqueueResult]:
        """Check the whole batch (one bad job: nothing written), then insert it in one
        transaction (see `Storage.enqueue`)."""
        prepared = prepare_jobs(jobs, now)
        if not prepared:
            return []
        flows = prepare_flows(jobs, now)
        links = dependency_links(jobs)
        return await self._insert(EnqueueBatch(prepared, flows, links, extras.extras_of(jobs)), now)

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
        """Claim up to ``limit`` jobs of ``kinds`` in one statement (see `Storage.claim`)."""
        if limit <= 0:
            return []
        arms = None
        if kinds is not None:
            arms = claim_arms(kinds)
            if not arms:
                return []
        claim = ClaimRequest(queue, host_id, limit, now, arms, sorted(exclude_versions))
        found = await self._claim_rows(claim)
        return sorted(map(rows.claimed_job, found), key=rows.claim_order)

    async def get_job(self, job_id: str) -> JobRecord | None:
        """One job, or None."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return None
        found = await self._select_one("get_job", key)
        return None if found is None else (await self.with_tags([rows.job_record(found)]))[0]

    async def list_jobs(
        self, filter: JobFilter, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        """Newest first, keyset-paged on id (a payload search a window of ids per page)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be an int between 1 and {MAX_PAGE}, got {limit!r}")
        scheduled = filter.scheduled_after is not None
        tagged = filter.tag is not None and not scheduled
        where, params = self.filter_terms(filter, with_tag=not tagged)  # checks them, too
        alone = not (scheduled or tagged or filter.kind is not None or filter.search)
        if alone and filter.queue is not None and filter.status is None:
            return await self._merged_page("list_queue_jobs", filter.queue, limit, cursor)
        if alone and filter.queue is None and filter.status is not None:
            return await self._merged_page("list_status_jobs", filter.status, limit, cursor)
        id_column = "job_id" if tagged else "id"  # a tag's page is read in its index's order

        def term(sql: str, *values: Any) -> None:
            for value in values:
                params.append(value)
                sql = sql.replace("{p}", self._placeholder(len(params)), 1)
            where.append(sql)

        if scheduled:
            # The partial index's own terms, literally, so the planner uses it.
            term("status = 'pending'")
            term("scheduled_at > created_at")
            term("scheduled_at > {p}", filter.scheduled_after)
            if cursor is not None:
                term("(scheduled_at, id) > ({p}, {p})", *rows.parse_scheduled_cursor(cursor))
        key = None
        if cursor is not None and not scheduled:
            key = rows.parse_job_id(cursor)
            if key is None:
                raise ValueError(f"invalid cursor {cursor!r}")
            term(f"{id_column} < {{p}}", key)
            if tagged:  # on both sides of the join, so a merge join starts at the cursor too
                term("id < {p}", key)
        floor = None
        if filter.search and not scheduled:
            lowest, highest = await self._select_one("id_bounds")
            floor = rows.search_floor(key, lowest, highest)
            if floor is not None:
                term(f"{id_column} >= {{p}}", floor)
        params.append(limit)
        template = self.Q["list_scheduled_jobs" if scheduled else "list_jobs"]
        if tagged:
            params.append(filter.tag)
            template = self.Q["list_tagged_jobs"].replace("{tag}", self._placeholder(len(params)))
        sql = template.replace("{where}", " AND ".join(where) or "TRUE").replace(
            "{limit}", self._placeholder(len(params) - tagged)
        )
        page = rows.job_page(await self._select_sql(sql, params), limit, scheduled, floor)
        return JobPage(await self.with_tags(page.jobs), page.next_cursor)

    async def _merged_page(self, query: str, value: str, limit: int, cursor: str | None) -> JobPage:
        """A page of one queue's jobs (``list_queue_jobs``) or of one status's
        (``list_status_jobs``), no other filter, newest first below ``cursor``. The queue's
        page reads (queue, status, id) a status at a time and merges them, so that enqueues
        need not write a (queue, id) index as well; on SQLite the status's page does the same
        queue by queue, so that claims and finishes need not rewrite a (status, id) one."""
        below = rows.parse_job_id(cursor) if cursor is not None else 2**63 - 1
        if below is None:
            raise ValueError(f"invalid cursor {cursor!r}")
        found = await self._select(query, value, below, limit)
        page = rows.job_page(found, limit, False, None)
        return JobPage(await self.with_tags(page.jobs), page.next_cursor)

    async def with_tags(self, jobs: list[JobRecord]) -> list[JobRecord]:
        """``jobs`` with their tags (one indexed read; nothing when there are no jobs)."""
        if not jobs:
            return jobs
        keys = [int(j.id) for j in jobs]
        return extras.attach(jobs, await self._select("job_tags", self._key_list_param(keys)))

    async def job_events(self, job_id: str) -> list[JobEvent]:
        """Stored history, oldest first."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return []
        return [rows.job_event(r) for r in await self._select("job_events", key)]

    # -- workflows -----------------------------------------------------------------------
    async def dependency_results(self, job_id: str) -> dict[str, Any]:
        """``{dependency id: its result}`` of one job, in one query."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return {}
        found = await self._select("dependency_results", key)
        return {str(d): None if r is None else rows.load_json(r) for d, r in found}

    async def dependencies(self, job_id: str, limit: int = 1000) -> list[JobRecord]:
        """The jobs ``job_id`` waits (or waited) for, by id."""
        return await self._related("dependencies_of", job_id, limit)

    async def dependents(self, job_id: str, limit: int = 1000) -> list[JobRecord]:
        """The jobs that wait (or waited) for ``job_id``, by id."""
        return await self._related("dependents_of", job_id, limit)

    async def _related(self, name: str, job_id: str, limit: int) -> list[JobRecord]:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_GRAPH:
            raise ValueError(f"limit must be an int between 1 and {MAX_GRAPH}, got {limit!r}")
        key = rows.parse_job_id(job_id)
        if key is None:
            return []
        return [rows.job_record(r) for r in await self._select(name, key, limit)]

    async def job_graph(self, job_id: str, limit: int = 500) -> JobGraph:
        """The jobs connected to ``job_id`` by dependencies, breadth first, up to ``limit``."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return JobGraph([], [], False)
        seen = {key}
        frontier = [key]
        edges: set[tuple[int, int]] = set()
        truncated = False
        while frontier and not truncated:
            found = await self._select("graph_edges", self._key_list_param(frontier))
            frontier = []
            for job, dependency in found:
                for node in (job, dependency):
                    if node in seen:
                        continue
                    if len(seen) >= limit:
                        truncated = True
                        continue
                    seen.add(node)
                    frontier.append(node)
                if job in seen and dependency in seen:
                    edges.add((job, dependency))
        nodes = await self._select("graph_nodes", self._key_list_param(sorted(seen)))
        return JobGraph(
            [
                GraphNode(str(i), kind, queue, status, error)
                for i, kind, queue, status, error in nodes
            ],
            [(str(a), str(b)) for a, b in sorted(edges)],
            truncated,
        )

    async def cancel_requests(self, host_id: str) -> list[str]:
        """Flagged running jobs of one host."""
        return [str(r[0]) for r in await self._select("cancel_requests", host_id)]

    # -- queues and processes ------------------------------------------------------------------
    async def ensure_queue(self, name: str, **knobs: Any) -> QueueConfig:
        """Create if missing, then apply knobs."""
        check_name(name, "queue")
        return await self._apply_queue_knobs(name, check_queue_knobs(knobs), create=True)

    async def update_queue(self, name: str, **knobs: Any) -> QueueConfig:
        """Apply knobs to an existing queue."""
        return await self._apply_queue_knobs(name, check_queue_knobs(knobs), create=False)

    async def queues(self) -> list[QueueConfig]:
        """Every queue's config."""
        return [rows.queue_config(r) for r in await self._select("queue_configs")]

    async def register_processes(self, processes: Sequence[ProcessRecord]) -> None:
        """Insert or replace slot rows."""
        params = [rows.process_params(p, self._list_param) for p in processes]
        if params:
            await self._change_all([("register_process", params)])

    async def unregister_processes(self, process_ids: Sequence[str]) -> None:
        """Delete slot rows."""
        if process_ids:
            await self._change("unregister_processes", self._list_param(list(process_ids)))

    async def heartbeat(
        self,
        host_id: str,
        now: float,
        current_jobs: Mapping[str, str | None],
        kinds: Collection[str] | None = None,
    ) -> None:
        """Touch a host's slots, record what each runs (and the kinds, when given)."""
        listed = None if kinds is None else self._list_param(list(kinds))
        await self._change_all(
            [
                ("heartbeat_host", [(now, host_id, listed)]),
                ("set_current_jobs", list(current_jobs.items())),
            ]
        )

    async def processes(self) -> list[ProcessRecord]:
        """Every slot row."""
        return [rows.process_record(r) for r in await self._select("processes")]

    async def job_contexts(self, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{job id: the context stored at enqueue}`` of those jobs that have one."""
        keys = [k for k in map(rows.parse_job_id, job_ids) if k is not None]
        if not keys:
            return {}
        return extras.load_contexts(await self._select("job_contexts", self._key_list_param(keys)))

    async def write_job_logs(self, logs: Sequence[JobLog]) -> None:
        """Store each attempt's log as it stands now, in one transaction."""
        params = []
        for log in logs:
            key = rows.parse_job_id(log.job_id)
            if key is not None:
                params.append(rows.log_params(key, log))
        if params:
            await self._change_all([("write_job_log", params)])

    async def job_logs(self, job_id: str) -> list[JobLog]:
        """Every logged attempt of a job, oldest first."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return []
        found = await self._select("job_logs", key)
        return [JobLog(str(key), int(a), t, int(n), int(d), float(u)) for a, t, n, d, u in found]

    async def run_now(self, job_id: str, now: float) -> str | None:
        """Make a pending job scheduled after ``now`` due now; its queue, or None if it was
        not such a job."""
        key = rows.parse_job_id(job_id)
        if key is None:
            return None
        found = await self._change("run_now", key, now)
        return str(found[0][0]) if found else None

    async def set_redaction(self, kind: str, fields: Sequence[str]) -> None:
        """Store the fields ``kind``'s views mask (see `Storage.set_redaction`)."""
        await self._change("set_redaction", kind, json.dumps(list(fields)))

    async def redactions(self) -> dict[str, tuple[str, ...]]:
        """``{kind: fields}`` (a small table: one row per kind that redacts)."""
        return {k: tuple(json.loads(f)) for k, f in await self._select("redactions")}

    async def stranded_kinds(
        self, live_since: float, count_up_to: int = 1_000, limit: int = 50
    ) -> list[StrandedKind]:
        """Waiting kinds no live process runs (see `Storage.stranded_kinds`)."""
        found = await self._select("stranded_kinds", live_since, count_up_to, limit)
        return [rows.stranded_kind(r, count_up_to) for r in found]

    # -- shipped code ------------------------------------------------------------------------
    async def publish_code(self, code: ShippedCode) -> bool:
        """Store one code version (see `Storage.publish_code`)."""
        return bool(await self._change("publish_code", *rows.code_params(code)))

    async def code_catalogue(self) -> list[ShippedCode]:
        """Every version without its code, oldest first."""
        return [rows.shipped_code(r) for r in await self._select("code_catalogue")]

    async def code_stamp(self) -> tuple[int, float | None]:
        """(versions, newest created_at)."""
        count, newest = await self._select_one("code_stamp")
        return int(count), newest

    async def get_code(self, version: str) -> ShippedCode | None:
        """One version with its code."""
        found = await self._select_one("code_row", version)
        return None if found is None else rows.shipped_code(found)

    # -- cron ----------------------------------------------------------------------------
    async def upsert_schedule(self, schedule: Schedule) -> Schedule:
        """Create or update by name (last_fire_at of an existing row is kept)."""
        check_name(schedule.name, "schedule name")
        [found] = await self._change(
            "upsert_schedule",
            schedule.name,
            schedule.cron,
            schedule.kind,
            dump_json(schedule.payload, what="schedule payload"),
            schedule.queue,
            bool(schedule.enabled),
            schedule.tz,
            schedule.next_fire_at,
        )
        return rows.schedule(found)

    async def fire_schedule(
        self,
        name: str,
        expected_next: float,
        fire_at: float,
        next_fire_at: float,
        job: NewJob,
        now: float,
    ) -> bool:
        """Advance the schedule (compare-and-set) and enqueue its job in one transaction."""
        prepared = prepare_jobs([job], now)
        return await self._fire_schedule(
            (name, expected_next, fire_at, next_fire_at), prepared, now
        )

    async def schedules(self) -> list[Schedule]:
        """Every schedule."""
        return [rows.schedule(r) for r in await self._select("schedules")]

    async def set_schedule_enabled(self, name: str, enabled: bool) -> bool:
        """Toggle; False if unknown."""
        return bool(await self._change("set_schedule_enabled", name, bool(enabled)))

    async def record_fire(self, name: str, fired_at: float, next_fire_at: float | None) -> None:
        """Store last and next fire."""
        await self._change("record_fire", name, fired_at, next_fire_at)

    # -- leases --------------------------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        """Take or renew in one statement; False while someone else holds it."""
        return bool(await self._change("acquire_lease", name, holder, now + ttl, now))

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if held."""
        await self._change("release_lease", name, holder)

    async def leases(self) -> list[Lease]:
        """Every lease."""
        return [rows.lease(r) for r in await self._select("leases")]

    # -- rate limits ---------------------------------------------------------------------
    async def ensure_rate_limit(
        self,
        scope: str,
        capacity: float,
        refill_per_second: float,
        now: float,
        template: bool | None = None,
    ) -> RateLimit:
        """Create (full) or update a bucket (its tokens capped at the new capacity); a
        scope with ``*`` (or ``template=True``) is a template (`FlowCore`)."""
        check_name(scope, "rate limit scope")
        check_bucket(capacity, refill_per_second)
        if template or (template is None and "*" in scope):
            return await self._ensure_template(
                scope, float(capacity), float(refill_per_second), now
            )
        [found] = await self._change(
            "ensure_rate_limit", scope, float(capacity), float(refill_per_second), now
        )
        return rows.rate_limit(found)

    async def take_tokens(self, scope: str, n: float, now: float) -> float:
        """Take ``n`` tokens (one atomic UPDATE) or say how long to wait."""
        if isinstance(n, bool) or not isinstance(n, int | float):
            raise ValueError(f"cannot take {n!r} tokens from {scope!r}: not a number")
        for _ in range(RACE_RETRIES):
            if await self._change("take_tokens", scope, n, now):
                return 0.0
            found = await self._select_one("rate_limit", scope)
            if found is None and await self._bucket_from_template(scope, now):
                continue  # made from a template just now: take from it
            bucket = rules.bucket_of(found, scope)
            wait = rules.tokens_wait(bucket, scope, n, now)
            if wait > 0.0:
                return wait
            # The bucket refilled between the two statements: try to take again.
        return 0.001

    async def drain_rate_limit(self, scope: str, hold_until: float, now: float) -> None:
        """Empty the bucket; refilling starts at ``hold_until``."""
        if await self._change("drain_rate_limit", scope, hold_until):
            return
        if not await self._bucket_from_template(scope, now) or not await self._change(
            "drain_rate_limit", scope, hold_until
        ):
            raise UnknownRateLimit(f"unknown rate limit scope {scope!r}")

    async def rate_limits(self) -> list[RateLimit]:
        """Every bucket."""
        return [rows.rate_limit(r) for r in await self._select("rate_limits")]

    # -- metrics, roll-ups, samples and retention ---------------------------------------------
    async def purge(self, queue: str, status: Status, finished_before: float, limit: int) -> int:
        """Delete a bounded batch of old terminal jobs and their events."""
        if status not in ("done", "dead"):
            raise ValueError(f"only done or dead jobs can be purged, not {status!r}")
        if limit <= 0:
            return 0
        return await self._purge_jobs(queue, status, finished_before, limit)

    async def write_metrics(self, rows: Sequence[MetricRow]) -> None:
        """Replace per-(minute, queue, host) rows."""
        params = [metric_params(r) for r in rows]
        if params:
            await self._change_all([("write_metrics", params)])

    async def read_metrics(
        self, since: float, until: float, queue: str | None = None, histograms: bool = True
    ) -> list[MetricRow]:
        """Rows in a minute range."""
        found = await self._select("read_metrics", int(since // 60), int(until // 60), queue)
        return [rows.metric_row(r, histograms) for r in found]

    async def sum_metrics(
        self, step: int, since: float, until: float, queue: str | None = None
    ) -> list[MetricRow]:
        """Counters per bucket and queue, summed over hosts by the database."""
        found = await self._select("sum_metrics", step, int(since // 60), int(until // 60), queue)
        return [rows.metric_row(r, False) for r in found]

    async def sum_histograms(
        self, step: int, since: float, until: float, queue: str | None = None
    ) -> tuple[dict[int, int], dict[int, int]]:
        """Both histograms summed by the database's JSON functions."""
        name, params = rows.histogram_query(step, since, until, queue)
        return rows.histogram_totals(await self._select(name, *params))

    async def write_rollups(self, step: int, rows: Sequence[MetricRow], through: int) -> None:
        """Replace roll-up rows and move the step's mark, in one transaction."""
        params = [rollup_params(step, r) for r in rows]
        await self._change_all([("write_rollup", params), ("write_rollup_mark", [(step, through)])])

    async def read_rollups(
        self,
        step: int,
        since: float,
        until: float,
        queue: str | None = None,
        histograms: bool = True,
    ) -> list[MetricRow]:
        """Roll-up rows in a minute range."""
        found = await self._select("read_rollups", step, int(since // 60), int(until // 60), queue)
        return [rows.metric_row(r, histograms) for r in found]

    async def rollup_marks(self) -> dict[int, int]:
        """Step → first minute not rolled up."""
        return {int(s): int(t) for s, t in await self._select("rollup_marks")}

    async def write_samples(self, samples: Sequence[tuple[int, str, str, dict[str, Any]]]) -> None:
        """Insert or replace per-minute samples."""
        params = [(m, h, k, dump_json(d, what="sample")) for m, h, k, d in samples]
        if params:
            await self._change_all([("write_sample", params)])

    async def read_samples(
        self, kind: str, since: float, until: float
    ) -> list[tuple[int, str, dict[str, Any]]]:
        """Samples of one kind in a range, oldest first."""
        found = await self._select("read_samples", kind, int(since // 60), int(until // 60))
        return [(m, h, json.loads(d)) for m, h, d in found]
