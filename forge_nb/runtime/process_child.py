"""One process-executor child: runs the jobs its worker sends, one at a time.

`process_pool` starts it as a fresh interpreter (nothing of the worker or the
kernel is forked) with three arguments: the job socket's fd, the control pipe's
fd and the parent's pid. The main thread reads a job from the socket, runs it
and writes the reply. A watcher thread blocks on the control pipe, whose write
end only the parent holds: a job id there is a cancel request (seen by
``ctx.cancel.is_cancelled()``), and end of file means the parent died, so the
child exits at once, even mid-job: no orphans after a ``kill -9`` of the worker.

It imports no UI library: only the standard library, forge-nb's runtime
helpers and (for functions sent by value) cloudpickle.
"""

from __future__ import annotations

import inspect
import os
import signal
import socket
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from forge_nb.errors import PayloadError
from forge_nb.runtime import joblogs, process_ship, propagation
from forge_nb.runtime import process_wire as wire
from forge_nb.runtime.context import progress_fraction
from forge_nb.runtime.outcomes import Dead, Throttled, error_chain, format_traceback
from forge_nb.storage.validation import dump_json

#: Functions a child keeps loaded; the parent re-sends one the child dropped.
FUNCTION_CACHE = 64
#: prctl option: the signal a Linux child gets when its parent dies.
PR_SET_PDEATHSIG = 1


class _Terminated(BaseException):
    """Raised in the main thread by SIGTERM: unwinds the job (its ``finally`` blocks run)."""


class ChildCancel:
    """``ctx.cancel`` in a child: set when the worker asks to cancel this job."""

    __slots__ = ("_child", "_job_id")

    def __init__(self, child: Child, job_id: str) -> None:
        self._child = child
        self._job_id = job_id

    def is_cancelled(self) -> bool:
        """True once the worker asked to cancel this job."""
        return self._child.cancelled == self._job_id

    def __bool__(self) -> bool:
        return self.is_cancelled()


class ProcessJobCtx:
    """The ctx of a job run with ``executor="process"``.

    The same pinned attributes as `JobCtx` (``job_id``, ``kind``, ``queue``,
    ``attempt``, ``process_id``, ``host_id``, ``cancel``, ``dependency_results``) and
    progress, which is
    relayed to the worker and stored like a thread job's. Enqueueing and rate
    limits need the worker's database connection, so they are not available here.
    """

    __slots__ = (
        "_child",
        "attempt",
        "cancel",
        "dependency_results",
        "host_id",
        "job_id",
        "kind",
        "process_id",
        "queue",
    )

    def __init__(self, child: Child, job_id: str, meta: dict[str, Any]) -> None:
        self._child = child
        self.job_id = job_id
        self.kind: str = meta["kind"]
        self.queue: str = meta["queue"]
        self.attempt: int = meta["attempt"]
        self.process_id: str = meta["process_id"]
        self.host_id: str = meta["host_id"]
        self.cancel = ChildCancel(child, job_id)
        #: ``{dependency id: its result}``, read by the worker before the run.
        self.dependency_results: dict[str, Any] = meta.get("dependency_results", {})

    def __repr__(self) -> str:
        return f"ProcessJobCtx(job_id={self.job_id!r}, kind={self.kind!r}, attempt={self.attempt})"

    def progress_sync(self, fraction: float, message: str = "") -> None:
        """Report progress in [0, 1]; the worker stores it (batched) and widgets show it."""
        self._child.send((wire.PROGRESS, self.job_id, progress_fraction(fraction), str(message)))

    async def progress(self, fraction: float, message: str = "") -> None:
        """`progress_sync` for async functions run in a child."""
        self.progress_sync(fraction, message)

    def _unavailable(self, what: str) -> Any:
        raise NotImplementedError(
            f"ctx.{what} is not available in a process job (executor='process'): the child "
            "has no database connection. Return data and enqueue follow-ups from a thread "
            "or loop job instead."
        )

    @property
    def rate_limit(self) -> Any:
        """Not available in a child (needs the database)."""
        return self._unavailable("rate_limit")

    def enqueue(self, *args: Any, **kwargs: Any) -> Any:
        """Not available in a child (needs the database)."""
        return self._unavailable("enqueue")

    enqueue_sync = enqueue_many = enqueue_many_sync = acquire_sync = enqueue


class ChildLog:
    """A run's output in a child: sent to the worker as it comes, at most every
    `joblogs.FLUSH_S` (a timer thread), and the rest before the reply."""

    def __init__(self, child: Child, job_id: str) -> None:
        self._child = child
        self._job_id = job_id
        self._parts: list[str] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def write(self, text: str) -> None:
        with self._lock:
            self._parts.append(text)
            if self._timer is None:
                self._timer = threading.Timer(joblogs.FLUSH_S, self.send)
                self._timer.daemon = True
                self._timer.start()

    def send(self) -> None:
        with self._lock:
            parts, self._parts, self._timer = self._parts, [], None
        if parts:
            self._child.send((wire.LOG, self._job_id, "".join(parts)))

    def close(self) -> None:
        timer = self._timer
        if timer is not None:
            timer.cancel()
        self.send()


class Child:
    """The child's state: its socket, loaded functions, the job that runs and cancels."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.functions: OrderedDict[str, tuple[Callable[..., Any], bool]] = OrderedDict()
        self.cancelled: str | None = None
        self._send_lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        """Write one frame (progress may come from the job's own threads too)."""
        frame = wire.encode(message)
        with self._send_lock:
            self.sock.sendall(frame)

    def serve(self) -> None:
        """Run jobs until the parent closes the socket."""
        while True:
            message = wire.read_frame(self.sock)
            if message is None:
                return
            if message[0] == wire.RUN:
                self.send(self.run(*message[1:]))

    def run(
        self,
        job_id: str,
        key: str,
        blob: bytes | None,
        payload: dict[str, Any],
        meta: dict[str, Any],
    ) -> tuple[Any, ...]:
        """Run one job; the reply to send."""
        try:
            fn, takes_ctx = self._function(key, blob)
        except KeyError:
            return (wire.MISSING, job_id)
        except Exception as exc:
            return _error_reply(job_id, exc, f"cannot load the job function {meta['kind']!r}")
        ctx = ProcessJobCtx(self, job_id, meta)
        tokens: list[Any] = []
        output = ChildLog(self, job_id) if meta.get("capture") else None
        log_token = joblogs.CURRENT.set(output)  # type: ignore[arg-type]
        try:
            tokens = propagation.set_in_child(meta.get("context"))
            result = fn(ctx, **payload) if takes_ctx else fn(**payload)
            if inspect.iscoroutine(result):
                import asyncio

                result = asyncio.run(result)
        except _Terminated:
            raise
        except Throttled as exc:
            return (wire.THROTTLED, job_id, exc.retry_after, str(exc))
        except BaseException as exc:  # the child outlives any job error, as a thread does
            return _error_reply(job_id, exc)
        finally:
            self.cancelled = None
            propagation.reset_in_child(tokens)
            joblogs.CURRENT.reset(log_token)
            if output is not None:
                output.close()
        try:
            return (
                wire.DONE,
                job_id,
                "null" if result is None else dump_json(result, what="the result"),
            )
        except PayloadError as exc:
            return (wire.NOT_JSON, job_id, str(exc))

    def _function(self, key: str, blob: bytes | None) -> tuple[Callable[..., Any], bool]:
        found = self.functions.get(key)
        if found is not None:
            self.functions.move_to_end(key)
            return found
        if blob is None:
            raise KeyError(key)
        found = self.functions[key] = process_ship.load(blob)
        if len(self.functions) > FUNCTION_CACHE:
            self.functions.popitem(last=False)
        return found


def _error_reply(job_id: str, exc: BaseException, context: str | None = None) -> tuple[Any, ...]:
    """Render the chain and traceback here, with the real exception, as the thread path does."""
    tb = exc.__traceback__
    if tb is not None and tb.tb_frame.f_code.co_filename == __file__ and tb.tb_next is not None:
        exc.__traceback__ = tb.tb_next  # start at the job's code, not at this loop
    chain = error_chain(exc)
    if context:
        chain = f"process executor: {context}: {chain}"
    blob = None
    if isinstance(exc, Exception):  # a BaseException stays text: the worker must not raise it
        try:
            import cloudpickle

            blob = cloudpickle.dumps(exc)
        except Exception:
            blob = None
    return (
        wire.ERROR,
        job_id,
        isinstance(exc, Dead),
        blob,
        type(exc).__qualname__,
        chain,
        format_traceback(exc),
    )


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated


def _watch_parent(control_fd: int, child: Child) -> None:
    """Cancel notices arrive here; end of file: the parent is gone, so leave now."""
    pending = b""
    while True:
        try:
            data = os.read(control_fd, 4096)
        except InterruptedError:
            continue
        except OSError:
            data = b""
        if not data:
            os._exit(1)
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            child.cancelled = line.decode()


def _die_with_parent(parent_pid: int) -> None:
    """Linux: the kernel SIGKILLs us when the parent dies (the control pipe covers the rest)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except Exception:
            pass
    if os.getppid() != parent_pid:  # it died before prctl took effect
        os._exit(1)


def main(argv: list[str] | None = None) -> None:
    """Entry point of a child (see `process_pool.BOOT`)."""
    job_fd, control_fd, parent_pid = (int(a) for a in (argv or sys.argv[1:])[:3])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a kernel interrupt is not meant for jobs
    signal.signal(signal.SIGTERM, _on_sigterm)
    _die_with_parent(parent_pid)
    for fd in (job_fd, control_fd):  # a process a job starts must not hold them open
        os.set_inheritable(fd, False)
    child = Child(socket.socket(fileno=job_fd))
    joblogs.install()  # a run's print and logging also go to its job's log (`ChildLog`)
    watcher = threading.Thread(
        target=_watch_parent, args=(control_fd, child), name="forge-nb parent watch", daemon=True
    )
    watcher.start()
    code = 0
    try:
        child.send((wire.READY, os.getpid()))
        child.serve()
    except _Terminated:
        code = -int(signal.SIGTERM)
    except (BrokenPipeError, ConnectionResetError):
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    if code < 0:  # unwound by SIGTERM: now die of it, so the worker reads why
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code)  # no waiting on threads a job left behind
