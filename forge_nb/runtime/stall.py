"""Who blocked the event loop: look at the loop thread while it is stuck, then say so.

A blocked loop stops every job, widget and dashboard on it, so the warning must name the
real cause. Guessing from the job kinds in flight blamed innocent jobs (and told users to
turn handlers into a plain ``def`` that already were one: sync handlers run in threads).
Instead a small watchdog thread notices when the loop's probe is late and records where
the loop thread is at that moment (``sys._current_frames``): a notebook cell's line, an
async handler's line (with its job), some other task's code, or the event loop's own
machinery, which means the thread was waiting for the GIL held by other threads.
"""

from __future__ import annotations

import asyncio
import linecache
import os
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

#: How often the watchdog thread looks, and how late a probe must be to take a sample.
WATCH_S = 0.05
SAMPLE_AFTER_S = 0.25

_LIBRARY_DIRS = tuple(
    {
        os.path.normcase(os.path.realpath(p)) + os.sep
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if (p := sysconfig.get_paths().get(key))
    }
)
_FORGE_DIR = os.path.normcase(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))) + os.sep
#: (filename, line, function) of a frame.
Location = tuple[str, int, str]


@dataclass(frozen=True, slots=True)
class RunningJobInfo:
    """What the report needs of a job running at the stall."""

    kind: str
    job_id: str
    task: asyncio.Task[Any] | None
    in_thread: bool


@dataclass
class StallSample:
    """Where the loop thread was while the loop was stuck."""

    #: (filename, line, function) of the innermost frame of code that is not a library's.
    where: Location | None
    #: The innermost frame of all (library code, when ``where`` is None).
    innermost: Location | None
    #: The loop thread was inside the event loop's own machinery (waiting for the GIL).
    in_loop_machinery: bool
    task_name: str | None
    job: RunningJobInfo | None
    sync_kinds: list[str] = field(default_factory=list)
    #: The watch thread could not run either (the GIL was held): the frame is where the
    #: loop thread went on afterwards, not necessarily what held it.
    watch_starved: bool = False


class StallWatch:
    """A daemon thread sampling the loop thread whenever `beat` is late."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, jobs: Callable[[], Iterable[RunningJobInfo]]
    ) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()  # made on the loop's thread
        self._jobs = jobs
        self._last_beat = time.monotonic()
        self._sample: StallSample | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="forge-nb stall watch", daemon=True
        )
        self._thread.start()

    def beat(self) -> None:
        """The loop is turning (called from the loop's probe)."""
        self._last_beat = time.monotonic()

    def take(self) -> StallSample | None:
        """The sample of the stall that just ended, if one was taken."""
        sample, self._sample = self._sample, None
        return sample

    def stop(self) -> None:
        """End the thread."""
        self._stop.set()

    def _watch(self) -> None:
        woke = time.monotonic()
        while not self._stop.wait(WATCH_S):
            now = time.monotonic()
            starved = now - woke > SAMPLE_AFTER_S
            woke = now
            if self._sample is None and now - self._last_beat > SAMPLE_AFTER_S:
                try:
                    self._sample = self._capture(starved)
                except Exception:  # never let the watchdog die of a sampling hiccup
                    self._sample = None

    def _capture(self, starved: bool) -> StallSample:
        frame = sys._current_frames().get(self._loop_thread)
        task = asyncio.current_task(self._loop)
        jobs = list(self._jobs())
        job = next((j for j in jobs if task is not None and j.task is task), None)
        where, innermost = user_frame(frame)
        return StallSample(
            where=where,
            innermost=innermost,
            in_loop_machinery=frame is not None and _is_loop_machinery(frame),
            task_name=None if task is None else task.get_name(),
            job=job,
            sync_kinds=sorted({j.kind for j in jobs if j.in_thread}),
            watch_starved=starved,
        )


def user_frame(frame: FrameType | None) -> tuple[Location | None, Location | None]:
    """The innermost frame of code that is neither a library's nor forge-nb's, and the
    innermost frame of all, as (filename, line, function)."""
    innermost: Location | None = None
    while frame is not None:
        filename = frame.f_code.co_filename
        here = (filename, frame.f_lineno, frame.f_code.co_name)
        innermost = innermost or here
        if not _is_library(filename):
            return here, innermost
        frame = frame.f_back
    return None, innermost


def _is_library(filename: str) -> bool:
    if filename.startswith("<frozen"):
        return True
    path = os.path.normcase(os.path.realpath(filename))
    return path.startswith(_LIBRARY_DIRS) or path.startswith(_FORGE_DIR)


def _is_loop_machinery(frame: FrameType) -> bool:
    filename = frame.f_code.co_filename
    return filename.endswith(os.sep + "selectors.py") or os.sep + "asyncio" + os.sep in filename


def describe(sample: StallSample | None, seconds: float) -> str:
    """The warning: what blocked the loop, and what to do about it."""
    head = f"event loop blocked for {seconds:.1f} s"
    if sample is None or sample.watch_starved:
        kinds = ", ".join(sample.sync_kinds) if sample is not None else ""
        threads = f" (sync jobs running in threads: {kinds})" if kinds else ""
        after = ""
        if sample is not None and sample.where is not None:
            after = f"; the loop thread then ran {code_location(*sample.where)}"
        return (
            f"{head}; the stall watch could not run either, so the GIL was held throughout: "
            f"by C code on the loop, or in a thread{threads}{after}"
        )
    if sample.where is None and not sample.in_loop_machinery and sample.innermost is not None:
        task = f" (task {sample.task_name!r})" if sample.task_name else ""
        return f"{head} by library code on the loop{task} at {code_location(*sample.innermost)}"
    if sample.in_loop_machinery or sample.where is None:
        kinds = ", ".join(sample.sync_kinds)
        held = (
            f"sync jobs running in threads ({kinds}) held it: long pure-Python work, or C code "
            "that keeps the GIL, in a thread slows the loop too"
            if kinds
            else "another thread held it"
        )
        return f"{head}: its thread was waiting for the GIL; {held}"
    at = code_location(*sample.where)
    if sample.job is not None:
        job = sample.job
        return (
            f"{head} by job {job.kind!r} ({job.job_id}), an async handler, at {at}: "
            "blocking calls in an async def stop every job on the loop; await instead, or "
            "make it a plain def (plain functions run in a thread)"
        )
    if is_cell(sample.where[0]):
        return (
            f"{head} by {at}: while a cell runs blocking code, jobs, widgets and the dashboard "
            "on this kernel wait; await instead (e.g. await asyncio.sleep), or run it in a "
            "thread (await asyncio.to_thread(...))"
        )
    task = f" (task {sample.task_name!r})" if sample.task_name else ""
    return f"{head} by code running on the loop{task} at {at}: await instead of blocking"


def code_location(filename: str, line: int, function: str) -> str:
    """``notebook cell In[5], line 3 (`time.sleep(3)`)`` or ``file.py:12 in fn (`…`)``."""
    source = linecache.getline(filename, line).strip()
    quoted = f" (`{source[:80]}`)" if source else ""
    cell = _cell_label(filename)
    if cell is not None:
        return f"notebook cell {cell}, line {line}{quoted}"
    return f"{filename}:{line} in {function}{quoted}"


def is_cell(filename: str) -> bool:
    """Whether ``filename`` names code an IPython kernel compiled from a cell."""
    return _cell_label(filename) is not None or filename.startswith("<ipython-input-")


def _cell_label(filename: str) -> str | None:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    compiler = getattr(shell, "compile", None)
    try:
        label = compiler.format_code_name(filename) if compiler is not None else None
    except Exception:
        return None
    return label[1] if label else None
