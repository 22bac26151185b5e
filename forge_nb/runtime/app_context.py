"""`App.propagate`, and the reads of what travelled with a job and what it logged (SPEC
§9.4). A mixin of `App`."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

from forge_nb.runtime import tracing
from forge_nb.runtime.propagation import Propagated, capture, locate
from forge_nb.storage.records import JobLog

if TYPE_CHECKING:
    from forge_nb.runtime.prometheus import WorkerMetrics
    from forge_nb.storage.base import Storage


class Propagation:
    """Context variables whose value at enqueue is set around the job's run."""

    if TYPE_CHECKING:

        async def storage(self) -> Storage: ...

    _propagated: dict[str, Propagated] | None = None
    #: Capture each run's print and logging output into its job's log (`joblogs`); False
    #: leaves output where it went before (for comparison: ``bench/job_logs.py``).
    capture_logs: bool = True
    #: Prometheus counters of this process (`forge_nb.runtime.prometheus`; set by
    #: ``forge-nb worker --metrics-port``), or None.
    prometheus: WorkerMetrics | None = None

    def propagate(self, var: contextvars.ContextVar[Any]) -> contextvars.ContextVar[Any]:
        """Store ``var``'s value (JSON) with each job enqueued from now on and set it around
        the job's run, in every executor (pinned). Returns ``var``.

        Jobs record it under ``var.name``, which must be unique among the propagated ones.
        """
        if not isinstance(var, contextvars.ContextVar):
            raise TypeError(f"propagate takes a contextvars.ContextVar, got {var!r}")
        if self._propagated is None:
            self._propagated = {}
        known = self._propagated.get(var.name)
        if known is not None and known.var is not var:
            raise ValueError(f"another ContextVar named {var.name!r} is already propagated")
        self._propagated[var.name] = Propagated(var, *locate(var))
        return var

    def _captured_context(self) -> dict[str, Any] | None:
        """What the propagated variables hold now, and the enqueue's trace context when
        OpenTelemetry records (None: nothing to store)."""
        found = capture(self._propagated) if self._propagated else None
        headers = tracing.carrier()
        if headers is not None:
            found = {**(found or {}), tracing.TRACE_KEY: headers}
        return found

    async def job_context(self, job_id: Any) -> dict[str, Any]:
        """The propagated values a job was enqueued with (``{}``: none)."""
        job = str(getattr(job_id, "id", job_id))
        found = (await (await self.storage()).job_contexts([job])).get(job, {})
        return {k: v for k, v in found.items() if k != tracing.TRACE_KEY}

    async def job_logs(self, job_id: Any) -> list[JobLog]:
        """What each attempt of a job printed and logged (its last lines), oldest attempt
        first (pinned); stored at most 0.5 s behind a running job."""
        return await (await self.storage()).job_logs(str(getattr(job_id, "id", job_id)))
