"""Routes of issue 21: a job's captured logs, and bulk actions."""

from __future__ import annotations

from forge_nb.api.base import ApiRoute
from forge_nb.api.convert import BadInput, iso
from forge_nb.api.jobs import existing_job
from forge_nb.api.models import BulkBody, BulkFilter, checked


class JobLogsRoute(ApiRoute):
    """``GET /api/jobs/{id}/logs``: what each attempt printed and logged (its last lines)."""

    async def get(self, job_id: str) -> None:
        job = await existing_job(self, job_id)
        logs = await self.forge.job_logs(job.id)
        self.send(
            {
                "job_id": job.id,
                "attempts": [
                    {
                        "attempt": log.attempt,
                        "text": log.text,
                        "lines": log.lines,
                        "dropped": log.dropped,
                        "updated_at": iso(log.updated_at),
                    }
                    for log in logs
                ],
            }
        )


class JobsBulkRoute(ApiRoute):
    """``POST /api/jobs/bulk``: retry, cancel, delete or run now the jobs listed in ``ids``
    or every job matching ``filter`` (at most 100,000)."""

    async def post(self) -> None:
        body = checked(self.json_body(), BulkBody, "bulk action")
        if (body.ids is None) == (body.filter is None):
            raise BadInput("give exactly one of ids and filter", 422)
        if body.ids is not None:
            ids = body.ids
        else:
            f = body.filter or BulkFilter()
            try:
                ids = await self.forge.matching_ids(
                    status=f.status or None,
                    queue=f.queue or None,
                    kind=f.kind or None,
                    search=f.search or None,
                    tag=f.tag or None,
                    scheduled=f.scheduled,
                )
            except ValueError as exc:
                raise BadInput(str(exc), 422) from None
        result = await self.forge.bulk(body.action, ids)
        self.send({**result.to_dict(), "matched": len(ids)})
