"""Job routes: list, inspect, enqueue, retry, cancel, delete, bulk retry."""

from __future__ import annotations

from typing import Any

from forge_nb.api.base import ApiError, ApiRoute
from forge_nb.api.convert import (
    PAGE_BUDGET_CHARS,
    BadInput,
    event_json,
    job_json,
    job_summary_json,
    parse_limit,
    parse_status,
    parse_time,
)
from forge_nb.api.models import EnqueueBody, RetryFilter, checked
from forge_nb.errors import UnknownDependency, UnknownQueue
from forge_nb.runtime.refs import EnqueueRequest, JobRef
from forge_nb.storage.records import TERMINAL_STATUSES, JobRecord

#: Jobs accepted by one bulk enqueue (one transaction).
MAX_ENQUEUE_BATCH = 10_000
#: Jobs a graph answer holds at most (what the dashboard's Workflow view draws).
GRAPH_LIMIT = 500
#: The fields of an enqueue body the App gets as sent (None when null or absent).
AS_SENT = ("queue", "priority", "delay", "unique_key", "max_attempts", "expires_in", "unique_for")


def enqueue_request(body: Any, where: str = "job") -> EnqueueRequest:
    """An `EnqueueRequest` from one JSON object checked against `EnqueueBody`.

    null (or absent) means the default for every field but ``kind``: ``payload: null`` is no
    arguments. The App gets the values as sent (an integer stays an integer) and checks
    them further. When the job may run is checked here, so an answer names the job at fault.
    """
    checked(body, EnqueueBody, where)
    fields: dict[str, Any] = body
    try:
        scheduled_at = run_time(fields.get("scheduled_at"))
    except BadInput as exc:
        raise BadInput(f"{where}: {exc}", 422) from None
    return EnqueueRequest(
        kind=fields["kind"],
        payload=fields.get("payload") or {},
        scheduled_at=scheduled_at,
        depends_on=tuple(fields.get("depends_on") or ()),
        tags=tuple(fields.get("tags") or ()),
        on_conflict=fields.get("on_conflict") or "ignore",
        **{name: fields.get(name) for name in AS_SENT},
    )


def dependency_refusal(exc: ValueError) -> Exception:
    """An enqueue the App refused: 400 for an unknown ``depends_on`` id (nothing was
    stored: the request names a job that is not there), 422 for other invalid values."""
    if isinstance(exc, UnknownDependency):
        return BadInput(str(exc), 400)
    return BadInput(str(exc), 422)


def run_time(value: str | float | None) -> float | None:
    """``scheduled_at`` of an enqueue body (already a string, a number in range, or null)."""
    if isinstance(value, str):
        return parse_time(value, "scheduled_at", bad=422)
    return None if value is None else float(value)


class JobsRoute(ApiRoute):
    """``GET /api/jobs`` (newest first, keyset paged) and ``POST /api/jobs`` (enqueue)."""

    async def get(self) -> None:
        status, limit = parse_status(self.query("status")), parse_limit(self.query("limit"))
        try:
            page = await self.forge.jobs_page(
                status=status,
                queue=self.query("queue"),
                kind=self.query("kind"),
                search=self.query("search"),
                limit=limit,
                cursor=self.query("cursor"),
                tag=self.query("tag"),
            )
        except ValueError as exc:  # a cursor we never handed out: a malformed query
            raise BadInput(str(exc)) from None
        jobs: list[dict[str, Any]] = []
        used, next_cursor = 0, page.next_cursor
        for job in page.jobs:
            shown, size = job_summary_json(job)
            if jobs and used + size > PAGE_BUDGET_CHARS:  # the rest on the next page
                next_cursor = jobs[-1]["id"]
                break
            jobs.append(shown)
            used += size
        self.send({"jobs": jobs, "next_cursor": next_cursor})

    async def post(self) -> None:
        body = self.json_body()
        if isinstance(body, list):
            await self._enqueue_many(body)
            return
        request = enqueue_request(body)
        try:
            ref = await self.forge.enqueue(request)
        except TypeError as exc:  # arguments that do not fit the job function's signature
            raise BadInput(str(exc), 422) from None
        except ValueError as exc:
            raise dependency_refusal(exc) from None
        await send_enqueued(self, ref)

    async def _enqueue_many(self, body: list[Any]) -> None:
        """A JSON array enqueues every job in one transaction: all stored, or none."""
        if not body:
            raise BadInput("an empty list enqueues nothing", 422)
        if len(body) > MAX_ENQUEUE_BATCH:
            raise BadInput(f"at most {MAX_ENQUEUE_BATCH} jobs per request, got {len(body)}", 422)
        requests = [enqueue_request(item, f"job {i}") for i, item in enumerate(body)]
        try:
            refs = await self.forge.enqueue_many(requests)
        except TypeError as exc:
            raise BadInput(str(exc), 422) from None
        except ValueError as exc:
            raise dependency_refusal(exc) from None
        created = sum(ref.outcome == "created" for ref in refs)
        self.send(
            {
                "jobs": [{"id": r.id, "kind": r.kind, "outcome": r.outcome} for r in refs],
                "created": created,
                "duplicates": len(refs) - created,
            },
            201 if created else 200,
        )


class JobRoute(ApiRoute):
    """``GET /api/jobs/{id}`` (with its event history) and ``DELETE /api/jobs/{id}``."""

    async def get(self, job_id: str) -> None:
        job = await existing_job(self, job_id)
        events = await self.forge.job_history(job.id)
        self.send({**job_json(job), "events": [event_json(e) for e in events]})

    async def delete(self, job_id: str) -> None:
        try:
            deleted = await self.forge.delete(job_id)
        except ValueError as exc:  # running: cancel it first
            raise ApiError(409, str(exc)) from None
        if not deleted:
            raise ApiError(404, f"unknown job id {job_id!r}")
        self.send({"id": job_id, "deleted": True})


class JobGraphRoute(ApiRoute):
    """``GET /api/jobs/{id}/graph``: the jobs connected to one by dependencies (both ways)."""

    async def get(self, job_id: str) -> None:
        job = await existing_job(self, job_id)
        graph = await self.forge.job_graph(job.id, limit=GRAPH_LIMIT)
        self.send(
            {
                "job_id": job.id,
                "nodes": [
                    {
                        "id": n.id,
                        "kind": n.kind,
                        "queue": n.queue,
                        "status": n.status,
                        "last_error": n.last_error,
                    }
                    for n in graph.nodes
                ],
                "edges": [{"job": j, "dependency": d} for j, d in graph.edges],
                "truncated": graph.truncated,
            }
        )


class JobRetryRoute(ApiRoute):
    """``POST /api/jobs/{id}/retry``: a dead or failed job runs again now, attempts reset."""

    async def post(self, job_id: str) -> None:
        try:
            job = await self.forge.retry(job_id)
        except LookupError:
            raise ApiError(404, f"unknown job id {job_id!r}") from None
        except ValueError as exc:  # not dead/failed
            raise ApiError(409, str(exc)) from None
        self.send(job_json(job))


class JobCancelRoute(ApiRoute):
    """``POST /api/jobs/{id}/cancel``: 200 once cancelled, 202 while a running job stops.

    A job running in another process stops within one heartbeat; 202 says so.
    """

    async def post(self, job_id: str) -> None:
        before = await existing_job(self, job_id)
        if before.status in TERMINAL_STATUSES:
            raise ApiError(409, f"job {job_id} is already {before.status}; nothing to cancel")
        if await self.forge.cancel(job_id) is None:
            raise ApiError(404, f"unknown job id {job_id!r}")
        job = await existing_job(self, job_id)  # a job running here may already be dead
        self.send(job_json(job), 202 if job.status == "running" else 200)


class JobsRetryRoute(ApiRoute):
    """``POST /api/jobs/retry``: retry every dead (or failed) job matching a filter.

    No body, a null body, and null or empty fields mean no filter (status: ``dead``),
    as the document's ``RetryFilter`` says.
    """

    async def post(self) -> None:
        body = checked(self.json_body(allow_empty=True), RetryFilter | None, "retry filter")
        filter = body or RetryFilter()
        status = parse_status(filter.status, ("dead", "failed"), 422) or "dead"
        try:
            retried = await self.forge.retry_all(
                status=status,
                queue=filter.queue or None,
                kind=filter.kind or None,
                search=filter.search or None,
            )
        except UnknownQueue as exc:  # a filter value, not the resource: invalid input
            raise BadInput(str(exc), 422) from None
        self.send({"retried": retried, "status": status})


async def send_enqueued(route: ApiRoute, ref: JobRef) -> None:
    """Answer an enqueue with the job and its outcome: 201 when created, 200 for a duplicate."""
    job = await existing_job(route, ref.id)
    route.set_header("Location", f"{route.api_root()}/jobs/{ref.id}")
    route.send({**job_json(job), "outcome": ref.outcome}, 201 if ref.outcome == "created" else 200)


async def existing_job(route: ApiRoute, job_id: str) -> JobRecord:
    """The job, or 404."""
    job: JobRecord | None = await route.forge.job(job_id)
    if job is None:
        raise ApiError(404, f"unknown job id {job_id!r}")
    return job
