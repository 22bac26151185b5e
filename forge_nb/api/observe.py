"""Routes of issue 21: a job's captured logs."""

from __future__ import annotations

from forge_nb.api.base import ApiRoute
from forge_nb.api.convert import iso
from forge_nb.api.jobs import existing_job


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
