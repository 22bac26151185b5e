"""`QueueWidget`: live queue controls for a notebook (``app.widget()``).

State goes Python → browser in a few small synced traits, written by ONE
task on the kernel loop at most ``1 / interval`` times a second and batched
with ``hold_sync`` (one message per refresh, whatever the backlog; the running
list is capped). Actions come back browser → Python as custom messages
(``model.send``), or through the synced ``_action`` trait on hosts without
``model.send``; each becomes a task on the loop, so a click never blocks the kernel.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from forge_nb.notebook.assets import CONTROLS_CSS, CONTROLS_ESM
from forge_nb.notebook.liveness import BEAT_S, Beat
from forge_nb.notebook.loop import TaskSet, current_loop
from forge_nb.notebook.snapshot import SnapshotReader

if TYPE_CHECKING:
    from forge_nb.runtime.app import App

#: Default seconds between refreshes (a few per second at most).
REFRESH_S = 0.5
#: Longest wait between refreshes while the database keeps failing.
MAX_BACKOFF_S = 10.0
#: Running jobs listed by name; the rest are "n more".
MAX_RUNNING_SHOWN = 20

ACTIONS = ("cancel", "pause", "resume", "workers", "retry_dead")


#: The live widget of each App: re-running ``app.widget()`` replaces (closes) the previous
#: one, so re-run cells do not pile up pollers. Display one widget twice for two views.
_current: weakref.WeakKeyDictionary[App, QueueWidget] = weakref.WeakKeyDictionary()


def app_closed(app: App, seen_open: bool) -> bool:
    """Whether the App was closed after the widget saw it open (then stop polling:
    querying again would silently reopen its connections)."""
    return seen_open and app.closed


class QueueWidget(anywidget.AnyWidget):
    """Per-queue live counts, throughput sparkline, running jobs with progress and cancel,
    pause/resume, worker −/+ and retry-all-dead. Closing the widget stops its updates;
    so does creating another one for the same App (a re-run cell)."""

    _esm = CONTROLS_ESM
    _css = CONTROLS_CSS
    _view = traitlets.Unicode("queues").tag(sync=True)

    source = traitlets.Unicode("").tag(sync=True)
    live = traitlets.Bool(False).tag(sync=True)
    #: Bumped every ``beat_s`` seconds while live: the view shows "stopped" when it stalls.
    beat = traitlets.Int(0).tag(sync=True)
    beat_s = traitlets.Float(BEAT_S).tag(sync=True)
    queues: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    running: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    running_total = traitlets.Int(0).tag(sync=True)
    #: Kinds with waiting jobs that no live worker runs: {"queue", "kind", "jobs", "message"}.
    stranded: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    #: The last action's outcome: {"text", "level": "info"|"error", "seq"}.
    notice = traitlets.Dict().tag(sync=True)
    #: Fallback action channel for hosts whose model has no ``send``.
    _action = traitlets.Dict().tag(sync=True)

    def __init__(
        self,
        app: App,
        *,
        interval: float = REFRESH_S,
        max_running: int = MAX_RUNNING_SHOWN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self.app = app
        self.interval = float(interval)
        self.source = app.safe_url
        self._reader = SnapshotReader(app, max_running)
        loop = current_loop()
        self._actions = TaskSet(loop)
        self._updater = TaskSet(loop)
        self._beat = Beat(self, loop)
        self._wake: asyncio.Event | None = None
        self.on_msg(self._on_custom_msg)
        previous = _current.get(app)
        if previous is not None:
            previous.close()
        _current[app] = self
        if self._updater.spawn(self._run(), name="forge-nb widget updates"):
            self.live = True
            self._beat.start()

    # -- Python → browser ------------------------------------------------------------------
    async def refresh(self) -> None:
        """Read the App once and push the new state (one batched message)."""
        snap = await self._reader.read()
        with self.hold_sync():
            self.queues = snap.queues
            self.running = snap.running
            self.running_total = snap.running_total
            self.stranded = snap.stranded

    async def _run(self) -> None:
        self._wake = asyncio.Event()
        delay = self.interval
        seen_open = False
        try:
            while not app_closed(self.app, seen_open):
                try:
                    await self.refresh()
                    seen_open = True
                    delay = self.interval
                except Exception as exc:
                    self._notice(f"cannot read the queue: {exc}", "error")
                    delay = min(delay * 2, MAX_BACKOFF_S)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
        finally:
            self.live = False
            self._beat.stop()

    def _refresh_soon(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def close(self) -> None:
        """Stop updating, then close the comm."""
        self._updater.cancel()
        self._beat.stop()
        self.live = False
        if _current.get(self.app) is self:
            del _current[self.app]
        super().close()

    # -- browser → Python ------------------------------------------------------------------
    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        self.handle_action(content)

    @traitlets.observe("_action")
    def _on_action_trait(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.handle_action(change["new"])

    def handle_action(self, msg: Any) -> None:
        """Run a front-end action as a task on the loop (never blocks the caller)."""
        if not isinstance(msg, dict) or msg.get("type") not in ACTIONS:
            kind = msg.get("type") if isinstance(msg, dict) else type(msg).__name__
            self._notice(f"unknown action {kind!r}", "error", msg)
            return
        if not self._actions.spawn(self._perform(msg), name=f"forge-nb {msg['type']}"):
            self._notice("no running event loop to act on", "error", msg)

    async def _perform(self, msg: dict[str, Any]) -> None:
        app = self.app
        kind = msg["type"]
        try:
            if kind == "cancel":
                job_id = str(msg.get("job_id", ""))
                if not job_id:
                    raise ValueError("cancel needs a job_id")
                status = await app.cancel(job_id)
                if status is None:
                    raise LookupError(f"unknown job {job_id}")
                text = f"job {job_id}: " + (
                    "cancelling" if status == "running" else f"{status} (cancel)"
                )
            else:
                queue = msg.get("queue")
                if not isinstance(queue, str) or not queue:
                    raise ValueError(f"{kind} needs a queue name")
                if kind == "pause":
                    await app.pause_queue(queue)
                    text = f"paused {queue}"
                elif kind == "resume":
                    await app.resume_queue(queue)
                    text = f"resumed {queue}"
                elif kind == "workers":
                    delta = msg.get("delta")
                    if not isinstance(delta, int) or isinstance(delta, bool):
                        raise ValueError(f"workers needs an integer delta, got {delta!r}")
                    text = await self._change_workers(queue, delta)
                else:  # retry_dead
                    n = await app.retry_all("dead", queue=queue)
                    text = f"retried {n} dead job{'s' if n != 1 else ''} of {queue}"
            self._notice(text, "info", msg)
        except Exception as exc:
            self._notice(f"{kind} failed: {exc}", "error", msg)
        finally:
            self._refresh_soon()

    async def _change_workers(self, queue: str, delta: int) -> str:
        configs = {q.name: q for q in await self.app.queues()}
        config = configs.get(queue)
        if config is None:
            raise LookupError(f"unknown queue {queue!r}")
        workers = max(0, config.workers + delta)
        await self.app.set_queue_config(queue, workers=workers)
        return f"{queue}: {workers} worker{'s' if workers != 1 else ''}"

    def _notice(self, text: str, level: str, msg: Any = None) -> None:
        seq = msg.get("seq") if isinstance(msg, dict) else None
        self.notice = {"text": text, "level": level, "seq": seq, "at": time.time()}

    async def settle(self) -> None:
        """Wait until the actions sent so far are done (handy in tests and scripts)."""
        await self._actions.wait()
