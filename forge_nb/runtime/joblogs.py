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
are dropped and a marker says how many. While jobs run, a `LogSink` writes the attempts
that changed, all in one statement, every `FLUSH_S`; when a run ends, what it wrote since
goes with its outcome (`LogSink.ended`, `Finish.log`), in the same transaction. A job that
logs nothing writes nothing.
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
#: Text an attempt may pile up unsplit (characters, writes) before it is cut into lines.
COMPACT_CHARS = 2 * MAX_BYTES
COMPACT_WRITES = 2 * MAX_LINES

log = logging.getLogger("forge_nb.joblogs")


class AttemptLog:
    """What one attempt wrote, bounded to its last lines (thread-safe: thread jobs write).

    A write only appends the raw text (a print is two writes: its text, then its newline);
    splitting into lines and the bounds wait for the next snapshot, or for enough text to
    pile up (`COMPACT_CHARS`, `COMPACT_WRITES`). Most attempts write a line or two and end
    before a flush, so their text is joined once and never split.
    """

    __slots__ = (
        "_chunks",
        "_lock",
        "_partial",
        "_pending",
        "_unsaved",
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
        #: Text written since the last compaction, as written, and its length.
        self._chunks: list[str] = []
        self._pending = 0
        #: Complete lines kept so far (bounded), their bytes, all lines seen, lines dropped.
        #: A list, not a deque: most attempts keep one line, and a deque's first block is
        #: half a kilobyte per attempt (trimming a long list costs only chatty jobs).
        self.kept: list[str] = []
        self.bytes = 0
        self.total = 0
        self.dropped = 0
        #: The start of a line whose end was not written yet.
        self._partial = ""
        self._lock = threading.Lock()
        #: Written since its last snapshot (its sink was told at the first such write).
        self._unsaved = False

    def write(self, text: str) -> None:
        """Add output (complete lines are kept; a partial line waits for its end)."""
        if not text:  # nothing written: nothing to store
            return
        lock = self._lock
        lock.acquire()  # not `with`: this runs for every write of every job
        try:
            self._chunks.append(text)
            self._pending += len(text)
            if self._pending > COMPACT_CHARS or len(self._chunks) > COMPACT_WRITES:
                self._compact()
            told = self._unsaved
            self._unsaved = True
        finally:
            lock.release()
        if not told and self.sink is not None:
            self.sink.changed(self)

    @property
    def unsaved(self) -> bool:
        """Whether it wrote since its last snapshot (nothing stored has those lines yet)."""
        return self._unsaved

    def _compact(self) -> None:
        """Split the pending text into kept lines, within the bounds (lock held)."""
        text = self._partial + "".join(self._chunks)
        self._chunks.clear()
        self._pending = 0
        *complete, self._partial = text.split("\n")
        for line in complete:
            self._keep(line)
        if len(self._partial) > MAX_BYTES:  # a huge line without an end: keep it now
            self._keep(self._partial)
            self._partial = ""

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
            self._unsaved = False  # a write from now on tells the sink again
            if not self.kept and not self._partial and not self.secrets:
                text = "".join(self._chunks)  # the common case: a few whole lines, no more
                if text.endswith("\n") and len(text) <= MAX_BYTES and text.isascii():
                    count = text.count("\n")
                    if count <= MAX_LINES:
                        return JobLog(self.job_id, self.attempt, text[:-1], count, 0, now)
            self._compact()
            partial, total, dropped = self._partial, self.total, self.dropped
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
        self._dirty: set[AttemptLog] = set()
        self._lock = threading.Lock()

    def changed(self, attempt: AttemptLog) -> None:
        """An attempt wrote: store it with the next flush."""
        with self._lock:
            self._dirty.add(attempt)

    def ended(self, attempt: AttemptLog) -> JobLog | None:
        """The attempt's run ended: what it logged and no flush stored yet, for its outcome
        to store (None: nothing). The sink lets go of it at once, so a busy worker does not
        keep a flush interval's worth of ended attempts alive (garbage collection scans
        every one of them, again and again). A write after this is flushed as before."""
        if not attempt.unsaved:
            return None
        # Before the snapshot, so a write in between is in it. No lock: a flush swaps the
        # set on this thread, and a thread's add is one step against this one.
        self._dirty.discard(attempt)
        return attempt.snapshot(time.time())

    @property
    def pending(self) -> bool:
        """Whether some attempt logged since the last flush."""
        return bool(self._dirty)

    async def flush(self) -> None:
        """Write every attempt that changed (nothing to do, nothing written)."""
        if not self._dirty:
            return
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        try:
            now = time.time()
            await self.storage.write_job_logs([a.snapshot(now) for a in dirty])
        except Exception:
            with self._lock:  # try again with the next flush
                self._dirty |= dirty
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
