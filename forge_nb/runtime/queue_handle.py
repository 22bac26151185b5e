"""The running side of an `App`: its queue pools, the loops beside them, and shutdown.

The loops live in their own modules: `liveness` (heartbeat, reaper), `config_tick`
(live settings, kinds, flushing metrics), `lag_watch` (the loop watchdog) and the
`leader` (cron and the other maintenance tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from forge_nb.errors import StorageError
from forge_nb.runtime import config_tick, global_slots, joblogs, lag_watch, liveness
from forge_nb.runtime.flow import keyed
from forge_nb.runtime.leader import Leader
from forge_nb.runtime.liveness import DatabaseHealth
from forge_nb.runtime.metrics import MetricsRecorder
from forge_nb.runtime.probe import ResourceSampler
from forge_nb.runtime.version import VERSION
from forge_nb.runtime.worker import Finalizer, QueuePool, Runner, RunningJob, released
from forge_nb.storage.records import Finish, ProcessRecord, QueueConfig

if TYPE_CHECKING:
    from forge_nb.runtime.app import App
    from forge_nb.runtime.handlers import Handler
    from forge_nb.storage.base import Storage

log = logging.getLogger("forge_nb.runtime")


class QueueHandle:
    """What `App.start` returns (pinned): the workers of this process.

    Call ``await handle.shutdown(timeout)`` to stop gracefully: claiming stops,
    running jobs get ``timeout`` seconds, then are cancelled and returned to
    ``pending`` without spending an attempt.
    """

    def __init__(self, app: App, storage: Storage) -> None:
        self.app = app
        self.storage = storage
        self.host_id = app.host_id
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.started_at = time.time()
        self.poll_interval = app.poll_interval
        self.loop = asyncio.get_running_loop()
        self.pools: dict[str, QueuePool] = {}
        self.runner = Runner(self)
        self.finalizer = Finalizer(self)
        #: What running jobs logged, stored every `joblogs.FLUSH_S` (an ended run's lines go
        #: with its outcome).
        self.logs = joblogs.LogSink(storage)
        self.metrics: MetricsRecorder = app.metrics_recorder
        self.executor = ThreadPoolExecutor(
            max_workers=app.thread_pool_size, thread_name_prefix="forge-nb-job"
        )
        self.leader = Leader(self)
        self.health = DatabaseHealth(storage.safe_url)
        self.resources = ResourceSampler(app.data_path)
        self._kind_running: Counter[str] = Counter()
        self._kinds: tuple[tuple[int, int] | int, frozenset[str]] = (-1, frozenset())
        self._excluded: tuple[tuple[int, int] | int, frozenset[str]] = (-1, frozenset())
        #: The kinds the process rows list (None: not published yet).
        self.published_kinds: frozenset[str] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()
        self._stopping = False
        #: Claims stopped from sync code (`halt_claims`); `shutdown` follows.
        self._halted = False
        #: Running jobs the last shutdown gave back to pending (attempt refunded).
        self.released = 0

    def __repr__(self) -> str:
        state = (
            "running"
            if self.running and not self._halted
            else ("stopping" if self.running else "stopped")
        )
        pools = ", ".join(
            f"{name} ({pool.config.workers} workers{', paused' if pool.config.paused else ''})"
            for name, pool in sorted(self.pools.items())
        )
        busy = sum(len(p.running) for p in self.pools.values())
        kinds = len(self.app.user_kinds())
        return (
            f"<forge_nb.QueueHandle {state} on {self.storage.safe_url} · host {self.host_id} · "
            f"queues: {pools or 'none yet'} · {busy} job{'' if busy == 1 else 's'} running · "
            f"{kinds} handler{'' if kinds == 1 else 's'}>"
        )

    # -- info ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True until `shutdown` completes."""
        return not self._stopped.is_set()

    @property
    def queues(self) -> list[str]:
        """Queues this process works."""
        return sorted(self.pools)

    def running_jobs(self) -> list[RunningJob]:
        """Jobs running in this process now."""
        return [rj for pool in self.pools.values() for rj in pool.running.values()]

    def running_of_kind(self, kind: str) -> int:
        """How many runs of ``kind`` are in flight here."""
        return self._kind_running[kind]

    def limited_handlers(self) -> list[Handler]:
        """Handlers with a per-process ``concurrency``: this process's own, and the newest
        shipped version of each kind it runs only as shipped code."""
        own = [h for h in self.app.handlers if h.concurrency is not None]
        shipped = self.app.shipped if self.app.run_shipped_code else None
        if shipped is None:
            return own
        mine = self.app.own_kinds()
        return own + [
            h for h in shipped.newest_handlers() if h.concurrency is not None and h.kind not in mine
        ]

    def runnable_kinds(self) -> frozenset[str]:
        """The kinds this process can run, hence claims: its registered handlers, plus the
        kinds shipped to the database when it runs shipped code.

        Read on every claim (cached while neither changes), so a kind registered or
        dropped at runtime counts from the next claim on.
        """
        registry = self.app.handlers
        shipped = self.app.shipped if self.app.run_shipped_code else None
        stamp = (registry.version, -1 if shipped is None else shipped.generation)
        version, kinds = self._kinds
        if version != stamp:
            kinds = frozenset(registry.kinds())
            if shipped is not None:
                kinds |= shipped.kinds()
            self._kinds = (stamp, kinds)
        return kinds

    def excluded_versions(self) -> frozenset[str]:
        """Shipped code versions this process cannot run: its claims leave their jobs."""
        shipped = self.app.shipped
        if shipped is None:
            return frozenset()
        registry = self.app.handlers
        stamp = (registry.version, shipped.generation)
        if self._excluded[0] != stamp:
            self._excluded = (stamp, shipped.refused(except_kinds=self.app.own_kinds()))
        return self._excluded[1]

    async def refresh_shipped_code(self, force: bool = False) -> None:
        """Re-read the shipped code catalogue; wake the pools when the kinds changed."""
        shipped = self.app.shipped
        if shipped is None or not self.app.run_shipped_code:
            return
        if await shipped.refresh(self.storage, force=force):
            for pool in self.pools.values():
                pool.wake()

    def global_room(self) -> int:
        """Free room under the process-wide cap (large when there is none)."""
        cap = self.app.max_concurrency
        if cap is None:
            return 1_000_000
        return cap - sum(len(p.running) for p in self.pools.values())

    def process_record(self, process_id: str, queue: str) -> ProcessRecord:
        """A fresh registry row for one slot."""
        now = datetime.now(UTC)
        return ProcessRecord(
            id=process_id,
            host_id=self.host_id,
            hostname=self.hostname,
            pid=self.pid,
            queue=queue,
            current_job=None,
            last_heartbeat=now,
            started_at=datetime.fromtimestamp(self.started_at, UTC),
            version=VERSION,
            kinds=tuple(sorted(self.runnable_kinds())),
            stale_after=self.app.stale_after,
        )

    # -- start ---------------------------------------------------------------------
    async def start(self) -> None:
        """Reclaim our host's leftovers, start pools and the background loops."""
        await liveness.reclaim_dead_neighbours(self)
        await self.refresh_shipped_code(force=True)  # before the first claim: its kinds
        self.app.handlers.on_change.append(self._handlers_changed)
        self.published_kinds = self.runnable_kinds()  # what the slot rows will list
        await self.storage.watch(self.on_db_change)
        for config in await self.storage.queues():
            if self.app.works_queue(config.name):
                await self.add_pool(config)
        self._spawn(self._every(self.app.tick_interval, config_tick.tick, "tick"), "tick")
        self._spawn(
            self._every(self.app.heartbeat_interval, liveness.heartbeat, "heartbeat"), "heartbeat"
        )
        joblogs.install()
        self._spawn(self._flush_logs_every(joblogs.FLUSH_S), "job logs")
        self._spawn(self._lead(), "leader")
        self._spawn(lag_watch.watch_loop_lag(self), "loop watchdog")
        log.info(
            "worker %s started on %s (queues: %s; kinds: %s)",
            self.host_id,
            self.storage.safe_url,
            ", ".join(self.queues) or "none yet",
            ", ".join(sorted(self.runnable_kinds())) or "none",
        )

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=f"forge-nb {name}")
        self._tasks.append(task)

    async def add_pool(self, config: QueueConfig) -> QueuePool:
        pool = self.pools.get(config.name)
        if pool is None:
            pool = self.pools[config.name] = QueuePool(self, config)
            if self._halted:
                pool.halt()
            await pool.start()
        return pool

    def halt_claims(self) -> None:
        """Stop claiming at once, from sync code (an App replaced by a re-run cell).

        Running jobs, heartbeats and the rest go on until `shutdown`.
        """
        self._halted = True
        for pool in self.pools.values():
            pool.halt()

    # -- notifications from the app and the pools --------------------------------------
    def notify(self, queue: str) -> None:
        """A job was enqueued here: wake that queue's pool (creating it if new to us)."""
        pool = self.pools.get(queue)
        if pool is not None:
            pool.wake()
        elif self.app.works_queue(queue) and not self._stopping:
            self._spawn(self._adopt_queue(queue), f"adopt {queue}")

    def _handlers_changed(self) -> None:
        """A kind was registered or dropped: claim with the new set now (the tick
        publishes it to the process rows)."""
        with contextlib.suppress(RuntimeError):  # a loop closed without shutdown: nothing to wake
            self.loop.call_soon_threadsafe(self._wake_pools)

    def _wake_pools(self) -> None:
        for pool in self.pools.values():
            pool.wake()

    def on_db_change(self, queue: str | None) -> None:
        """Another process enqueued (into ``queue``, or somewhere when None): claim now."""
        if self._stopping:
            return
        if queue is None:
            for pool in self.pools.values():
                pool.wake()
        else:
            self.notify(queue)

    async def _adopt_queue(self, queue: str) -> None:
        if queue not in self.pools:
            await self.add_pool(QueueConfig(queue))

    def job_started(self, rj: RunningJob) -> None:
        """Bookkeeping when a pool starts a job."""
        self._kind_running[rj.job.kind] += 1

    def job_ended(self, rj: RunningJob) -> None:
        """Bookkeeping when a job's task ends; other pools may now have room."""
        self._kind_running[rj.job.kind] -= 1
        if self.app.max_concurrency is not None or (rj.handler and rj.handler.concurrency):
            for pool in self.pools.values():
                pool.wake()

    def outcomes_recorded(
        self, batch: list[tuple[Finish, RunningJob | None]], finished: set[str]
    ) -> None:
        """After a finalize commit: metrics and in-process waiters."""
        now = time.time()
        for finish, rj in batch:
            if rj is not None and rj.unsettled:
                global_slots.settled(self.pools.get(rj.job.queue), rj)
            if finish.job_id not in finished or rj is None:
                continue
            self.metrics.record_outcome(
                rj.job.queue, finish.event, now, now - rj.started, now - rj.job.created_at
            )
            if self.app.prometheus is not None:  # forge-nb worker --metrics-port
                self.app.prometheus.observe(
                    rj.job.queue, rj.job.kind, finish.event, now - rj.started
                )
            if finish.status in ("done", "dead"):
                self.app._job_finished(finish.job_id)
            if keyed(rj.handler) and (pool := self.pools.get(rj.job.queue)) is not None:
                pool.wake()  # its key's slot is free only now, committed: claim again

    def cancel_local(self, job_id: str) -> bool:
        """Fire a running job's cancel token (and cancel its task) if it runs here."""
        for pool in self.pools.values():
            rj = pool.running.get(job_id)
            if rj is not None:
                rj.token.set()
                if rj.task is not None and not rj.in_thread:
                    rj.task.cancel()
                return True
        return False

    # -- background loops ----------------------------------------------------------------
    async def _every(
        self,
        interval: float,
        fn: Callable[[QueueHandle], Coroutine[Any, Any, None]],
        what: str,
    ) -> None:
        """Run ``fn(self)`` every ``interval`` s until shutdown, riding out outages."""
        while not self._stopping:
            try:
                await fn(self)
                self.health.ok()
            except StorageError as exc:
                self.health.failed(what, exc)
            except Exception:
                log.exception("%s crashed, will retry", what)
            await asyncio.sleep(interval)

    async def _flush_logs_every(self, interval: float) -> None:
        """Store what running jobs logged, every ``interval`` s; only a write that happened
        counts as the database answering (a quiet flush proves nothing about an outage)."""
        while not self._stopping:
            await asyncio.sleep(interval)
            if not self.logs.pending:
                continue
            try:
                await self.logs.flush()
                self.health.ok()
            except StorageError as exc:
                self.health.failed("storing job logs", exc)
            except Exception:
                log.exception("storing job logs crashed, will retry")

    async def _lead(self) -> None:
        while not self._stopping:
            try:
                delay = await self.leader.step()
            except StorageError as exc:
                self.health.failed("leader step", exc)
                delay = 1.0
            except Exception:
                log.exception("leader step crashed, will retry")
                delay = 1.0
            await asyncio.sleep(delay)

    async def flush(self) -> None:
        """Write progress and metrics gathered in memory."""
        await config_tick.flush(self)

    @property
    def stopping(self) -> bool:
        """True once `shutdown` began."""
        return self._stopping

    # -- shutdown ------------------------------------------------------------------------
    async def shutdown(self, timeout: float = 30.0) -> None:
        """Stop claiming, let running jobs finish for ``timeout`` s, then give them back."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        with contextlib.suppress(ValueError):
            self.app.handlers.on_change.remove(self._handlers_changed)
        with contextlib.suppress(StorageError):
            await self.storage.watch(None)
        await asyncio.gather(*(p.stop_claiming() for p in self.pools.values()))
        running = self.running_jobs()
        if running:
            log.info("waiting up to %s s for %d running job(s)", timeout, len(running))
            tasks = [rj.task for rj in running if rj.task is not None]
            await asyncio.wait(tasks, timeout=timeout if timeout > 0 else None)
            await self._release_unfinished()
        await self.finalizer.drain()
        with contextlib.suppress(StorageError):
            await self.logs.flush()
        try:
            await self.leader.resign()
        except StorageError as exc:
            log.warning("could not release the leader lease: %s", exc)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.flush()
            await asyncio.gather(*(p.unregister() for p in self.pools.values()))
        except StorageError as exc:
            log.warning("could not unregister cleanly: %s", exc)
        self.executor.shutdown(wait=False, cancel_futures=True)
        await self.app._close_process_pool()
        self._stopped.set()
        log.info("worker %s stopped", self.host_id)

    async def _release_unfinished(self) -> None:
        """Cancel what is still running and put it back to pending (no attempt spent)."""
        leftovers = self.running_jobs()
        for rj in leftovers:
            rj.releasing = True
            if rj.in_thread:
                # A thread cannot be interrupted: release the row now; its late finish is ignored.
                self.finalizer.submit(released(rj.job))
            elif rj.task is not None:
                rj.task.cancel()
        tasks = [rj.task for rj in leftovers if rj.task is not None and not rj.in_thread]
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        self.released = len(leftovers)
        if leftovers:
            log.info("returned %d unfinished job(s) to pending", len(leftovers))
