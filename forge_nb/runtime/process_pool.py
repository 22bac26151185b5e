"""The process executor's pool: child interpreters that run one job each at a time.

Why not `concurrent.futures.ProcessPoolExecutor` (or loky): when one of its
children dies, the whole executor breaks (``BrokenProcessPool``) and every job
in flight fails with it. Here each child is watched on its own, on the asyncio
loop (a pidfd on Linux, a waiter thread elsewhere): a child that dies fails only
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
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from forge_nb.errors import PayloadError
from forge_nb.runtime import process_ship
from forge_nb.runtime.outcomes import Dead, Throttled
from forge_nb.runtime.process_wire import (
    DONE,
    ERROR,
    MISSING,
    NOT_JSON,
    PROGRESS,
    READY,
    RENDERED_ATTR,
    RUN,
    THROTTLED,
    FrameReader,
    encode,
)

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


class ProcessDied(Exception):
    """The child running a job died (exit, signal, out of memory): that attempt fails."""


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


class _ChildProtocol(asyncio.Protocol):
    """Reads a child's frames on the loop and hands them to its `ChildProcess`."""

    def __init__(self, child: ChildProcess) -> None:
        self.child = child
        self.reader = FrameReader()

    def data_received(self, data: bytes) -> None:
        for message in self.reader.feed(data):
            self.child.received(message)

    def connection_lost(self, exc: Exception | None) -> None:
        """Nothing to do: the exit watcher reports how the child ended."""


class ChildProcess:
    """One child: its process, its channels, and the job it runs now."""

    def __init__(self, pool: ProcessPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.proc: subprocess.Popen[bytes] | None = None
        self.transport: asyncio.Transport | None = None
        self.control_fd: int | None = None
        self.ready: asyncio.Future[None] = self.loop.create_future()
        self.exited: asyncio.Future[int] = self.loop.create_future()
        self.reply: asyncio.Future[tuple[Any, ...]] | None = None
        self.job_id: str | None = None
        #: Function keys this child has been sent (it may drop some: it then says MISSING).
        self.sent: set[str] = set()
        self.tasks_done = 0
        #: We are stopping it: its exit fails nothing.
        self.retiring = False

    @property
    def pid(self) -> int:
        """The child's pid (0 before it started)."""
        return self.proc.pid if self.proc is not None else 0

    @property
    def alive(self) -> bool:
        """Started and not exited."""
        return self.proc is not None and not self.exited.done()

    # -- start -------------------------------------------------------------------------
    async def start(self) -> None:
        """Launch the interpreter, connect its socket, watch its exit, wait until ready."""
        parent_sock = self._launch()
        self._watch_exit()
        transport, _ = await self.loop.connect_accepted_socket(
            lambda: _ChildProtocol(self), parent_sock
        )
        self.transport = transport
        if self.exited.done():
            transport.close()
        async with asyncio.timeout(READY_TIMEOUT_S):
            await self.ready

    def _launch(self) -> socket.socket:
        """Start the child (fork + exec: milliseconds); our end of its job socket."""
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
        self.control_fd = control_w
        parent_sock.setblocking(False)
        return parent_sock

    def _watch_exit(self) -> None:
        assert self.proc is not None
        try:
            pidfd = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            threading.Thread(
                target=self._wait_in_thread, name="forge-nb child watch", daemon=True
            ).start()
            return
        self.loop.add_reader(pidfd, self._pidfd_readable, pidfd)

    def _pidfd_readable(self, pidfd: int) -> None:
        self.loop.remove_reader(pidfd)
        os.close(pidfd)
        assert self.proc is not None
        returncode = self.proc.poll()
        if returncode is None:  # readable means exited; reaping cannot block here
            returncode = self.proc.wait()
        self._on_exit(returncode)

    def _wait_in_thread(self) -> None:
        assert self.proc is not None
        returncode = self.proc.wait()
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self.loop.call_soon_threadsafe(self._on_exit, returncode)

    # -- messages ------------------------------------------------------------------------
    def received(self, message: tuple[Any, ...]) -> None:
        """A frame from the child."""
        tag = message[0]
        if tag == PROGRESS:
            if message[1] == self.job_id:
                self.pool.on_progress(message[1], message[2], message[3])
        elif tag == READY:
            if not self.ready.done():
                self.ready.set_result(None)
        elif self.reply is not None and not self.reply.done() and message[1] == self.job_id:
            self.reply.set_result(message)

    def send_job(self, job_id: str, frame: bytes) -> asyncio.Future[tuple[Any, ...]]:
        """Send one job; the future gets its reply (or `ProcessDied`)."""
        assert self.transport is not None
        self.job_id = job_id
        self.reply = self.loop.create_future()
        self.reply.add_done_callback(_retrieved)  # a killed job's late ProcessDied is no news
        if self.exited.done():
            self.reply.set_exception(ProcessDied(describe_exit(self.exited.result())))
        else:
            self.transport.write(frame)
        return self.reply

    def notify_cancel(self, job_id: str) -> None:
        """Tell the job it is cancelled (``ctx.cancel.is_cancelled()`` turns True)."""
        if self.control_fd is not None and self.alive:
            with contextlib.suppress(OSError):
                os.write(self.control_fd, job_id.encode() + b"\n")

    def signal(self, signum: int) -> None:
        """Send a signal if the child still runs."""
        if self.alive:
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)

    def close_channels(self) -> None:
        """Close the socket and the control pipe: an idle child exits at once on EOF."""
        if self.transport is not None:
            self.transport.close()
        if self.control_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.control_fd)
            self.control_fd = None

    def _on_exit(self, returncode: int) -> None:
        if self.exited.done():
            return
        self.exited.set_result(returncode)
        self.close_channels()
        died = ProcessDied(describe_exit(returncode))
        if not self.ready.done():
            self.ready.set_exception(died)
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(died)
        self.pool.child_exited(self, returncode)

    async def stop(self, signum: int | None) -> None:
        """End the child: ``signum`` now (None: close its channels), SIGKILL after a grace."""
        self.retiring = True
        if signum is None:
            self.close_channels()
        else:
            self.signal(signum)
        try:
            await asyncio.wait_for(asyncio.shield(self.exited), KILL_GRACE_S)
        except TimeoutError:
            self.signal(signal.SIGKILL)
            await self.exited
        self.close_channels()


class ProcessPool:
    """Children for ``executor="process"`` jobs: at most ``size``, started on demand.

    ``run`` sends a job to a free child (waiting for one when all are busy) and
    returns its result or raises its exception. Cancelling ``run`` (a user cancel,
    ``timeout=``, shutdown) kills the child: SIGTERM, then SIGKILL after
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
        #: Children that count against ``size``: starting, idle and busy.
        self._children: set[ChildProcess] = set()
        self._idle: list[ChildProcess] = []
        self._waiters: deque[asyncio.Future[ChildProcess | None]] = deque()
        self._stopping: dict[asyncio.Task[None], ChildProcess] = {}
        self._shipped: OrderedDict[int, tuple[Handler, str, bytes]] = OrderedDict()
        self._serial = itertools.count(1)
        self._closed = False

    def __repr__(self) -> str:
        busy = len(self._children) - len(self._idle)
        return f"<ProcessPool size={self.size} children={len(self._children)} busy={busy}>"

    def pids(self) -> list[int]:
        """Pids of the live children (idle or busy, and those being stopped)."""
        children = self._children | set(self._stopping.values())
        return sorted(c.pid for c in children if c.alive)

    # -- running a job ---------------------------------------------------------------------
    async def run(self, handler: Handler, ctx: JobCtx, payload: dict[str, Any]) -> Any:
        """Run one job in a child; its JSON result, or its exception raised here."""
        key, blob = self._shipped_function(handler)
        meta = {
            "kind": ctx.kind,
            "queue": ctx.queue,
            "attempt": ctx.attempt,
            "process_id": ctx.process_id,
            "host_id": ctx.host_id,
        }
        child = await self._acquire()
        job_id = ctx.job_id
        try:
            with_function = key not in child.sent
            while True:
                frame = encode((RUN, job_id, key, blob if with_function else None, payload, meta))
                child.sent.add(key)
                # Shielded: a cancel must leave the reply pending (the job may still return).
                reply = await asyncio.shield(child.send_job(job_id, frame))
                if reply[0] != MISSING or with_function:
                    break
                with_function = True
        except asyncio.CancelledError:
            if ctx.cancel.is_cancelled() and await self._stops_on_its_own(child, job_id):
                self._release(child)
            else:
                self._stop(child, signal.SIGTERM)
            raise
        except BaseException:
            if child.alive:  # not a death (that is handled by the exit watcher): never reuse
                self._stop(child, signal.SIGTERM)
            raise
        self._release(child)
        return _outcome(reply)

    async def _stops_on_its_own(self, child: ChildProcess, job_id: str) -> bool:
        """Cancel notice, then a short wait for the job to return (the child stays usable)."""
        reply = child.reply
        if reply is None or not child.alive:
            return False
        child.notify_cancel(job_id)
        deadline = self.loop.time() + CANCEL_GRACE_S
        while not reply.done():
            left = deadline - self.loop.time()
            if left <= 0:
                return False
            try:
                await asyncio.wait([reply], timeout=left)
            except asyncio.CancelledError:
                continue  # the heartbeat repeats a cancel request: still the same grace
        return child.alive and reply.exception() is None

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
            raise TypeError(
                f"process executor: cannot send job function {handler.kind!r} to a child "
                "process (it, or a global it uses, cannot be pickled)"
            ) from exc
        key = f"{handler.kind}#{next(self._serial)}"
        self._shipped[id(handler)] = (handler, key, blob)
        if len(self._shipped) > SHIPPED_CACHE:
            self._shipped.popitem(last=False)
        return key, blob

    # -- children ------------------------------------------------------------------------------
    async def _acquire(self) -> ChildProcess:
        while True:
            if self._closed:
                raise ProcessPoolClosed("the process pool is closed")
            while self._idle:
                child = self._idle.pop()
                if child.alive:
                    return child
            if len(self._children) < self.size:
                return await self._spawn()
            waiter: asyncio.Future[ChildProcess | None] = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                child_or_none = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    given = waiter.result()
                    if given is not None:
                        self._hand_over(given)
                    else:
                        self._wake_one()
                elif waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
            if child_or_none is not None:
                return child_or_none
            # None: room was freed (a child ended); loop round to start one.

    async def _spawn(self) -> ChildProcess:
        child = ChildProcess(self)
        self._children.add(child)
        try:
            await child.start()
        except BaseException:
            self._children.discard(child)
            if child.proc is not None:
                self._stop(child, signal.SIGKILL)
            self._wake_one()
            raise
        log.debug("process executor: child %d started", child.pid)
        return child

    def _release(self, child: ChildProcess) -> None:
        """A job ended normally in ``child``: reuse it, or retire it when it has done enough."""
        child.job_id = None
        child.reply = None
        child.tasks_done += 1
        limit = self.max_tasks_per_child
        if self._closed or not child.alive or (limit is not None and child.tasks_done >= limit):
            self._stop(child, None)
            return
        self._hand_over(child)

    def _hand_over(self, child: ChildProcess) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(child)
                return
        self._idle.append(child)

    def _wake_one(self) -> None:
        """Room for one more child: let the first waiter start it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _stop(self, child: ChildProcess, signum: int | None) -> None:
        """Take ``child`` out of the pool and end it in the background."""
        if child in self._children:
            self._children.discard(child)
            self._wake_one()
        with contextlib.suppress(ValueError):
            self._idle.remove(child)
        if child.retiring:
            return
        child.retiring = True
        task = self.loop.create_task(child.stop(signum), name=f"forge-nb stop child {child.pid}")
        self._stopping[task] = child
        task.add_done_callback(self._stopping.pop)

    def child_exited(self, child: ChildProcess, returncode: int) -> None:
        """Exit watcher: forget the child; an unexpected exit is logged (its job fails)."""
        if not child.retiring:
            log.warning(
                "%s (pid %d)%s",
                describe_exit(returncode),
                child.pid,
                f" while running job {child.job_id}" if child.job_id else "",
            )
            child.retiring = True
        if child in self._children:
            self._children.discard(child)
            self._wake_one()
        with contextlib.suppress(ValueError):
            self._idle.remove(child)

    async def close(self) -> None:
        """Stop every child (idle ones exit at once; a busy one is killed) and wait for them."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ProcessPoolClosed("the process pool is closed"))
        for child in list(self._children):
            self._stop(child, None if child.job_id is None else signal.SIGTERM)
        if self._stopping:
            await asyncio.gather(*list(self._stopping), return_exceptions=True)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _outcome(reply: tuple[Any, ...]) -> Any:
    """The job's result, or its exception raised as the thread path would see it."""
    tag = reply[0]
    if tag == DONE:
        return json.loads(reply[2])
    if tag == NOT_JSON:
        raise PayloadError(reply[2])
    if tag == THROTTLED:
        raise Throttled(retry_after=reply[2], message=reply[3])
    if tag == ERROR:
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
    setattr(exc, RENDERED_ATTR, (chain, traceback))
    return exc


def _interpreter_flags() -> list[str]:
    """The parent's -X/-W/-O flags, as multiprocessing passes them to its children."""
    flags = getattr(subprocess, "_args_from_interpreter_flags", None)
    return list(flags()) if flags is not None else []
