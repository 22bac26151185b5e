"""The process executor's pool: child interpreters that run one job each at a time.

Why not `concurrent.futures.ProcessPoolExecutor` (or loky): when one of its
children dies, the whole executor breaks (``BrokenProcessPool``) and every job
in flight fails with it. Here each child has its own IO thread that feeds it
jobs from the pool's queue and reads its replies; a child that dies fails only
the job it was running, with an error naming its exit code or signal, and the
next job gets a fresh child. Other children go on.

Children are new interpreters started with `subprocess` (fork + exec at once,
the "spawn" start method: a kernel that has threads is never forked), lazily:
the first process job starts the first child, and there are at most ``size``.
A child never re-imports the parent's ``__main__`` (multiprocessing's spawn
would re-run a user's script or import the kernel's modules). Each child has a
socket for jobs and replies, and a control pipe for cancel notices whose end of
file tells it the parent died (see `process_child`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from forge_nb.errors import PayloadError
from forge_nb.runtime import joblogs, process_ship, propagation
from forge_nb.runtime import process_wire as wire
from forge_nb.runtime.outcomes import Dead, RunnerError, Throttled

if TYPE_CHECKING:
    from forge_nb.runtime.context import JobCtx
    from forge_nb.runtime.handlers import Handler

log = logging.getLogger("forge_nb.process_pool")

#: What a child runs: the parent's sys.path first (functions sent by reference import
#: from it), then the child loop. ``-c`` rather than ``-m``: ``-m`` would need forge_nb
#: importable before sys.path is set.
BOOT = (
    "import json, os, sys; sys.path[:] = json.loads(os.environ.pop('FORGE_NB_CHILD_PATH')); "
    "from forge_nb.runtime.process_child import main; main()"
)
#: Set in every child's environment to the worker's pid: how tools (and tests) find them.
CHILD_ENV = "FORGE_NB_PROCESS_CHILD"
#: A cancelled job may return on its own this long (it sees ``ctx.cancel``) before SIGTERM.
CANCEL_GRACE_S = 0.5
#: SIGTERM, then SIGKILL this long after.
KILL_GRACE_S = 1.0
#: A child must say it is ready within this long.
READY_TIMEOUT_S = 60.0
#: Shipped functions remembered (one per handler; a re-run cell makes a new handler).
SHIPPED_CACHE = 256
#: How often an IO thread waiting for a reply checks that its child still runs (the end of
#: file of its socket says so at once, unless a process the job forked holds the socket).
LIVENESS_CHECK_S = 1.0


class ProcessDied(RunnerError):
    """The child running a job died (exit, signal, out of memory): that attempt fails."""


class CannotShip(RunnerError, TypeError):
    """The job's function (or a global it uses) cannot be pickled for a child process."""


class ProcessJobError(Exception):
    """A job's exception that could not travel back as itself; its text is the original's."""

    def __init__(self, message: str, type_name: str) -> None:
        super().__init__(message)
        self.type_name = type_name


class ProcessPoolClosed(RuntimeError):
    """The pool closed while a job waited for a child."""


def describe_exit(returncode: int) -> str:
    """How a child ended, for the job's error."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"process executor: child killed by signal {name}"
    return f"process executor: child exited with code {returncode}"


@dataclass(eq=False)
class _Slot:
    """One job on its way through the pool (shared by the loop and a child's IO thread)."""

    job_id: str
    key: str
    blob: bytes
    payload: dict[str, Any]
    meta: dict[str, Any]
    future: asyncio.Future[tuple[Any, ...]]
    #: Set when a child takes the job: ``timeout=`` counts from there, not from the queue.
    started: asyncio.Future[None]
    #: ``queued`` in the pool, ``running`` in a child, ``done`` once it replied or died.
    state: str = "queued"
    child: ChildProcess | None = None
    #: Cancelled, timed out or released: a late reply changes nothing.
    abandoned: bool = False
    #: The attempt's log (`forge_nb.runtime.joblogs`): the child's output goes there.
    log: Any = None


class ChildProcess:
    """One child and the IO thread that feeds it jobs and reads its replies.

    The thread, not the event loop, talks to the child: it takes the next queued job the
    moment the child replies, even while the loop is busy (writing outcomes, say), so a
    child does not sit idle waiting for the loop; replies reach the loop together and are
    stored in one batch. The thread also starts the child (fork + exec stays off the
    loop) and notices its death: end of file on the socket, then its exit status.
    """

    def __init__(self, pool: ProcessPool, serial: int) -> None:
        self.pool = pool
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        #: Write end of the control pipe (cancel notices); guarded by the pool's lock.
        self.control_fd: int | None = None
        #: The job it runs now; guarded by the pool's lock.
        self.current: _Slot | None = None
        #: Function keys sent to this child (it may drop some: it then says MISSING).
        self.sent: set[str] = set()
        self.tasks_done = 0
        self.starting = True
        self.finished: asyncio.Future[None] = pool.loop.create_future()
        self._reader = wire.FrameReader()
        self._pending: deque[Any] = deque()
        self.thread = threading.Thread(
            target=self._main, name=f"forge-nb process child {serial}", daemon=True
        )

    @property
    def pid(self) -> int:
        """The child's pid (0 before it started)."""
        return self.proc.pid if self.proc is not None else 0

    @property
    def alive(self) -> bool:
        """Started and not reaped."""
        return self.proc is not None and self.proc.returncode is None

    # -- the IO thread ---------------------------------------------------------------------
    def _main(self) -> None:
        try:
            try:
                self._launch()
                self._await_ready()
            except Exception as exc:
                self.pool._spawn_failed(self, exc)
                return
            limit = self.pool.max_tasks_per_child
            while (slot := self.pool._take(self)) is not None:
                if not self._run(slot):
                    break
                self.tasks_done += 1
                if limit is not None and self.tasks_done >= limit:
                    break
        except BaseException:
            log.exception("process executor: the IO thread of child %d failed", self.pid)
        finally:
            self._end()
            self.pool._child_gone(self)

    def _launch(self) -> None:
        """Start the child (a new interpreter) with its job socket and control pipe."""
        parent_sock, child_sock = socket.socketpair()
        control_r, control_w = os.pipe()
        try:
            env = {
                **os.environ,
                CHILD_ENV: str(os.getpid()),
                "FORGE_NB_CHILD_PATH": json.dumps(sys.path),
            }
            args = [sys.executable, *_interpreter_flags(), "-c", BOOT]
            args += [str(child_sock.fileno()), str(control_r), str(os.getpid())]
            self.proc = subprocess.Popen(
                args,
                pass_fds=(child_sock.fileno(), control_r),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            parent_sock.close()
            os.close(control_w)
            raise
        finally:
            child_sock.close()
            os.close(control_r)
        os.set_blocking(control_w, False)
        parent_sock.settimeout(LIVENESS_CHECK_S)
        self.sock = parent_sock
        with self.pool._lock:
            self.control_fd = control_w

    def _await_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            message = self._next_message()
            if message is None:
                raise ProcessDied(describe_exit(self._reap()) + " before it was ready")
            if message[0] == wire.READY:
                return
            if time.monotonic() > deadline:
                raise ProcessDied(f"process executor: child not ready after {READY_TIMEOUT_S} s")

    def _next_message(self) -> Any | None:
        """The child's next frame; None once it is gone (end of file, or it exited)."""
        assert self.sock is not None and self.proc is not None
        while not self._pending:
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                if self.proc.poll() is not None:  # exited, yet something holds its socket
                    return None
                continue
            except OSError:
                return None
            if not data:
                return None
            self._pending.extend(self._reader.feed(data))
        return self._pending.popleft()

    def _run(self, slot: _Slot) -> bool:
        """Send one job and relay its messages until it replies; False when the child died."""
        assert self.sock is not None
        with_function = slot.key not in self.sent
        reply: tuple[Any, ...] | None = None
        try:
            while reply is None:
                blob = slot.blob if with_function else None
                run = (wire.RUN, slot.job_id, slot.key, blob, slot.payload, slot.meta)
                frame = wire.encode(run)
                self.sock.sendall(frame)
                self.sent.add(slot.key)
                while True:
                    message = self._next_message()
                    if message is None:
                        break
                    tag = message[0]
                    if message[1] != slot.job_id:
                        continue
                    if tag == wire.PROGRESS:
                        if not slot.abandoned:
                            self.pool._post(self.pool.on_progress, *message[1:4])
                    elif tag == wire.LOG:
                        if slot.log is not None:
                            slot.log.write(message[2])
                    elif tag == wire.MISSING:
                        with_function = True
                        break
                    else:
                        reply = message
                        break
                if message is None:
                    break
        except OSError:
            reply = None
        with self.pool._lock:
            self.current = None
            slot.state = "done"
        if reply is not None:
            self.pool._settle(slot.future, reply)
            return True
        died = ProcessDied(describe_exit(self._reap()))
        if not slot.abandoned:
            log.warning("%s (pid %d) while running job %s", died, self.pid, slot.job_id)
        self.pool._settle(slot.future, died)
        return False

    def _reap(self) -> int:
        assert self.proc is not None
        return self.proc.wait()

    def _end(self) -> None:
        """Close the channels (an idle child exits on their end of file) and reap it."""
        with self.pool._lock:
            control_fd, self.control_fd = self.control_fd, None
        if control_fd is not None:
            with contextlib.suppress(OSError):
                os.close(control_fd)
        if self.sock is not None:
            self.sock.close()
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.wait(timeout=KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.pool._post(_settle_future, self.finished, None)

    # -- called from the loop, with the pool's lock held --------------------------------------
    def notify_cancel_locked(self, job_id: str) -> None:
        """Tell the job it is cancelled (``ctx.cancel.is_cancelled()`` turns True)."""
        if self.control_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self.control_fd, job_id.encode() + b"\n")

    def signal_locked(self, signum: int) -> None:
        """Send a signal if the child has not been reaped."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)


class ProcessPool:
    """Children for ``executor="process"`` jobs: at most ``size``, started on demand.

    ``run`` queues a job; the first free child takes it (a new child starts while
    there are fewer than ``size``) and ``run`` returns its result or raises its
    exception. Cancelling ``run`` (a user cancel, ``timeout=``, shutdown) takes a
    queued job out, or kills the child running it: SIGTERM, then SIGKILL after
    `KILL_GRACE_S`; a user cancel first gives the job `CANCEL_GRACE_S` to see
    ``ctx.cancel`` and return, which keeps the child.
    """

    def __init__(
        self,
        size: int,
        *,
        max_tasks_per_child: int | None = None,
        on_progress: Callable[[str, float, str], None],
    ) -> None:
        if size < 1:
            raise ValueError(f"process pool size must be >= 1, got {size!r}")
        self.loop = asyncio.get_running_loop()
        self.size = size
        self.max_tasks_per_child = max_tasks_per_child
        self.on_progress = on_progress
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        # Guarded by the lock:
        self._queue: deque[_Slot] = deque()
        self._children: set[ChildProcess] = set()
        self._idle = 0
        self._starting = 0
        self._closed = False
        # Loop only:
        self._killers: set[asyncio.Task[None]] = set()
        self._shipped: OrderedDict[int, tuple[Handler, str, bytes]] = OrderedDict()
        self._serial = itertools.count(1)

    def __repr__(self) -> str:
        with self._lock:
            return (
                f"<ProcessPool size={self.size} children={len(self._children)} "
                f"idle={self._idle} queued={len(self._queue)}>"
            )

    def pids(self) -> list[int]:
        """Pids of the live children (idle, busy, or being stopped)."""
        with self._lock:
            return sorted(c.pid for c in self._children if c.alive)

    # -- running a job (loop side) -----------------------------------------------------------
    async def run(self, handler: Handler, ctx: JobCtx, payload: dict[str, Any]) -> Any:
        """Run one job in a child; its JSON result, or its exception raised here."""
        key, blob = self._shipped_function(handler)
        meta = {
            "kind": ctx.kind,
            "queue": ctx.queue,
            "attempt": ctx.attempt,
            "process_id": ctx.process_id,
            "host_id": ctx.host_id,
            "dependency_results": ctx.dependency_results,
        }
        variables = getattr(getattr(ctx, "app", None), "_propagated", None)
        if variables:
            meta["context"] = propagation.for_child(variables)
        slot = _Slot(
            ctx.job_id,
            key,
            blob,
            payload,
            meta,
            self.loop.create_future(),
            self.loop.create_future(),
        )
        slot.log = joblogs.CURRENT.get()
        if slot.log is not None:
            meta["capture"] = True
        slot.future.add_done_callback(_retrieved)  # a killed job's late reply is no news
        with self._lock:
            if self._closed:
                raise ProcessPoolClosed("the process pool is closed")
            self._queue.append(slot)
            self._wakeup.notify()
            self._grow_locked()
        try:
            reply = await self._reply(slot, handler.timeout)
        except asyncio.CancelledError:
            await self._abandon(slot, cooperative=ctx.cancel.is_cancelled())
            raise
        return _outcome(reply)

    async def _reply(self, slot: _Slot, timeout: float | None) -> tuple[Any, ...]:
        """The job's reply; a ``timeout`` counts from the start in a child (not the wait
        for one: a cold pool's start-up is not the job's time) and kills that child."""
        # Shielded: a cancel must leave the reply pending (the job may still return).
        if timeout is None:
            return await asyncio.shield(slot.future)
        either: list[asyncio.Future[Any]] = [slot.started, slot.future]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(slot.future)
        except TimeoutError:
            await self._abandon(slot, cooperative=False)
            raise TimeoutError(f"timed out after {timeout} s") from None

    async def _abandon(self, slot: _Slot, cooperative: bool) -> None:
        """Take a queued job out; stop a running one (after a grace when ``cooperative``)."""
        with self._lock:
            slot.abandoned = True
            if slot.state != "running" or slot.child is None:
                return  # still queued (children skip it), or it already replied
            child = slot.child
            if cooperative:
                child.notify_cancel_locked(slot.job_id)
        if cooperative and await self._returns_within(slot, CANCEL_GRACE_S):
            return
        self._kill(child, slot)

    async def _returns_within(self, slot: _Slot, seconds: float) -> bool:
        """Whether the job replies within ``seconds`` (its child then stays in the pool)."""
        deadline = self.loop.time() + seconds
        while not slot.future.done():
            left = deadline - self.loop.time()
            if left <= 0:
                return False
            try:
                await asyncio.wait([slot.future], timeout=left)
            except asyncio.CancelledError:
                continue  # the heartbeat repeats a cancel request: still the same grace
        return not slot.future.cancelled() and slot.future.exception() is None

    def _kill(self, child: ChildProcess, slot: _Slot) -> None:
        """SIGTERM the child while it still runs ``slot``; SIGKILL if it has not gone after
        `KILL_GRACE_S`. A child that moved on (the job replied) is left alone."""
        with self._lock:
            if child.current is not slot:
                return
            child.signal_locked(signal.SIGTERM)
        task = self.loop.create_task(self._escalate(child, slot))
        self._killers.add(task)
        task.add_done_callback(self._killers.discard)

    async def _escalate(self, child: ChildProcess, slot: _Slot) -> None:
        await asyncio.wait([child.finished], timeout=KILL_GRACE_S)
        with self._lock:
            if child.current is slot:
                child.signal_locked(signal.SIGKILL)

    def _shipped_function(self, handler: Handler) -> tuple[str, bytes]:
        """The handler's function packed once (re-registering a kind makes a new handler)."""
        found = self._shipped.get(id(handler))
        if found is not None and found[0] is handler:
            self._shipped.move_to_end(id(handler))
            return found[1], found[2]
        if handler.target is None:
            raise TypeError(f"handler {handler.kind!r} has no function to run in a process")
        try:
            blob = process_ship.pack(handler.target, handler.takes_ctx)
        except Exception as exc:
            raise CannotShip(
                f"process executor: cannot send job function {handler.kind!r} to a child "
                "process (it, or a global it uses, cannot be pickled)"
            ) from exc
        key = f"{handler.kind}#{next(self._serial)}"
        self._shipped[id(handler)] = (handler, key, blob)
        if len(self._shipped) > SHIPPED_CACHE:
            self._shipped.popitem(last=False)
        return key, blob

    # -- children (any thread, with the lock where it says so) -------------------------------
    def _grow_locked(self) -> None:
        """Start a child when queued jobs outnumber the free children and there is room."""
        if self._closed or len(self._children) >= self.size:
            return
        waiting = sum(1 for s in self._queue if not s.abandoned)
        if waiting > self._idle + self._starting:
            child = ChildProcess(self, next(self._serial))
            self._children.add(child)
            self._starting += 1
            child.thread.start()

    def _take(self, child: ChildProcess) -> _Slot | None:
        """IO thread: the next queued job for ``child`` (waits); None when the pool closes."""
        with self._lock:
            if child.starting:
                child.starting = False
                self._starting -= 1
            while not self._closed:
                while self._queue:
                    slot = self._queue.popleft()
                    if not slot.abandoned:
                        slot.state = "running"
                        slot.child = child
                        child.current = slot
                        self._post(_settle_future, slot.started, None)
                        return slot
                self._idle += 1
                try:
                    self._wakeup.wait()
                finally:
                    self._idle -= 1
            return None

    def _spawn_failed(self, child: ChildProcess, exc: Exception) -> None:
        """IO thread: the child could not start; the first queued job fails with why."""
        log.error("process executor: could not start a child: %s", exc)
        with self._lock:
            child.starting = False
            self._starting -= 1
            victim = next((s for s in self._queue if not s.abandoned), None)
            if victim is not None:
                self._queue.remove(victim)
                victim.state = "done"
        if victim is not None:
            self._settle(victim.future, exc)

    def _child_gone(self, child: ChildProcess) -> None:
        """IO thread, at its end: forget the child; start another if jobs wait."""
        with self._lock:
            self._children.discard(child)
            if child.starting:
                child.starting = False
                self._starting -= 1
            self._grow_locked()

    def _post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop (from an IO thread)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self.loop.call_soon_threadsafe(fn, *args)

    def _settle(self, future: asyncio.Future[Any], outcome: Any) -> None:
        self._post(_settle_future, future, outcome)

    async def close(self) -> None:
        """Stop every child (idle ones exit at once; a busy one is killed) and wait for them."""
        with self._lock:
            self._closed = True
            queued = [s for s in self._queue if not s.abandoned]
            self._queue.clear()
            children = list(self._children)
            busy = [(c, c.current) for c in children if c.current is not None]
            self._wakeup.notify_all()
        for slot in queued:
            _settle_future(slot.future, ProcessPoolClosed("the process pool is closed"))
        for child, slot in busy:
            if slot is not None:
                slot.abandoned = True
                self._kill(child, slot)
        waits = [c.finished for c in children] + list(self._killers)
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)


def _settle_future(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _outcome(reply: tuple[Any, ...]) -> Any:
    """The job's result, or its exception raised as the thread path would see it."""
    tag = reply[0]
    if tag == wire.DONE:
        return json.loads(reply[2])
    if tag == wire.NOT_JSON:
        raise PayloadError(reply[2])
    if tag == wire.THROTTLED:
        raise Throttled(retry_after=reply[2], message=reply[3])
    if tag == wire.ERROR:
        raise _job_exception(*reply[2:])
    raise RuntimeError(f"process executor: unexpected reply {tag!r} from a child")


def _job_exception(
    is_dead: bool, blob: bytes | None, type_name: str, chain: str, traceback: str
) -> BaseException:
    """The child's exception (unpickled when it can be), carrying the child's rendering."""
    exc: BaseException | None = None
    if blob is not None:
        try:
            loaded = pickle.loads(blob)
        except Exception:
            loaded = None
        if isinstance(loaded, Exception):
            exc = loaded
    if is_dead and not isinstance(exc, Dead):
        exc = Dead(chain)
    if exc is None:
        exc = ProcessJobError(chain, type_name)
    exc.__cause__ = exc.__context__ = None
    setattr(exc, wire.RENDERED_ATTR, (chain, traceback))
    return exc


def _interpreter_flags() -> list[str]:
    """The parent's -X/-W/-O flags, as multiprocessing passes them to its children."""
    flags = getattr(subprocess, "_args_from_interpreter_flags", None)
    return list(flags()) if flags is not None else []
