"""The job inspector: pretty payload, result, error chain, traceback, history, the job's
dependencies and dependents (links, with their status), and actions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import panel as pn

from forge_nb.dashboard.data import Tick
from forge_nb.dashboard.format import (
    STATUS_COLORS,
    duration,
    esc,
    first_line,
    pretty_json,
    utc,
)
from forge_nb.dashboard.pages.base import NOTICE_CSS, Confirm, Context, Notice, run_action
from forge_nb.storage.records import LIVE_STATUSES, JobEvent, JobLog, JobRecord

INSPECTOR_CSS = """
.fnb-insp { font-size: 13px; }
.fnb-insp h4 { margin: 2px 0 6px 0; }
.fnb-insp h5 { margin: 10px 0 3px 0; font-size: 12px; text-transform: uppercase; opacity: .75; }
.fnb-insp pre { margin: 0; padding: 6px 8px; max-height: 260px; overflow: auto;
  background: rgba(128,128,128,.12); border-radius: 4px; white-space: pre-wrap;
  word-break: break-word; font-size: 12px; }
.fnb-insp table { border-collapse: collapse; font-size: 12px; width: 100%; }
.fnb-insp td, .fnb-insp th { padding: 2px 6px; border-bottom: 1px solid rgba(128,128,128,.25);
  text-align: left; vertical-align: top; }
.fnb-insp .badge { padding: 1px 8px; border-radius: 10px; color: #fff; font-weight: 600; }
.fnb-insp .dot { display: inline-block; width: 8px; height: 8px; border-radius: 4px;
  margin-right: 4px; }
"""
#: Dependencies and dependents listed by the inspector (the Workflow view shows them all).
RELATED_SHOWN = 50

EMPTY = '<div class="fnb-insp"><i>Click a row to inspect the job.</i></div>'


def job_link(job_id: str, tab: str = "jobs") -> str:
    """A relative link to a job in a tab (``?tab=jobs&job=ID``): works under any prefix."""
    return f"?tab={quote(tab)}&job={quote(job_id)}"


def related_html(title: str, css: str, jobs: list[JobRecord]) -> str:
    """A table of linked jobs with their status (and first error line), or "" for none."""
    if not jobs:
        return ""
    rows = "".join(
        f'<tr><td><a class="fnb-job-link" href="{esc(job_link(j.id))}">{esc(j.id)}</a></td>'
        f"<td>{esc(j.kind)}</td><td>"
        f'<span class="dot" style="background:{STATUS_COLORS.get(j.status, "#888")}"></span>'
        f"{esc(j.status)}</td><td>{esc(first_line(j.last_error) or '')}</td></tr>"
        for j in jobs[:RELATED_SHOWN]
    )
    more = "<tr><td colspan=4>… and more</td></tr>" if len(jobs) > RELATED_SHOWN else ""
    return f'<h5>{esc(title)}</h5><table class="{css}">{rows}{more}</table>'


def workflow_html(
    job: JobRecord, dependencies: list[JobRecord], dependents: list[JobRecord]
) -> str:
    """The job's place in a workflow: counts, a link to the Workflow view, both lists."""
    if not job.dependencies and not dependents:
        return ""
    met = job.dependencies - job.waiting_on
    many = "+" if len(dependents) > RELATED_SHOWN else ""
    counts = (
        f"depends on {job.dependencies} job(s), {met} done"
        + (f", waiting on {job.waiting_on}" if job.status == "waiting" else "")
        + f"; {min(len(dependents), RELATED_SHOWN)}{many} job(s) depend on it"
    )
    return (
        f'<h5>Workflow</h5><div class="fnb-dep-counts">{esc(counts)} · '
        f'<a class="fnb-workflow-link" href="{esc(job_link(job.id, "workflow"))}">'
        "Workflow view</a></div>"
        + related_html("Dependencies", "fnb-dependencies", dependencies)
        + related_html("Dependents", "fnb-dependents", dependents)
    )


def key_fact(job: JobRecord) -> str:
    """The job's concurrency key; a waiting keyed job without dependencies left to wait
    for is held behind its key's limit."""
    if job.concurrency_key is None:
        return "–"
    held = job.status == "waiting" and job.waiting_on == 0
    return job.concurrency_key + (" (held: its key is at its limit)" if held else "")


def render_job(
    job: JobRecord,
    history: list[JobEvent],
    now: float,
    dependencies: list[JobRecord] | None = None,
    dependents: list[JobRecord] | None = None,
    context: dict[str, Any] | None = None,
    logs: list[JobLog] | None = None,
) -> str:
    """The inspector body for one job; every value from the database is escaped."""
    color = STATUS_COLORS.get(job.status, "#888")
    facts = [
        ("kind", job.kind),
        ("code version", job.code_version or "– (the worker's own handler)"),
        ("queue", job.queue),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("priority", job.priority),
        ("unique key", job.unique_key or "–"),
        ("concurrency key", key_fact(job)),
        ("expires (UTC)", utc(job.expires_at) or "–"),
        ("created (UTC)", utc(job.created_at)),
        ("scheduled (UTC)", f"{utc(job.scheduled_at)}"),
        ("started (UTC)", utc(job.started_at) or "–"),
        ("finished (UTC)", utc(job.finished_at) or "–"),
        ("claimed by", job.claimed_by or "–"),
    ]
    if job.progress is not None:
        facts.append(("progress", f"{job.progress * 100:.0f}% {job.progress_message or ''}"))
    if job.started_at and job.finished_at:
        facts.append(("run time", duration((job.finished_at - job.started_at).total_seconds())))
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    parts = [
        f'<h4>Job {esc(job.id)} <span class="badge" style="background:{color}">'
        f"{esc(job.status)}</span></h4>",
        f"<table>{rows}</table>",
        workflow_html(job, dependencies or [], dependents or []),
        f"<h5>Payload</h5><pre class='fnb-payload'>{esc(pretty_json(job.payload))}</pre>",
    ]
    if context:  # app.propagate'd variables at enqueue, set around the run
        parts.append(f"<h5>Context</h5><pre class='fnb-context'>{esc(pretty_json(context))}</pre>")
    if job.result is not None:
        parts.append(f"<h5>Result</h5><pre>{esc(pretty_json(job.result))}</pre>")
    if job.last_error:
        chain = (
            "\n  ↳ ".join(job.last_error.split(": ")) if ": " in job.last_error else job.last_error
        )
        parts.append(f"<h5>Error chain</h5><pre class='fnb-error-text'>{esc(chain)}</pre>")
    if job.last_traceback:
        parts.append(
            f"<details open><summary>Traceback</summary><pre>{esc(job.last_traceback)}</pre>"
            "</details>"
        )
    for entry in logs or []:  # live while the job runs: the inspector re-reads it each tick
        parts.append(
            f"<h5>Logs, attempt {esc(entry.attempt)}</h5>"
            f"<pre class='fnb-logs'>{esc(entry.text)}</pre>"
        )
    events = "".join(
        f"<tr><td>{esc(utc(e.at))}</td><td>{esc(e.event)}</td><td>{esc(e.attempt)}</td>"
        f"<td>{esc(e.message or '')}</td></tr>"
        for e in history
    )
    parts.append(
        "<h5>History</h5><table><tr><th>at (UTC)</th><th>event</th><th>attempt</th>"
        f"<th>message</th></tr>{events}</table>"
    )
    return f'<div class="fnb-insp">{"".join(parts)}</div>'


class Inspector:
    """Shows one job; refreshes while it is live; retry / cancel / delete it."""

    def __init__(self, ctx: Context, on_change: Callable[[], None] | None = None) -> None:
        self.ctx = ctx
        self.on_change = on_change
        self.job_id: str | None = None
        self.job: JobRecord | None = None
        self._stale = False
        self.body = pn.pane.HTML(
            EMPTY,
            stylesheets=[INSPECTOR_CSS],
            sizing_mode="stretch_width",
            css_classes=["fnb-inspector"],
        )
        self.notice = Notice("fnb-inspector-notice")
        self.confirm = Confirm(self.notice, "inspector")
        self.retry = pn.widgets.Button(
            name="Retry", button_type="primary", width=90, css_classes=["fnb-insp-retry"]
        )
        self.cancel = pn.widgets.Button(
            name="Cancel job", button_type="warning", width=100, css_classes=["fnb-insp-cancel"]
        )
        self.delete = pn.widgets.Button(
            name="Delete", button_type="danger", width=90, css_classes=["fnb-insp-delete"]
        )
        self.retry.on_click(self._retry)
        self.cancel.on_click(self._cancel)
        self.delete.on_click(self._delete)
        self.actions = pn.Row(self.retry, self.cancel, self.delete, visible=False)
        controls = [] if ctx.read_only else [self.actions, self.confirm.panel, self.notice.pane]
        self.panel = pn.Column(
            pn.pane.HTML("<b>Inspector</b>", stylesheets=[NOTICE_CSS]),
            *controls,
            self.body,
            width=460,
            min_height=300,
            styles={"border-left": "1px solid rgba(128,128,128,.35)", "padding-left": "8px"},
        )

    def preselect(self, job_id: str) -> None:
        """Inspect ``job_id`` from the first tick on (the page is still being built)."""
        self.job_id = job_id
        self._stale = True

    def show(self, job_id: str | None) -> None:
        """Inspect ``job_id`` (None clears)."""
        if job_id != self.job_id:
            self.notice.clear()
            self.confirm.dismiss()
        self.job_id = job_id
        self._stale = True
        if job_id is None:
            self.body.object = EMPTY
            self.actions.visible = False
        self.ctx.refresh()

    async def fetch(self, snap: Tick) -> None:
        """Re-read the job when just chosen or still live (waiting, pending, running, failed)."""
        if self.job_id is None:
            return
        if not self._stale and self.job is not None and self.job.status in ("done", "dead"):
            return
        self._stale = False
        job = await self.ctx.app.job(self.job_id)
        self.job = job
        if job is None:
            self.body.object = (
                f'<div class="fnb-insp"><i>Job {esc(self.job_id)} no longer exists.</i></div>'
            )
            self.actions.visible = False
            return
        history = await self.ctx.app.job_history(job.id)
        app = self.ctx.app
        dependencies = await app.dependencies(job.id, RELATED_SHOWN) if job.dependencies else []
        dependents = await app.dependents(job.id, RELATED_SHOWN + 1)
        context = await app.job_context(job.id)
        logs = await app.job_logs(job.id)
        html = render_job(job, history, snap.now, dependencies, dependents, context, logs)
        if html != self.body.object:
            self.body.object = html
        self._update_actions(job)

    def _update_actions(self, job: JobRecord) -> None:
        if self.ctx.read_only:
            self.actions.visible = False
            return
        self.retry.visible = job.status in ("dead", "failed")
        self.cancel.visible = job.status in LIVE_STATUSES
        self.delete.visible = job.status != "running"
        self.actions.visible = True

    def _changed(self) -> None:
        self._stale = True
        if self.on_change is not None:
            self.on_change()
        self.ctx.refresh()

    def _acting_on(self) -> str | None:
        """The shown job's id; None when no job is shown or the session is read-only."""
        return None if self.ctx.read_only else self.job_id

    def _ask(self, question: str, act: Callable[[str], Awaitable[str]]) -> None:
        """Ask ``question`` (``{}``: the job id); on Confirm, ``act`` on the shown job."""
        job_id = self._acting_on()
        if job_id is None:
            return

        async def action() -> str:
            message = await act(job_id)
            self._changed()
            return message

        self.confirm.ask(question.format(job_id), action)

    async def _retry(self, _event: Any) -> None:
        job_id = self._acting_on()
        if job_id is None:
            return

        async def action() -> str:
            job = await self.ctx.app.retry(job_id)
            return f"job {job.id} is {job.status} again"

        await run_action(action, self.notice)
        self._changed()

    async def _cancel(self, _event: Any) -> None:
        async def cancel(job_id: str) -> str:
            return f"job {job_id}: {await self.ctx.app.cancel(job_id)}"

        self._ask("Cancel job {}?", cancel)

    async def _delete(self, _event: Any) -> None:
        async def delete(job_id: str) -> str:
            deleted = await self.ctx.app.delete(job_id)
            return f"job {job_id} deleted" if deleted else f"job {job_id} was already gone"

        self._ask("Delete job {}? This cannot be undone.", delete)
