"""What callers hold: the request to enqueue, and a reference to the job it made."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from forge_nb.runtime import views
from forge_nb.runtime.outcomes import JobDead
from forge_nb.storage.records import TERMINAL_STATUSES, JobRecord, Status

if TYPE_CHECKING:
    from forge_nb.runtime.app import App

WAIT_POLL_MIN_S = 0.02
WAIT_POLL_MAX_S = 0.5


@dataclass(frozen=True, slots=True)
class EnqueueRequest:
    """One job to enqueue (pinned). ``queue=None`` lets the app's router choose."""

    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    #: Seconds (or a timedelta) before the job may run.
    delay: float | timedelta | None = None
    #: When the job may run (aware datetime or epoch seconds); wins over ``delay``.
    scheduled_at: datetime | float | None = None
    unique_key: str | None = None
    max_attempts: int | None = None
    #: Jobs (`JobRef` or id) that must be done first: the job waits until then (SPEC §9.2).
    depends_on: Sequence[JobRef | str] = ()
    #: Flow control (SPEC §9.3): not started within this many seconds → dead "expired".
    expires_in: float | timedelta | None = None
    #: Seconds the unique key stays taken after the job finishes (``done`` included).
    unique_for: float | timedelta | None = None
    #: "ignore" (return the live holder) or "replace" (a pending holder takes this payload
    #: and run time; the outcome says ``replaced``).
    on_conflict: str = "ignore"
    #: Labels to filter by: ``app.jobs(tag=...)``, the dashboard, ``GET /api/jobs?tag=``.
    tags: Sequence[str] = ()


def dependency_ids(depends_on: object) -> tuple[str, ...]:
    """``depends_on`` (JobRefs or ids) as ids; the storage checks that they exist."""
    if depends_on is None or (type(depends_on) is tuple and not depends_on):  # no ABC checks
        return ()
    if isinstance(depends_on, str | bytes | JobRef) or not isinstance(depends_on, Iterable):
        raise ValueError(f"depends_on must be a list of JobRefs or job ids, got {depends_on!r}")
    return tuple(d.id if isinstance(d, JobRef) else d for d in depends_on)


class JobRef:
    """A handle on one job (pinned): its ``id``, ``status()``, ``wait()`` and ``cancel()``.

    ``outcome`` says whether enqueue created the job, found a duplicate holding its unique
    key (``duplicate``), or gave a pending holder its payload and time (``replaced``).
    """

    __slots__ = ("app", "id", "kind", "outcome")

    def __init__(self, app: App, job_id: str, kind: str = "", outcome: str = "created") -> None:
        self.app = app
        self.id = job_id
        self.kind = kind
        self.outcome = outcome

    def __repr__(self) -> str:
        return f"JobRef(id={self.id!r}, kind={self.kind!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobRef) and other.id == self.id and other.app is self.app

    def __hash__(self) -> int:
        return hash(self.id)

    async def record(self) -> JobRecord:
        """The job's current row."""
        job = await self.app.job(self.id)
        if job is None:
            raise LookupError(f"job {self.id} no longer exists (deleted or purged by retention)")
        return job

    async def status(self) -> Status:
        """``pending``, ``running``, ``failed``, ``done`` or ``dead``."""
        return (await self.record()).status

    async def cancel(self) -> Status | None:
        """Cancel the job wherever it runs; returns its status after the request."""
        return await self.app.cancel(self.id)

    async def wait(self, timeout: float | None = None) -> Any:
        """Wait until the job ends: its result when ``done``; raises `JobDead` when ``dead``.

        Completion in this process wakes the waiter at once; jobs run by other
        processes are polled (20 ms growing to 500 ms).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        poll = WAIT_POLL_MIN_S
        while True:
            waiter = self.app._completion_waiter(self.id)
            job = await self.record()
            if job.status in TERMINAL_STATUSES:
                if job.status == "dead":
                    raise JobDead(job)
                return job.result
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"job {self.id} is still {job.status} after {timeout} s")
            step = poll if remaining is None else min(poll, remaining)
            try:
                await asyncio.wait_for(waiter.wait(), step)
            except TimeoutError:
                poll = min(poll * 2, WAIT_POLL_MAX_S)

    def _ipython_display_(self) -> None:
        """A cell ending in a JobRef shows a live job widget."""
        views.show("job_ref", self)


async def gather(refs: Iterable[JobRef], timeout: float | None = None) -> list[Any]:
    """The results of ``refs`` in order, once all are done; `JobDead` (naming the job) for
    the first dead one in order. One job is waited for at a time, so even 10,000 refs of
    jobs run elsewhere cost one poll at a time, and the finished ones one read each."""
    deadline = None if timeout is None else time.monotonic() + timeout
    results = []
    for ref in refs:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        results.append(await ref.wait(remaining))
    return results


class JobRefList(list[JobRef]):
    """What ``enqueue_many`` returns: a plain list that renders as one compact live summary."""

    async def gather(self, timeout: float | None = None) -> list[Any]:
        """The results in order once all are done (see `forge_nb.gather`)."""
        return await gather(self, timeout)

    def _ipython_display_(self) -> None:
        views.show("job_refs", self)
