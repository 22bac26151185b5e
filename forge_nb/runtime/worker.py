"""One queue's worker pool, the job runner and the batched finalizer.

A pool has ``workers`` slots. Its claim loop claims as many jobs as there are
free slots in one statement, starts each as a task, and sleeps until a slot
frees, a local enqueue wakes it, or the poll interval passes. Outcomes go to
the `Finalizer`, which writes every outcome that piled up while the previous
write ran in one transaction (group commit), so the database sees one claim and
one finish statement per batch rather than per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from forge_nb.errors import PayloadError, StorageError
from forge_nb.runtime import flow, global_slots, joblogs, propagation, tracing
from forge_nb.runtime.context import CancelToken, JobCtx
from forge_nb.runtime.flow import KindPolicy
from forge_nb.runtime.outcomes import (
    Dead,
    Throttled,
    backoff_delay,
    error_chain,
    format_traceback,
    throttle_delay,
)
from forge_nb.runtime.process_wire import rendered
from forge_nb.runtime.redaction import secrets_in
from forge_nb.storage.records import ClaimedJob, Finish, QueueConfig, ReapedJob
from forge_nb.storage.validation import dump_json

if TYPE_CHECKING:
    from forge_nb.runtime.handlers import Handler
    from forge_nb.runtime.queue_handle import QueueHandle

log = logging.getLogger("forge_nb.worker")

#: Most jobs one claim statement takes.
CLAIM_BATCH_MAX = 100
#: Pause after a database error before the claim loop tries again.
ERROR_RETRY_S = 1.0


@dataclass(eq=False)
class RunningJob:
    """A claimed job running in this process."""

    job: ClaimedJob
    slot: int
    process_id: str
    token: CancelToken
    started: float
    task: asyncio.Task[None] | None = None
    handler: Handler | None = None
    in_thread: bool = False
    #: Set by shutdown: a cancel now means "give the job back", not "user cancelled".
    releasing: bool = False
    #: Counted in its pool's ``unsettled`` until its finish commits (global_limit).
    unsettled: bool = False


class QueuePool:
    """Runs one queue's jobs in this process."""

    def __init__(self, handle: QueueHandle, config: QueueConfig) -> None:
        self.handle = handle
        self.name = config.name
        self.config = config
        self.running: dict[str, RunningJob] = {}
        self._free: list[int] = []
        self._registered: set[int] = set()
        self._slot_ids: dict[int, str] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        #: ``now`` of claims that raised: they may have committed before the reply was lost.
        self._unanswered: list[float] = []
        #: Slots of the queue's ``global_limit`` this process holds (None: no such limit).
        self.global_cap: int | None = None
        #: Runs that ended here but whose finish is not committed yet: under a global_limit
        #: they still hold their slot (the database counts them running until then).
        self.unsettled = 0
        #: Jobs a claim now in flight may bring: a rebalance must not give their slots away.
        self.claiming = 0

    # -- slots ------------------------------------------------------------------
    def running_job(self, job: ClaimedJob, slot: int) -> RunningJob:
        """A claimed job starting now in ``slot`` (the worker's loop and `App.drain` alike)."""
        return RunningJob(
            job=job,
            slot=slot,
            process_id=self.slot_id(slot),
            token=CancelToken(),
            started=time.time(),
        )

    def slot_id(self, slot: int) -> str:
        """Process-registry id of a slot (pinned shape)."""
        found = self._slot_ids.get(slot)
        if found is None:
            found = self._slot_ids[slot] = f"{self.name}-{slot}-{self.handle.host_id}"
        return found

    @property
    def target(self) -> int:
        """How many jobs this pool may run now."""
        if self.config.paused or self._stopping:
            return 0
        cap = self.global_cap
        return self.config.workers if cap is None else min(cap, self.config.workers)

    @property
    def stopping(self) -> bool:
        """Whether the pool claims no more (shutdown)."""
        return self._stopping

    def current_jobs(self) -> dict[str, str | None]:
        """Slot id → running job id, for the heartbeat."""
        busy = {rj.slot: rj.job.id for rj in self.running.values()}
        return {self.slot_id(s): busy.get(s) for s in self._registered}

    async def _sync_slots(self) -> None:
        """Register rows for new slots; drop rows of idle slots above the worker count."""
        wanted = set(range(self.config.workers))
        busy = {rj.slot for rj in self.running.values()}
        added = sorted(wanted - self._registered)
        removed = sorted(self._registered - wanted - busy)
        if added:
            await self.handle.storage.register_processes(
                [self.handle.process_record(self.slot_id(s), self.name) for s in added]
            )
            for s in added:
                self._registered.add(s)
                heapq.heappush(self._free, s)
        if removed:
            await self.handle.storage.unregister_processes([self.slot_id(s) for s in removed])
            self._registered.difference_update(removed)

    def _take_slot(self) -> int:
        while self._free:
            slot = heapq.heappop(self._free)
            if slot < self.config.workers and slot in self._registered:
                return slot
        # Registration lags a resize by one tick: use the next unused index meanwhile.
        busy = {rj.slot for rj in self.running.values()}
        return next(i for i in range(len(busy) + 1) if i not in busy)

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Register slots and start claiming."""
        await self._sync_slots()
        await global_slots.rebalance(self)
        self._task = asyncio.create_task(self._claim_loop(), name=f"forge-nb claim {self.name}")

    async def apply_config(self, config: QueueConfig) -> None:
        """Take a new config (worker count, pause, backoff) without restarting."""
        self.config = config
        await self._sync_slots()
        self.wake()

    def wake(self) -> None:
        """Claim now rather than at the next poll."""
        self._wake.set()

    def halt(self) -> None:
        """Claim nothing more, from now (sync); the claim loop ends at its next turn."""
        self._stopping = True
        self.wake()

    async def stop_claiming(self) -> None:
        """Stop the claim loop (running jobs go on)."""
        self.halt()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def unregister(self) -> None:
        """Remove every slot row of this pool (and give back its global_limit slots)."""
        await global_slots.release_all(self)
        if self._registered:
            await self.handle.storage.unregister_processes(
                [self.slot_id(s) for s in self._registered]
            )
            self._registered.clear()

    # -- claiming --------------------------------------------------------------------
    def _claim_size(self) -> tuple[int, frozenset[str]]:
        """How many jobs to claim now, and of which kinds: those this process runs, less
        those at their concurrency limit."""
        size = min(
            self.target - len(self.running) - self.unsettled,
            CLAIM_BATCH_MAX,
            self.handle.global_room(),
        )
        kinds = self.handle.runnable_kinds()
        excluded = []
        for handler in self.handle.limited_handlers():
            if handler.concurrency is None or handler.queue not in (None, self.name):
                continue
            room = handler.concurrency - self.handle.running_of_kind(handler.kind)
            if room <= 0:
                excluded.append(handler.kind)
            else:
                size = min(size, room)
        return size, kinds.difference(excluded) if excluded else kinds

    async def _claim_loop(self) -> None:
        poll = self.handle.poll_interval
        while not self._stopping:
            self._wake.clear()
            if self._unanswered and not await self._release_unanswered():
                await _wait(self._wake, ERROR_RETRY_S)
                continue
            size, kinds = self._claim_size()
            jobs: list[ClaimedJob] = []
            if size > 0 and kinds:
                now = time.time()
                self.claiming = size
                try:
                    jobs = await self.handle.storage.claim(
                        self.name,
                        self.handle.host_id,
                        size,
                        now,
                        kinds=kinds,
                        exclude_versions=self.handle.excluded_versions(),
                    )
                except StorageError as exc:
                    self._unanswered.append(now)
                    self.handle.health.failed(f"claim from {self.name}", exc)
                    await _wait(self._wake, ERROR_RETRY_S)
                    continue
                finally:
                    self.claiming = 0
                self.handle.health.ok()
                for job in jobs:
                    self._start(job)
            if size > 0 and len(jobs) == size:
                await asyncio.sleep(0)  # a full batch: there may be more right away
            else:
                await _wait(self._wake, poll)

    async def _release_unanswered(self) -> bool:
        """Give back what claims that raised may have taken; False while that fails.

        A claim can commit and then lose its reply with the connection: its jobs would
        stay ``running`` under this live process, where the reaper never looks.
        """
        try:
            released = await self.handle.storage.release_claims(
                self.name, self.handle.host_id, self._unanswered
            )
        except StorageError as exc:
            self.handle.health.failed(f"release of unanswered claims from {self.name}", exc)
            return False
        self._unanswered.clear()
        if released:
            log.warning(
                "%d job(s) of %s taken by a claim whose reply was lost went back to pending: %s",
                len(released),
                self.name,
                ", ".join(released[:10]),
            )
        return True

    def _start(self, job: ClaimedJob) -> None:
        rj = self.running_job(job, self._take_slot())
        self.running[job.id] = rj
        self.handle.job_started(rj)
        rj.task = self.handle.loop.create_task(self._run(rj))

    async def _run(self, rj: RunningJob) -> None:
        try:
            finish = await self.handle.runner.execute(self, rj)
            if self.global_cap is not None:
                rj.unsettled = True
                self.unsettled += 1
            self.handle.finalizer.submit(finish, rj)
        finally:
            self.running.pop(rj.job.id, None)
            self.handle.job_ended(rj)
            if rj.slot < self.config.workers and rj.slot in self._registered:
                heapq.heappush(self._free, rj.slot)
            self.wake()


async def _wait(event: asyncio.Event, timeout: float) -> None:
    """Wait for ``event`` at most ``timeout`` seconds."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        pass


class Runner:
    """Runs one claimed job and turns how it ended into a `Finish`."""

    def __init__(self, handle: QueueHandle) -> None:
        self.handle = handle

    async def execute(self, pool: QueuePool, rj: RunningJob) -> Finish:
        """Call the handler; never raises except for foreign cancellation."""
        job = rj.job
        app = self.handle.app
        handler: Handler | str | None
        if app.shipped is None:
            handler = app.handlers.get(job.kind)
        else:
            try:
                handler = await app.resolve_handler(job.kind, job.code_version)
            except StorageError as exc:
                handler = f"its code could not be read: {exc}"
            if isinstance(handler, str):
                # Not the job's fault: back to pending, attempt refunded, and this process
                # claims no more of that version (a worker that can run it will).
                return _finish(
                    job,
                    "pending",
                    "released",
                    error=f"cannot run shipped code {job.code_version} here: {handler}",
                    refund=True,
                )
        if handler is None:
            # Claims take only registered kinds: this one was unregistered since. Not the
            # job's fault: back to pending, attempt refunded, for a process that runs it.
            return _finish(
                job,
                "pending",
                "released",
                error=f"no handler for kind {job.kind} here (unregistered while claimed)",
                refund=True,
            )
        rj.handler = handler
        try:
            dependency_results = await self._dependency_results(job)
        except StorageError as exc:
            # Not the job's fault: back to pending, attempt refunded, as for a missing handler.
            return _finish(
                job,
                "pending",
                "released",
                error=f"could not read its dependencies' results: {exc}",
                refund=True,
            )
        ctx = JobCtx(
            job_id=job.id,
            kind=job.kind,
            queue=job.queue,
            attempt=job.attempt,
            process_id=rj.process_id,
            host_id=self.handle.host_id,
            cancel=rj.token,
            app=self.handle.app,
            loop=self.handle.loop,
            dependency_results=dependency_results,
        )
        if not app.capture_logs:
            return await self._attempt(pool, rj, handler, ctx, None)
        output = joblogs.AttemptLog(
            self.handle.logs,
            job.id,
            job.attempt,
            secrets_in(job.payload, handler.redact) if handler.redact else (),
        )
        finish = await self._attempt(pool, rj, handler, ctx, output)
        try:  # what it logged and no flush stored goes with its outcome, in one transaction
            finish.log = self.handle.logs.ended(output)
        except Exception:  # its log must never cost the outcome
            log.exception("job %s: its log could not be taken", job.id)
        return finish

    async def _attempt(
        self,
        pool: QueuePool,
        rj: RunningJob,
        handler: Handler,
        ctx: JobCtx,
        output: joblogs.AttemptLog | None,
    ) -> Finish:
        """Run the handler with its output going to ``output``; how the run ended."""
        job = rj.job
        try:
            log_token = joblogs.CURRENT.set(output)  # its print and logging go to its log
            try:
                if self.handle.app._propagated or tracing.active():
                    async with self._context(job):  # propagated variables, the run span
                        result = await self._call(handler, ctx, rj)
                else:  # the common case: no context manager on the hot path
                    result = await self._call(handler, ctx, rj)
            finally:
                joblogs.CURRENT.reset(log_token)
            if rj.token.is_cancelled():
                return _cancelled(job)
            result_json = "null" if result is None else dump_json(result, what="the result")
            return _finish(job, "done", "done", result_json=result_json)
        except Throttled as exc:
            delay = throttle_delay(pool.config, job.attempt, exc.retry_after)
            return _finish(job, "pending", "throttled", error=str(exc), delay=delay, refund=True)
        except Dead as exc:
            return _finish(job, "dead", "dead", exc=exc)
        except asyncio.CancelledError:
            if rj.token.is_cancelled():
                return _cancelled(job)
            if rj.releasing:
                return _finish(job, "pending", "released", refund=True)
            raise
        except PayloadError as exc:
            return self._failed(pool, job, exc, f"result is not JSON: {exc}", handler.policy)
        except BaseException as exc:  # the worker outlives any handler error
            if rj.token.is_cancelled():
                return _cancelled(job)
            return self._failed(pool, job, exc, policy=handler.policy)

    @contextlib.asynccontextmanager
    async def _context(self, job: ClaimedJob) -> AsyncIterator[None]:
        """Set the job's propagated context variables around its run (`propagation`), and
        open its OpenTelemetry run span under the enqueue's (`tracing`)."""
        values = (await self.handle.storage.job_contexts([job.id])).get(job.id) or {}
        variables = self.handle.app._propagated or {}
        with propagation.applied(variables, values), tracing.run_span(job, values):
            yield

    async def _dependency_results(self, job: ClaimedJob) -> dict[str, Any]:
        """The results of the job's dependencies: one query, and none for jobs without."""
        if not job.dependencies:
            return {}
        return await self.handle.storage.dependency_results(job.id)

    async def _call(self, handler: Handler, ctx: JobCtx, rj: RunningJob) -> Any:
        payload = dict(rj.job.payload)
        work: Awaitable[Any]
        if handler.executor == "process":
            work = self.handle.app._process_executor().run(handler, ctx, payload)
        elif handler.is_async:
            work = handler.call(ctx, payload)
        else:
            rj.in_thread = True
            work = self.handle.loop.run_in_executor(  # in a copy of the task's context
                self.handle.executor, contextvars.copy_context().run, handler.call, ctx, payload
            )
        if handler.timeout is None or handler.executor == "process":
            return await work  # the process pool times its runs itself, from their start
        try:
            async with asyncio.timeout(handler.timeout):
                return await work
        except TimeoutError as exc:
            raise TimeoutError(f"timed out after {handler.timeout} s") from exc

    @staticmethod
    def _failed(
        pool: QueuePool,
        job: ClaimedJob,
        exc: BaseException,
        message: str | None = None,
        policy: KindPolicy | None = None,
    ) -> Finish:
        if job.attempt >= job.max_attempts or not flow.retryable(policy, exc):
            return _finish(job, "dead", "dead", exc=exc, message=message)
        try:  # the kind's own backoff (SPEC §9.3) wins over the queue's curve
            delay = flow.backoff_delay(policy, job.attempt)
        except Exception as bad:  # a broken backoff must not lose the outcome
            log.warning("kind %s: backoff failed (%s); the queue's curve applies", job.kind, bad)
            delay = None
        if delay is None:
            delay = backoff_delay(pool.config, job.attempt)
        return _finish(job, "failed", "failed", exc=exc, message=message, delay=delay)


def _finish(
    job: ClaimedJob,
    status: Any,
    event: str,
    *,
    result_json: str | None = None,
    error: str | None = None,
    exc: BaseException | None = None,
    message: str | None = None,
    delay: float | None = None,
    refund: bool = False,
) -> Finish:
    traceback = None
    if exc is not None:
        # A process job's exception was rendered in its child, where its chain and traceback are.
        chain, traceback = rendered(exc) or (error_chain(exc), format_traceback(exc))
        error = message or chain
    return Finish(
        job_id=job.id,
        attempt=job.attempt,
        status=status,
        event=event,
        result_json=result_json,
        error=error,
        traceback=traceback,
        scheduled_at=None if delay is None else time.time() + delay,
        refund_attempt=refund,
    )


def released(job: ClaimedJob) -> Finish:
    """The outcome of a job given back unfinished (shutdown, a drain's timeout): pending
    again from now, its attempt refunded."""
    return _finish(job, "pending", "released", delay=0, refund=True)


def _cancelled(job: ClaimedJob) -> Finish:
    return _finish(job, "dead", "cancelled", error="cancelled", refund=True)


class Finalizer:
    """Buffers outcomes and writes them in batches (one transaction per batch)."""

    def __init__(self, handle: QueueHandle) -> None:
        self.handle = handle
        self._buffer: list[tuple[Finish, RunningJob | None]] = []
        self._task: asyncio.Task[None] | None = None

    def submit(self, finish: Finish, rj: RunningJob | None = None) -> None:
        """Queue an outcome; a flush starts at once if none is running."""
        self._buffer.append((finish, rj))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_loop(), name="forge-nb finalizer")

    async def _flush_loop(self) -> None:
        failures = 0
        while self._buffer:
            batch, self._buffer = self._buffer, []
            try:
                finished = await self.handle.storage.finish(
                    self.handle.host_id, [f for f, _ in batch], time.time()
                )
            except StorageError as exc:
                failures += 1
                self.handle.health.failed(f"recording {len(batch)} outcomes", exc)
                self._buffer = batch + self._buffer
                await asyncio.sleep(min(ERROR_RETRY_S * failures, 10.0))
                continue
            failures = 0
            self.handle.health.ok()
            self.handle.outcomes_recorded(batch, set(finished))

    async def drain(self) -> None:
        """Wait until every submitted outcome is written."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)


def reaped_summary(reaped: list[ReapedJob]) -> str:
    """One log line's worth of reaped jobs."""
    ids = ", ".join(j.id for j in reaped[:10])
    more = f" (+{len(reaped) - 10} more)" if len(reaped) > 10 else ""
    return f"{len(reaped)} job(s) of dead workers returned: {ids}{more}"
