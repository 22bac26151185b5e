"""`App`'s actions on many jobs: by id (a selection) or on every job matching a filter (the
dashboard's "all matching" buttons and ``POST /api/jobs/bulk``). A mixin of `App`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from forge_nb.storage.records import JobFilter, JobPage, JobRecord, Status

#: What `App.bulk` can do to a job.
BULK_ACTIONS = ("retry", "cancel", "delete", "run_now")
#: Most jobs one "all matching" action takes (by id, newest first or soonest first).
MATCHING_CAP = 100_000


@dataclass
class BulkResult:
    """How a bulk action went: jobs changed, jobs it did not apply to, and why (a few)."""

    action: str
    done: int = 0
    skipped: int = 0
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "action": self.action,
            "done": self.done,
            "skipped": self.skipped,
            "reasons": self.reasons,
        }


if TYPE_CHECKING:
    from forge_nb.runtime.queue_handle import QueueHandle
    from forge_nb.storage.base import Storage


class Bulk:
    """Retry, delete (and cancel, run now) many jobs by filter."""

    if TYPE_CHECKING:
        _handle: QueueHandle | None

        async def storage(self) -> Storage: ...

        async def _check_queue(self, name: str) -> None: ...

        def _notify(self, queue: str) -> None: ...

        async def retry(self, job_id: str) -> JobRecord: ...

        async def delete(self, job_id: str) -> bool: ...

        async def cancel(self, job_id: str) -> Status | None: ...

        async def jobs_page(self, *args: Any, **kwargs: Any) -> JobPage: ...

        async def redactions(self) -> dict[str, tuple[str, ...]]: ...

    async def retry_all(
        self,
        status: Status = "dead",
        queue: str | None = None,
        kind: str | None = None,
        search: str | None = None,
        tag: str | None = None,
    ) -> int:
        """Retry every dead (or failed) job matching the filter; returns how many."""
        if queue is not None:
            await self._check_queue(queue)
        if await self._search_may_reveal(kind, search):
            ids = await self.matching_ids(status, queue, kind, search, tag)
            return (await self.bulk("retry", ids)).done
        n = await (await self.storage()).retry_many(
            JobFilter(status, queue, kind, search, tag=tag), time.time()
        )
        for name in [queue] if queue else list(self._handle.pools if self._handle else []):
            self._notify(name)
        return n

    async def delete_all(
        self,
        status: Status | None = None,
        queue: str | None = None,
        kind: str | None = None,
        search: str | None = None,
        tag: str | None = None,
    ) -> int:
        """Delete every non-running job matching the filter."""
        if await self._search_may_reveal(kind, search):
            ids = await self.matching_ids(status, queue, kind, search, tag)
            return (await self.bulk("delete", ids)).done
        return await (await self.storage()).delete_many(
            JobFilter(status, queue, kind, search, tag=tag)
        )

    async def _search_may_reveal(self, kind: str | None, search: str | None) -> bool:
        """Whether the storage's payload search could match a masked value: then a filter-wide
        action goes by the ids the masked search shows (as the list shows them), so that what it
        counts and changes reveals no secret."""
        if not search:
            return False
        redactions = await self.redactions()
        return bool(redactions) and (kind is None or kind in redactions)

    async def run_now(self, job_id: str) -> None:
        """A pending job scheduled for later becomes due now (ValueError for any other)."""
        queue = await (await self.storage()).run_now(str(job_id), time.time())
        if queue is None:
            raise ValueError(f"job {job_id} is not a pending job scheduled for later")
        self._notify(queue)

    async def bulk(self, action: str, ids: Sequence[str]) -> BulkResult:
        """Apply ``action`` (retry, cancel, delete, run_now) to each job of ``ids``; jobs
        it does not apply to (a running job to delete, a done job to retry) are skipped."""
        if action not in BULK_ACTIONS:
            raise ValueError(f"unknown bulk action {action!r}; use one of {BULK_ACTIONS}")
        result = BulkResult(action)
        for job_id in dict.fromkeys(str(i) for i in ids):
            try:
                changed = await self._bulk_one(action, job_id)
            except (ValueError, LookupError) as exc:
                changed, reason = False, str(exc)
            else:
                reason = f"job {job_id}: nothing to {action.replace('_', ' ')}"
            if changed:
                result.done += 1
            else:
                result.skipped += 1
                if len(result.reasons) < 5:
                    result.reasons.append(reason)
        return result

    async def _bulk_one(self, action: str, job_id: str) -> bool:
        if action == "retry":
            await self.retry(job_id)
        elif action == "delete":
            return await self.delete(job_id)
        elif action == "cancel":
            before = await (await self.storage()).get_job(job_id)
            if before is None or before.status in ("done", "dead"):
                return False
            return await self.cancel(job_id) is not None
        else:
            await self.run_now(job_id)
        return True

    async def matching_ids(
        self,
        status: Status | None = None,
        queue: str | None = None,
        kind: str | None = None,
        search: str | None = None,
        tag: str | None = None,
        *,
        scheduled: bool = False,
        limit: int = MATCHING_CAP,
    ) -> list[str]:
        """Ids of the jobs matching a filter (``scheduled``: pending jobs due later, as the
        Scheduled view lists them), at most ``limit``: what an "all matching" action takes."""
        found: list[str] = []
        cursor = None
        after = time.time() if scheduled else None
        while len(found) < limit:
            page = await self.jobs_page(
                status,
                queue,
                kind,
                search,
                min(1000, limit - len(found)),
                cursor,
                scheduled_after=after,
                tag=tag,
            )
            found += [j.id for j in page.jobs]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return found
