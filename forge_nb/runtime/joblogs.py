"""Per-job logs: the `logging` records and the print/stdout/stderr output of a run, per
attempt, kept apart between concurrent jobs, bounded, and stored while the job runs.

Routing is by a context variable (`CURRENT`) that the runner sets around each run: a loop
job's task and a thread job's copied context see their own `AttemptLog`, so concurrent
jobs never mix. ``sys.stdout``/``sys.stderr`` are wrapped once per process by `Tee`
objects that copy a write to the current job's log (and still pass it on), and one
`logging` handler on the root logger does the same for records that pass the logging
configuration. Process children capture their run the same way and send the lines over
their socket (`forge_nb.runtime.process_child`).

An attempt keeps its last `MAX_LINES` lines and at most `MAX_BYTES` of text; earlier lines
are dropped and a marker says how many. A `LogSink` writes the attempts that changed, all
in one statement, every `FLUSH_S` (so a finished job's last lines land at most that long
after its outcome, and many outcome batches share one write); a job that logs nothing
writes nothing.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, TextIO

from forge_nb.runtime.redaction import scrub
from forge_nb.storage.records import JobLog

if TYPE_CHECKING:
    from forge_nb.storage.base import Storage

#: Per attempt: the last this many lines, and at most this much text (UTF-8 bytes).
MAX_LINES = 1000
MAX_BYTES = 64 * 1024
#: Longest wait before what a running job logged is stored.
FLUSH_S = 0.5

log = logging.getLogger("forge_nb.joblogs")


class AttemptLog:
    """What one attempt wrote, bounded to its last lines (thread-safe: thread jobs write)."""

    __slots__ = (
        "_lock",
        "_partial",
        "_queued",
        "attempt",
        "bytes",
        "dropped",
        "job_id",
        "kept",
        "secrets",
        "sink",
        "total",
    )

    def __init__(
        self, sink: LogSink | None, job_id: str, attempt: int, secrets: Collection[str] = ()
    ) -> None:
        self.sink = sink
        self.job_id = job_id
        self.attempt = attempt
        #: Values of the job's redacted payload fields: masked in every line.
        self.secrets = tuple(secrets)
        #: A list, not a deque: most attempts keep one line, and a deque's first block is
        #: half a kilobyte per attempt (trimming a long list costs only chatty jobs).
        self.kept: list[str] = []
        self.bytes = 0
        self.total = 0
        self.dropped = 0
        self._partial = ""
        self._lock = threading.Lock()
        #: Already waiting in its sink for the next flush (no need to tell it again).
        self._queued = False

    def write(self, text: str) -> None:
        """Add output (complete lines are kept; a partial line waits for its end)."""
        if not text:
            return
        with self._lock:
            if text == "\n":  # print() ends each line with a write of its own
                self._keep(self._partial)
                self._partial = ""
            elif "\n" not in text:
                self._partial += text
            else:
                *complete, self._partial = (self._partial + text).split("\n")
                for line in complete:
                    self._keep(line)
            if len(self._partial) > MAX_BYTES:  # a huge line without an end: keep it now
                self._keep(self._partial)
                self._partial = ""
            queued, self._queued = self._queued, True
        if not queued and self.sink is not None:
            self.sink.changed(self)

    def _keep(self, line: str) -> None:
        if self.secrets:
            line = scrub(line, self.secrets)
        size = _size(line)
        if size > MAX_BYTES:
            line = line[: MAX_BYTES // 4] + " …(line cut)"
            size = _size(line)
        self.kept.append(line)
        self.bytes += size
        self.total += 1
        while len(self.kept) > MAX_LINES or self.bytes > MAX_BYTES:
            self.bytes -= _size(self.kept.pop(0))
            self.dropped += 1

    def snapshot(self, now: float) -> JobLog:
        """The attempt's log as it stands at ``now`` (the truncation marker first when lines
        dropped)."""
        with self._lock:
            self._queued = False  # a write from now on queues it again
            partial, total, dropped = self._partial, self.total, self.dropped
            if len(self.kept) == 1 and not partial and not dropped:  # the common case
                return JobLog(self.job_id, self.attempt, self.kept[0], total, dropped, now)
            lines = self.kept.copy()
        if partial:
            lines.append(scrub(partial, self.secrets) if self.secrets else partial)
            total += 1
        if dropped:
            lines.insert(
                0,
                f"… {dropped} earlier line(s) dropped: a job keeps its last {MAX_LINES} lines "
                f"or {MAX_BYTES // 1024} KiB per attempt",
            )
        return JobLog(self.job_id, self.attempt, "\n".join(lines), total, dropped, now)


def _size(line: str) -> int:
    """A kept line's UTF-8 bytes, its newline included (no encoding for ASCII)."""
    return (len(line) if line.isascii() else len(line.encode("utf-8", "replace"))) + 1


#: The log of the attempt running in this context (None: not in a job).
CURRENT: contextvars.ContextVar[AttemptLog | None] = contextvars.ContextVar(
    "forge_nb_job_log", default=None
)


class LogSink:
    """Collects the attempts that logged since the last write; writes them in one go."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._dirty: dict[tuple[str, int], AttemptLog] = {}
        self._lock = threading.Lock()
        self._last = 0.0

    def changed(self, attempt: AttemptLog) -> None:
        """An attempt wrote: store it with the next flush."""
        with self._lock:
            self._dirty[(attempt.job_id, attempt.attempt)] = attempt

    @property
    def pending(self) -> bool:
        """Whether some attempt logged since the last flush."""
        return bool(self._dirty)

    async def flush_due(self) -> None:
        """`flush` if the last one is `FLUSH_S` old: many outcome batches share a write."""
        if self._dirty and time.monotonic() - self._last >= FLUSH_S:
            await self.flush()

    async def flush(self) -> None:
        """Write every attempt that changed (nothing to do, nothing written)."""
        if not self._dirty:
            return
        self._last = time.monotonic()
        with self._lock:
            dirty, self._dirty = self._dirty, {}
        try:
            now = time.time()
            await self.storage.write_job_logs([a.snapshot(now) for a in dirty.values()])
        except Exception:
            with self._lock:  # try again with the next flush
                for key, attempt in dirty.items():
                    self._dirty.setdefault(key, attempt)
            raise


# -- capture: installed once per process --------------------------------------------------------
class Tee:
    """A ``sys.stdout``/``sys.stderr`` stand-in: writes go on, and to the current job's log."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        current = CURRENT.get()
        if current is not None:
            current.write(text)
        return self._stream.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class JobLogHandler(logging.Handler):
    """Copies records emitted inside a job to its log."""

    def emit(self, record: logging.LogRecord) -> None:
        current = CURRENT.get()
        if current is None:
            return
        try:
            current.write(self.format(record) + "\n")
        except Exception:  # a log record must never fail the job
            self.handleError(record)


_installed = threading.Lock()
_HANDLER: JobLogHandler | None = None


def install() -> None:
    """Wrap stdout/stderr and add the logging handler (once; again if someone replaced the
    streams since, as a notebook kernel or a test runner may)."""
    global _HANDLER
    with _installed:
        if not isinstance(sys.stdout, Tee) and sys.stdout is not None:
            sys.stdout = Tee(sys.stdout)
        if not isinstance(sys.stderr, Tee) and sys.stderr is not None:
            sys.stderr = Tee(sys.stderr)
        if _HANDLER is None:
            _HANDLER = JobLogHandler()
            _HANDLER.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
            logging.getLogger().addHandler(_HANDLER)
