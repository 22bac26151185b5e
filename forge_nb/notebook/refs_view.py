"""Live views of enqueued jobs: one `JobView` per `JobRef`, one `JobsSummary` per list.

A cell ending in a `JobRef` shows its status, progress, result or error until
the job ends. A cell ending in the list ``enqueue_many`` returned shows ONE
compact view for all of them (n done / dead / running / pending / waiting, one
progress bar, and the failures: dead jobs with their errors) instead of hundreds
of widgets. It is the notebook's progress view for a workflow, like Dask's
``progress()``: its ``waiting`` jobs are the ones whose dependencies are not done.

Jobs finishing in this process wake the views at once (the App's completion
waiters); jobs run elsewhere are polled, within a bounded budget per refresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from forge_nb.notebook.assets import CONTROLS_CSS, CONTROLS_ESM
from forge_nb.notebook.liveness import BEAT_S, Beat
from forge_nb.notebook.loop import TaskSet, current_loop
from forge_nb.notebook.snapshot import result_text, truncate, truncate_head
from forge_nb.storage.records import STATUSES, TERMINAL_STATUSES

if TYPE_CHECKING:
    from forge_nb.runtime.refs import JobRef
    from forge_nb.storage.records import JobRecord

#: Seconds between polls of a job that is not finished.
REFRESH_S = 0.5
#: Unfinished jobs of a summary looked up per refresh (jobs finishing here need no lookup).
SUMMARY_POLL_BUDGET = 100
#: Finished-here jobs whose final status (done or dead) is read per refresh.
SUMMARY_FINAL_BUDGET = 500
#: Dead jobs a summary lists with their errors (the count covers the rest).
FAILURES_SHOWN = 20


#: Lines of a job's log its view shows (the tail of the latest attempt).
LOG_TAIL_LINES = 50


class JobView(anywidget.AnyWidget):
    """One job, live: status, attempt, progress bar and message, then result or error
    (the error chain, with the traceback behind a toggle)."""

    _esm = CONTROLS_ESM
    _css = CONTROLS_CSS
    _view = traitlets.Unicode("job").tag(sync=True)

    job_id = traitlets.Unicode("").tag(sync=True)
    kind = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    attempts = traitlets.Int(0).tag(sync=True)
    max_attempts = traitlets.Int(0).tag(sync=True)
    progress = traitlets.Float(None, allow_none=True).tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    result = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    traceback = traitlets.Unicode("").tag(sync=True)
    #: The latest attempt's captured output, its last `LOG_TAIL_LINES` lines.
    logs = traitlets.Unicode("").tag(sync=True)
    notice = traitlets.Dict().tag(sync=True)
    _action = traitlets.Dict().tag(sync=True)
    #: True while the view follows the job; ``beat`` proves it (see `liveness`).
    live = traitlets.Bool(False).tag(sync=True)
    beat = traitlets.Int(0).tag(sync=True)
    beat_s = traitlets.Float(BEAT_S).tag(sync=True)

    def __init__(self, ref: JobRef, *, interval: float = REFRESH_S, **kwargs: Any) -> None:
        super().__init__(job_id=ref.id, kind=ref.kind, **kwargs)
        self.ref = ref
        self.interval = float(interval)
        loop = current_loop()
        self._updater = TaskSet(loop)
        self._actions = TaskSet(loop)
        self._beat = Beat(self, loop)
        if self._updater.spawn(self._run(), name=f"forge-nb job view {ref.id}"):
            self.live = True
            self._beat.start()
        self.on_msg(lambda _w, content, _b: self._act(content))

    async def refresh(self) -> bool:
        """Read the job once; True when it is finished (or gone)."""
        job = await self.ref.app.job(self.ref.id)
        if job is None:
            self.status = "missing"
            self.error = "this job no longer exists (deleted, or purged by retention)"
            return True
        with self.hold_sync():
            self.kind = job.kind
            self.status = job.status
            self.attempts = job.attempts
            self.max_attempts = job.max_attempts
            self.progress = job.progress
            self.message = job.progress_message or flow_note(job)
            if job.status == "done":
                self.result = result_text(job.result)
                self.error = self.traceback = ""
            elif job.last_error and job.status in ("failed", "dead"):
                self.error = truncate(job.last_error)
                self.traceback = truncate_head(job.last_traceback or "")
            else:
                self.error = self.traceback = ""
        logs = await self.ref.app.job_logs(self.ref.id)
        self.logs = "\n".join(logs[-1].text.split("\n")[-LOG_TAIL_LINES:]) if logs else ""
        return job.status in TERMINAL_STATUSES

    async def _run(self) -> None:
        app = self.ref.app
        try:
            while True:
                # Take the waiter before reading, so a finish in between is not missed.
                waiter = app._completion_waiter(self.ref.id)
                try:
                    if await self.refresh():
                        return
                except Exception as exc:
                    self.notice = {"text": f"cannot read the job: {exc}", "level": "error"}
                try:
                    await asyncio.wait_for(waiter.wait(), self.interval)
                except TimeoutError:
                    pass
        finally:
            self.live = False
            self._beat.stop()

    @traitlets.observe("_action")
    def _on_action_trait(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._act(change["new"])

    def _act(self, msg: Any) -> None:
        if isinstance(msg, dict) and msg.get("type") == "cancel":
            self._actions.spawn(self._cancel(msg.get("seq")), name=f"forge-nb cancel {self.ref.id}")

    async def _cancel(self, seq: Any) -> None:
        try:
            status = await self.ref.cancel()
            self.notice = {"text": f"cancel requested: {status}", "level": "info", "seq": seq}
            await self.refresh()
        except Exception as exc:
            self.notice = {"text": f"cancel failed: {exc}", "level": "error", "seq": seq}

    def close(self) -> None:
        """Stop updating, then close the comm."""
        self._updater.cancel()
        self._beat.stop()
        self.live = False
        super().close()


class JobsSummary(anywidget.AnyWidget):
    """Many jobs as one line: counts per status, one stacked progress bar, and the first
    `FAILURES_SHOWN` dead jobs with their errors (what to look at first when a workflow fails)."""

    _esm = CONTROLS_ESM
    _css = CONTROLS_CSS
    _view = traitlets.Unicode("summary").tag(sync=True)

    counts = traitlets.Dict().tag(sync=True)
    kinds = traitlets.Unicode("").tag(sync=True)
    #: Dead jobs in the order they were seen: ``{"id", "kind", "error"}`` each.
    failures: traitlets.List[dict[str, str]] = traitlets.List().tag(sync=True)
    #: True while the summary follows its jobs; ``beat`` proves it (see `liveness`).
    live = traitlets.Bool(False).tag(sync=True)
    beat = traitlets.Int(0).tag(sync=True)
    beat_s = traitlets.Float(BEAT_S).tag(sync=True)

    def __init__(
        self, refs: Iterable[JobRef], *, interval: float = REFRESH_S, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.refs = list(refs)
        self.interval = float(interval)
        names = sorted({r.kind for r in self.refs if r.kind})
        self.kinds = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
        #: Last known status of each job; new jobs start pending, duplicates are looked up.
        self._status: dict[str, str] = {
            r.id: ("pending" if r.outcome == "created" else "unknown") for r in self.refs
        }
        self._checked: dict[str, float] = {}
        self._waiters: dict[str, asyncio.Event] = {}
        self.counts = self._tally()
        loop = current_loop()
        self._updater = TaskSet(loop)
        self._beat = Beat(self, loop)
        if self.refs and self._updater.spawn(self._run(), name="forge-nb jobs summary"):
            self.live = True
            self._beat.start()

    def _tally(self) -> dict[str, int]:
        out: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for status in self._status.values():
            out[status if status in out else "pending"] += 1
        return out

    async def refresh(self) -> bool:
        """Update the counts once; True when every job is finished."""
        if not self.refs:
            return True
        app = self.refs[0].app
        for ref in self.refs:
            if ref.id not in self._waiters and self._status[ref.id] not in TERMINAL_STATUSES:
                self._waiters[ref.id] = app._completion_waiter(ref.id)
        open_ids = [i for i, s in self._status.items() if s not in TERMINAL_STATUSES]
        failures: list[dict[str, str]] = list(self.failures)
        # Finished in this process: only the final status (done or dead) is unknown.
        fired = [i for i in open_ids if self._waiters[i].is_set()][:SUMMARY_FINAL_BUDGET]
        # The rest (running elsewhere, or not started): the least recently checked first.
        fired_set = set(fired)
        others = sorted((i for i in open_ids if i not in fired_set), key=self._last_checked)
        now = time.monotonic()
        for job_id in fired + others[:SUMMARY_POLL_BUDGET]:
            job = await app.job(job_id)
            self._checked[job_id] = now
            # A job deleted meanwhile is over too; it counts with the dead ones.
            self._status[job_id] = "dead" if job is None else job.status
            if self._status[job_id] in TERMINAL_STATUSES:
                self._waiters.pop(job_id, None)
            if self._status[job_id] == "dead" and len(failures) < FAILURES_SHOWN:
                failures.append(failure_entry(job_id, job))
        with self.hold_sync():
            if len(failures) != len(self.failures):
                self.failures = failures
            self.counts = self._tally()
        return all(s in TERMINAL_STATUSES for s in self._status.values())

    def _last_checked(self, job_id: str) -> float:
        return self._checked.get(job_id, float("-inf"))

    async def _run(self) -> None:
        try:
            while True:
                try:
                    if await self.refresh():
                        return
                except Exception:
                    pass  # the database may be busy or restarting: try again next time
                await asyncio.sleep(self.interval)
        finally:
            self.live = False
            self._beat.stop()

    def close(self) -> None:
        """Stop updating, then close the comm."""
        self._updater.cancel()
        self._beat.stop()
        self.live = False
        super().close()


def flow_note(job: JobRecord) -> str:
    """What holds a job that has not started: its key's limit, or its expiry deadline."""
    notes = []
    if job.concurrency_key is not None and job.status == "waiting" and job.waiting_on == 0:
        notes.append(f"held: key {job.concurrency_key} is at its limit")
    if job.expires_at is not None and job.status in ("waiting", "pending", "failed"):
        notes.append(f"expires {job.expires_at.strftime('%Y-%m-%d %H:%M:%S')} UTC")
    return "; ".join(notes)


def failure_entry(job_id: str, job: JobRecord | None) -> dict[str, str]:
    """One line of a summary's failures (a job deleted meanwhile says so)."""
    if job is None:
        return {"id": job_id, "kind": "", "error": "deleted"}
    return {"id": job_id, "kind": job.kind, "error": truncate(job.last_error or "dead", 300)}


def display_ref(ref: JobRef) -> JobView:
    """Show a live `JobView` for ``ref`` in the current cell's output."""
    from IPython.display import display

    view = JobView(ref)
    display(view)
    return view


def display_refs(refs: Iterable[JobRef]) -> JobsSummary:
    """Show ONE live `JobsSummary` for many refs in the current cell's output."""
    from IPython.display import display

    view = JobsSummary(refs)
    display(view)
    return view
