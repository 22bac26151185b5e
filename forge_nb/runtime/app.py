"""`App`: the one object users hold — jobs, enqueueing, workers and admin."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forge_nb.config import ENV_QUEUES, parse_url, resolve_url
from forge_nb.errors import UnknownQueue
from forge_nb.runtime import rerun, tracing
from forge_nb.runtime.app_bulk import Bulk
from forge_nb.runtime.app_context import Propagation
from forge_nb.runtime.app_reading import Reading
from forge_nb.runtime.app_redact import Redacting
from forge_nb.runtime.app_scheduling import Scheduling
from forge_nb.runtime.app_shipping import CodeShipping
from forge_nb.runtime.app_testing import Testing
from forge_nb.runtime.app_workflows import Workflows
from forge_nb.runtime.flow import kind_policy, set_flow_fields
from forge_nb.runtime.handlers import (
    Handler,
    HandlerRegistry,
    JobFunction,
    handler_for_function,
)
from forge_nb.runtime.ids import new_ulid
from forge_nb.runtime.metrics import MetricsRecorder
from forge_nb.runtime.probe import DbProbe, instrument
from forge_nb.runtime.queue_handle import QueueHandle
from forge_nb.runtime.redaction import check_redact
from forge_nb.runtime.refs import EnqueueRequest, JobRef, JobRefList, dependency_ids
from forge_nb.runtime.routing import DefaultRouter, Router
from forge_nb.runtime.shipped_code import ShippedCatalogue
from forge_nb.storage import create_storage
from forge_nb.storage.base import Storage
from forge_nb.storage.records import (
    DEFAULT_MAX_ATTEMPTS,
    JobRecord,
    NewJob,
    ProcessRecord,
    QueueConfig,
    ShippedCode,
    Status,
    StrandedKind,
)

log = logging.getLogger("forge_nb.app")
if TYPE_CHECKING:
    from forge_nb.runtime.process_pool import ProcessPool


class App(CodeShipping, Scheduling, Reading, Workflows, Testing, Bulk, Redacting, Propagation):
    """A forge-nb application (pinned): handlers, a database, and optionally workers.

    ``App()`` uses `FORGE_NB_DATABASE_URL` or the embedded SQLite file
    ``<data dir>/forge_nb.db``. Nothing connects until the first awaited call.

    ``replace``: whether this App takes over from this process's previous App on the
    same database (see `forge_nb.runtime.rerun`): the previous one stops claiming at once
    and closes gracefully in the background. The default (None) does so for Apps made in
    ``__main__``, i.e. a notebook cell or a script, so a re-run ``app = fnb.App()`` cell
    leaves one App running; pass False to keep two Apps on one database side by side.

    ``ship_code=True`` publishes each handler's code to the database, signed with
    ``FORGE_NB_CODE_KEY``, so ``forge-nb worker --shipped-code`` processes elsewhere run
    it; ``shipped_code=True`` makes this App such a worker (see `shipped_code`).

    ``inline=True`` (for tests) runs each job inside its ``enqueue`` call, delays ignored:
    the ref comes back finished (see `drain` for the other test helper).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        queues: Sequence[str] | None = None,
        router: Router | None = None,
        heartbeat_interval: float = 10.0,
        stale_after: float | None = None,
        lease_ttl: float = 15.0,
        poll_interval: float = 1.0,
        tick_interval: float = 1.0,
        max_concurrency: int | None = None,
        thread_pool_size: int = 32,
        replace: bool | None = None,
        process_workers: int | None = None,
        process_max_tasks_per_child: int | None = None,
        ship_code: bool = False,
        shipped_code: bool = False,
        inline: bool = False,
    ) -> None:
        self.url = resolve_url(url)
        self.inline = bool(inline)
        self.safe_url = parse_url(self.url).safe  # malformed URLs fail here, clearly
        if queues is None and os.environ.get(ENV_QUEUES):
            queues = [q.strip() for q in os.environ[ENV_QUEUES].split(",") if q.strip()]
        self.queue_names: frozenset[str] | None = None if queues is None else frozenset(queues)
        self.router: Router = router or DefaultRouter()
        for name, value in (
            ("heartbeat_interval", heartbeat_interval),
            ("poll_interval", poll_interval),
            ("tick_interval", tick_interval),
            ("lease_ttl", lease_ttl),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
        self.heartbeat_interval = float(heartbeat_interval)
        self.stale_after = float(stale_after or 3 * heartbeat_interval)
        self.lease_ttl = float(lease_ttl)
        self.poll_interval = float(poll_interval)
        self.tick_interval = min(float(tick_interval), self.heartbeat_interval)
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1 or None, got {max_concurrency!r}")
        self.max_concurrency = max_concurrency
        self.thread_pool_size = thread_pool_size
        for name, count in (
            ("process_workers", process_workers),
            ("process_max_tasks_per_child", process_max_tasks_per_child),
        ):
            if count is not None and (
                isinstance(count, bool) or not isinstance(count, int) or count < 1
            ):
                raise ValueError(f"{name} must be an int >= 1 or None, got {count!r}")
        #: Size of the pool for ``executor="process"`` jobs (None: os.cpu_count()).
        self.process_workers = process_workers
        #: Replace a child after this many jobs (None: never), e.g. for code that leaks.
        self.process_max_tasks_per_child = process_max_tasks_per_child
        self._process_pool: ProcessPool | None = None
        self.host_id = new_ulid()
        self.handlers = HandlerRegistry()
        self.metrics_recorder = MetricsRecorder(self.host_id)
        self.db_probe = DbProbe()
        self._storage: Storage | None = None
        self._open_lock: asyncio.Lock | None = None
        self._handle: QueueHandle | None = None
        self._progress: dict[str, tuple[float, str]] = {}
        self._waiters: weakref.WeakValueDictionary[str, asyncio.Event] = (
            weakref.WeakValueDictionary()
        )
        self._register_builtins()
        self.handlers.on_add.append(self._note_redaction)
        #: Publish each handler's code to the database, signed (see `shipped_code`).
        self.ship_code = bool(ship_code)
        #: Claim and run the kinds shipped to the database (``forge-nb worker --shipped-code``).
        self.run_shipped_code = False
        #: kind -> version of the code this App shipped for it (what its jobs record).
        self._shipped_versions: dict[str, str] = {}
        self._unpublished: dict[str, ShippedCode] = {}
        self._code_keys: list[bytes] | None = None
        #: Shipped versions this process loads (an old version of a kind re-decorated since,
        #: or any kind with ``run_shipped_code``).
        self.shipped: ShippedCatalogue | None = None
        if ship_code:
            self._use_shipped_code("App(ship_code=True)")
            self.handlers.on_add.append(self._ship)
        if shipped_code:
            self._use_shipped_code("App(shipped_code=True)")
            self.run_shipped_code = True
        #: The loop the database connections (and workers) live on, once opened.
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The App that replaced this one (a re-run cell), and this one's closing task.
        self._successor: App | None = None
        self._closing: asyncio.Task[None] | None = None
        #: The replaced App's closing, which `start` waits for.
        self._predecessor_closing: rerun.Closing | None = None
        if replace if replace is not None else rerun.called_from_main(1):
            self._predecessor_closing = rerun.take_over(self)

    def __repr__(self) -> str:
        kinds = self.user_kinds()
        shown = ", ".join(kinds[:5]) + (f", +{len(kinds) - 5}" if len(kinds) > 5 else "")
        handlers = f"{len(kinds)} handler{'' if len(kinds) == 1 else 's'}"
        return f"<forge_nb.App on {self.safe_url} · {self._state()} · {handlers}" + (
            f": {shown}>" if kinds else ">"
        )

    def _state(self) -> str:
        if self._successor is not None:
            return "replaced by a newer App" + ("" if self.closed else ", closing")
        handle = self._handle
        if handle is not None and handle.running:
            return f"running, queues: {', '.join(handle.queues) or 'none yet'}"
        if handle is not None:
            return "stopped"
        return "not started" if self.closed else "connected, not started"

    def user_kinds(self) -> list[str]:
        """The kinds registered in this App, without forge-nb's built-in ones."""
        return [k for k in self.handlers.kinds() if not k.startswith("forge_nb.")]

    def configure(
        self,
        *,
        url: str | None = None,
        queues: Sequence[str] | None = None,
        heartbeat_interval: float | None = None,
        stale_after: float | None = None,
        poll_interval: float | None = None,
        lease_ttl: float | None = None,
        shipped_code: bool | None = None,
    ) -> None:
        """Override settings before the app connects (used by ``forge-nb worker`` flags)."""
        if self._storage is not None or self._handle is not None:
            raise RuntimeError("configure() must be called before the app connects or starts")
        if shipped_code:
            self._use_shipped_code("forge-nb worker --shipped-code")
            self.run_shipped_code = True
        if url is not None:
            self.url = resolve_url(url)
            self.safe_url = parse_url(self.url).safe
        if queues is not None:
            self.queue_names = frozenset(queues)
        if heartbeat_interval is not None:
            if not heartbeat_interval > 0:
                raise ValueError(f"heartbeat_interval must be > 0, got {heartbeat_interval!r}")
            self.heartbeat_interval = float(heartbeat_interval)
            self.tick_interval = min(self.tick_interval, self.heartbeat_interval)
            if stale_after is None:
                self.stale_after = 3 * self.heartbeat_interval
        if stale_after is not None:
            if not stale_after > 0:
                raise ValueError(f"stale_after must be > 0, got {stale_after!r}")
            self.stale_after = float(stale_after)
        if poll_interval is not None:
            if not poll_interval > 0:
                raise ValueError(f"poll_interval must be > 0, got {poll_interval!r}")
            self.poll_interval = float(poll_interval)
        if lease_ttl is not None:
            if not lease_ttl > 0:
                raise ValueError(f"lease_ttl must be > 0, got {lease_ttl!r}")
            self.lease_ttl = float(lease_ttl)

    # -- lifecycle -------------------------------------------------------------------
    async def storage(self) -> Storage:
        """The open storage (opened and migrated on first use).

        A replaced App, once closed, lends its successor's: refs and job functions
        made before a re-run cell keep working without opening connections again.
        """
        if self._storage is None:
            if self._successor is not None and self._handle is None:
                return await self._newest().storage()
            if self._open_lock is None:
                self._open_lock = asyncio.Lock()
            async with self._open_lock:
                if self._storage is None:
                    storage = create_storage(self.url)
                    await storage.open()
                    self._storage = instrument(storage, self.db_probe)
                    self._loop = asyncio.get_running_loop()
        return self._storage

    async def start(self) -> QueueHandle:
        """Start workers on the running loop and return at once (idempotent).

        An App that replaced another (a re-run cell) first waits until the other has
        finished or given back its running jobs, so one App's workers run at a time.
        """
        if self._handle is not None and self._handle.running:
            return self._handle
        if self._successor is not None:
            raise RuntimeError(
                f"this App was replaced by a newer App on {self.safe_url} "
                "(the cell that made it ran again): start the new one"
            )
        if self._predecessor_closing is not None:
            await rerun.wait_for(self._predecessor_closing)
            self._predecessor_closing = None
        handle = QueueHandle(self, await self.storage())
        await self.publish_code()
        await self._publish_redactions()
        self._handle = handle
        await handle.start()
        return handle

    @property
    def closed(self) -> bool:
        """True when no database connection is open (never opened, or closed)."""
        return self._storage is None

    @property
    def handle(self) -> QueueHandle | None:
        """The running `QueueHandle`, if `start` was called."""
        return self._handle

    async def close(self, timeout: float = 10.0) -> None:
        """Stop workers (graceful for ``timeout`` s) and release connections and threads."""
        closing = self._closing
        if closing is not None and closing is not asyncio.current_task():
            await asyncio.shield(closing)  # replaced: its background close does the work
            return
        if self._handle is not None:
            await self._handle.shutdown(timeout)
            self._handle = None
        await self._close_process_pool()
        if self._storage is not None:
            await self._storage.close()
            self._storage = None

    # -- replacement by a newer App (a re-run cell; see forge_nb.runtime.rerun) -----------------
    def _retire(self, successor: App) -> rerun.Closing | None:
        """Replaced by ``successor``: stop claiming now, close gracefully in the background.

        Sync, because the new App's constructor is: returns the closing to wait for.
        """
        self._successor = successor
        handle = self._handle
        if handle is not None and handle.running:
            handle.halt_claims()
        loop = self._loop
        if self._storage is None and handle is None:
            return None  # never connected: nothing to close
        if loop is None or loop.is_closed() or not loop.is_running():
            return None  # its loop is gone, and its connections with it
        coro = self._close_replaced()
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            self._closing = loop.create_task(coro, name="forge-nb close replaced App")
            return self._closing
        return asyncio.run_coroutine_threadsafe(coro, loop)

    async def _close_replaced(self) -> None:
        """The background half of `_retire`: graceful close, then one line saying so."""
        handle = self._handle
        running = len(handle.running_jobs()) if handle is not None and handle.running else 0
        try:
            await self.close(timeout=rerun.REPLACE_GRACE_S)
        except Exception as exc:  # nobody may await this task: say what went wrong
            log.warning("forge-nb: could not close the previous App on %s: %s", self.safe_url, exc)
            return
        if handle is not None:
            line = rerun.notice(self.safe_url, running, handle.released)
            log.info(line)
            print(line, flush=True)  # in a notebook: under the cell that made the new App

    def _newest(self) -> App:
        """This App, or the App that replaced it (and so on)."""
        app = self
        while app._successor is not None:
            app = app._successor
        return app

    async def __aenter__(self) -> App:
        await self.storage()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def data_path(self) -> Path | None:
        """Where the data lives on this machine (the SQLite file's folder), if local."""
        path = parse_url(self.url).path
        return None if path is None else path.resolve().parent

    def _process_executor(self) -> ProcessPool:
        """The pool for ``executor="process"`` jobs, made on first use (children start then)."""
        if self._process_pool is None:
            from forge_nb.runtime.process_pool import ProcessPool

            self._process_pool = ProcessPool(
                self.process_workers or os.cpu_count() or 1,
                max_tasks_per_child=self.process_max_tasks_per_child,
                on_progress=self._record_progress,
            )
        return self._process_pool

    async def _close_process_pool(self) -> None:
        """Stop the process pool's children (they exit; nothing is left behind)."""
        pool, self._process_pool = self._process_pool, None
        if pool is not None:
            await pool.close()

    def works_queue(self, queue: str) -> bool:
        """Whether this process's workers take jobs from ``queue``."""
        return self.queue_names is None or queue in self.queue_names

    # -- handlers --------------------------------------------------------------------------
    def job(
        self,
        fn: Callable[..., Any] | str | None = None,
        /,
        *,
        kind: str | None = None,
        queue: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        concurrency: int | None = None,
        timeout: float | None = None,
        priority: int = 0,
        executor: str | None = None,
        concurrency_key: str | Callable[..., Any] | None = None,
        key_limit: int | None = None,
        retry_on: Any = None,
        backoff: Callable[[int], float] | None = None,
        redact: Sequence[str] | None = None,
    ) -> Any:
        """Register a function as a job kind (``@app.job`` or ``@app.job(queue=…)``).

        Async functions run on the loop; plain functions run in a thread so the
        loop (and the notebook) never stalls. ``executor="process"`` runs it in a
        child process instead (all cores; a crash fails only that attempt).
        Registering a kind again replaces it.

        ``await app.job("42")`` (a job id instead of a function) returns that job's
        `JobRecord`, or None: both spellings are pinned by the spec.
        """
        if isinstance(fn, str | int) and not isinstance(fn, bool):
            return self._get_job(str(fn))

        def register(func: Callable[..., Any]) -> JobFunction:
            handler = handler_for_function(
                func,
                kind=kind,
                queue=queue,
                max_attempts=max_attempts,
                concurrency=concurrency,
                timeout=timeout,
                priority=priority,
                executor=executor,
                policy=kind_policy(concurrency_key, key_limit, retry_on, backoff),
            )
            if redact:  # masked in every view (`forge_nb.runtime.redaction`), still stored
                handler = dataclasses.replace(handler, redact=check_redact(redact))
            self.handlers.add(handler)
            return JobFunction(self, func, handler, {})

        return register(fn) if callable(fn) else register

    def _register_builtins(self) -> None:
        async def echo(**payload: Any) -> dict[str, Any]:
            """Return the payload: for smoke tests and demos."""
            return payload

        self.handlers.add(
            Handler(kind="forge_nb.echo", call=lambda ctx, p: echo(**p), is_async=True)
        )

    # -- enqueue ---------------------------------------------------------------------------
    async def enqueue(self, request: EnqueueRequest) -> JobRef:
        """Enqueue one job; returns its `JobRef` (the live holder's for a unique-key duplicate)."""
        return (await self.enqueue_many([request]))[0]

    async def enqueue_many(self, requests: Iterable[EnqueueRequest]) -> list[JobRef]:
        """Enqueue many jobs in one transaction: all stored, or none on bad input."""
        with tracing.enqueue_span():  # OpenTelemetry, when installed and set up
            return await self._enqueue_many(requests)

    async def _enqueue_many(self, requests: Iterable[EnqueueRequest]) -> list[JobRef]:
        now = time.time()
        context = self._captured_context()  # the same for every job of the call
        new_jobs = [self._new_job(r, now, context) for r in requests]
        if not new_jobs:
            return []
        storage = await self.storage()
        if self._unpublished:
            await self.publish_code()
        if self._unpublished_redactions:
            await self._publish_redactions()
        results = await storage.enqueue(new_jobs, now)  # also counts them in metrics
        for queue in {job.queue for job in new_jobs}:
            self._notify(queue)
        if self.inline:
            await self._run_inline(new_jobs)
        return JobRefList(
            JobRef(self, r.id, job.kind, r.outcome)
            for job, r in zip(new_jobs, results, strict=True)
        )

    def _new_job(
        self, request: EnqueueRequest, now: float, context: dict[str, Any] | None
    ) -> NewJob:
        if not isinstance(request, EnqueueRequest):
            raise TypeError(f"expected an EnqueueRequest, got {type(request).__name__}")
        handler = self.handlers.get(request.kind)
        payload = request.payload if request.payload is not None else {}
        if handler is not None and handler.check_payload is not None:
            handler.check_payload(payload)
        queue = request.queue or (handler.queue if handler else None)
        queue = queue or self.router.route(request.kind)
        delay = request.delay
        if delay is not None and isinstance(delay, timedelta):
            delay = delay.total_seconds()
        scheduled_at = request.scheduled_at
        if scheduled_at is not None and isinstance(scheduled_at, datetime):
            if scheduled_at.tzinfo is None:
                raise ValueError("scheduled_at must be timezone-aware (e.g. datetime.now(UTC))")
            scheduled_at = scheduled_at.timestamp()
        max_attempts = request.max_attempts
        if max_attempts is None:
            max_attempts = handler.max_attempts if handler else DEFAULT_MAX_ATTEMPTS
        priority = request.priority
        if priority is None:
            priority = handler.priority if handler else 0
        if self.inline:
            delay = scheduled_at = None  # inline: every job runs in its enqueue call
        # By position, in NewJob's field order: keywords cost more than the rest of this
        # method (a bulk enqueue makes one per job). The rarer fields are set only when used,
        # and their helpers called only then.
        depends_on = request.depends_on
        job = NewJob(
            request.kind,
            queue,
            payload,
            priority,
            0.0 if delay is None else delay,
            scheduled_at,
            max_attempts,
            request.unique_key,
            self._shipped_versions.get(request.kind),
            () if type(depends_on) is tuple and not depends_on else dependency_ids(depends_on),
        )
        if (
            handler is not None
            or request.expires_in is not None
            or request.unique_for is not None
            or request.on_conflict != "ignore"
        ):
            set_flow_fields(job, request, handler, payload)
        if request.tags != ():  # anything else, even empty or wrong, goes on to be checked
            job.tags = request.tags
        if context is not None:
            job.context = context
        return job

    # -- in-process plumbing used by refs, ctx and the runtime ------------------------------
    def _completion_waiter(self, job_id: str) -> asyncio.Event:
        waiters = self._newest()._waiters  # jobs finish in the newest App's workers
        event = waiters.get(job_id)
        if event is None:
            event = asyncio.Event()
            waiters[job_id] = event
        return event

    def _job_finished(self, job_id: str) -> None:
        event = self._waiters.get(job_id)
        if event is not None:
            event.set()

    def _record_progress(self, job_id: str, fraction: float, message: str) -> None:
        self._progress[job_id] = (fraction, message)

    def _take_progress(self) -> list[tuple[str, float, str]]:
        taken, self._progress = self._progress, {}
        return [(job_id, f, m) for job_id, (f, m) in taken.items()]

    # -- inspection --------------------------------------------------------------------------
    async def _get_job(self, job_id: str) -> JobRecord | None:
        """One job by id, or None."""
        job = await (await self.storage()).get_job(str(job_id))
        return None if job is None else (await self._redacted([job]))[0]

    async def counts(self) -> dict[str, dict[Status, int]]:
        """``{queue: {status: n}}`` with every status present."""
        return await (await self.storage()).counts()

    async def queues(self) -> list[QueueConfig]:
        """Every queue's config."""
        return await (await self.storage()).queues()

    async def processes(self) -> list[ProcessRecord]:
        """One record per worker slot of every live process."""
        return await (await self.storage()).processes()

    async def stranded_kinds(self) -> list[StrandedKind]:
        """Kinds with jobs waiting in a queue where no live worker runs them.

        Processes claim only the kinds they have handlers for, so such jobs wait, attempts
        unspent, until one that runs the kind starts. Live: heartbeated within
        ``stale_after``. Each count stops at 1,000 (``capped``); at most 50 kinds.
        """
        return await (await self.storage()).stranded_kinds(time.time() - self.stale_after)

    # -- admin ----------------------------------------------------------------------------
    async def ensure_queue(self, name: str, **knobs: Any) -> QueueConfig:
        """Create the queue if missing and apply settings (idempotent)."""
        config = await (await self.storage()).ensure_queue(name, **knobs)
        if self._handle is not None and self._handle.running:
            self._handle.notify(name)
        return config

    async def set_queue_config(self, name: str, **knobs: Any) -> QueueConfig:
        """Change a queue's settings; workers follow on their next tick."""
        return await (await self.storage()).update_queue(name, **knobs)

    async def pause_queue(self, name: str) -> QueueConfig:
        """Stop claiming from ``name`` (running jobs finish)."""
        return await self.set_queue_config(name, paused=True)

    async def resume_queue(self, name: str) -> QueueConfig:
        """Claim from ``name`` again."""
        return await self.set_queue_config(name, paused=False)

    async def retry(self, job_id: str) -> JobRecord:
        """Dead or failed job → pending now, attempts reset. ValueError for other states."""
        storage = await self.storage()
        before = await storage.retry(str(job_id), time.time())
        if before is None:
            raise LookupError(f"unknown job id {job_id!r}")
        if before not in ("dead", "failed"):
            raise ValueError(f"job {job_id} is {before}; only dead or failed jobs can be retried")
        job = await storage.get_job(str(job_id))
        assert job is not None
        self._notify(job.queue)
        return (await self._redacted([job]))[0]

    async def delete(self, job_id: str) -> bool:
        """Delete a job that is not running; False if unknown, ValueError if running."""
        status = await (await self.storage()).delete(str(job_id))
        if status == "running":
            raise ValueError(f"job {job_id} is running; cancel it first")
        return status is not None

    async def cancel(self, job_id: str) -> Status | None:
        """Cancel a job: pending/failed end ``dead`` now; a running one is stopped wherever
        it runs (here at once, elsewhere within a heartbeat). Returns the status after."""
        status = await (await self.storage()).request_cancel(str(job_id), time.time())
        newest = self._newest()
        if status == "running":
            for app in {self, newest}:
                if app._handle is not None:
                    app._handle.cancel_local(str(job_id))
        if status == "dead":
            newest._job_finished(str(job_id))
        return status

    async def _check_queue(self, name: str) -> None:
        if name not in {q.name for q in await self.queues()}:
            raise UnknownQueue(f"unknown queue {name!r}")

    def _notify(self, queue: str) -> None:
        handle = self._newest()._handle
        if handle is not None and handle.running:
            handle.notify(queue)
