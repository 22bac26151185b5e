"""What an `App` offers for workflows (jobs enqueued with ``depends_on``, SPEC §9.2): a
job's dependencies and dependents, and the graph they form. A mixin of `App`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from forge_nb.storage.records import JobGraph, JobRecord

if TYPE_CHECKING:
    from forge_nb.storage.base import Storage


class Workflows:
    """`App`'s reads of the dependencies between jobs."""

    if TYPE_CHECKING:

        async def storage(self) -> Storage: ...

        async def _redacted(self, jobs: list[JobRecord]) -> list[JobRecord]: ...

    async def dependencies(self, job_id: Any, limit: int = 1000) -> list[JobRecord]:
        """The jobs ``job_id`` (an id or a `JobRef`) waits or waited for, by id (pinned)."""
        return await self._redacted(
            await (await self.storage()).dependencies(_id_of(job_id), limit)
        )

    async def dependents(self, job_id: Any, limit: int = 1000) -> list[JobRecord]:
        """The jobs that wait or waited for ``job_id`` (an id or a `JobRef`), by id (pinned)."""
        return await self._redacted(await (await self.storage()).dependents(_id_of(job_id), limit))

    async def job_graph(self, job_id: Any, limit: int = 500) -> JobGraph:
        """Every job connected to ``job_id`` by dependencies, nearest first, up to ``limit``:
        what the dashboard's Workflow view draws."""
        return await (await self.storage()).job_graph(_id_of(job_id), limit)


def _id_of(job: Any) -> str:
    """A job id from an id or anything with an ``id`` (a `JobRef`, a `JobRecord`)."""
    return str(getattr(job, "id", job))
