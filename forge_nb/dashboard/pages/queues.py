"""Queues: live-edit workers, pause, retention windows and backoff, with a delay preview.

Config lives in the database; workers in every process pick a change up on
their next tick, so nothing restarts. Edits are held in the form until Save,
and a change made elsewhere does not overwrite a form being edited.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import panel as pn

from forge_nb.dashboard.charts import BackoffPreview
from forge_nb.dashboard.data import Tick
from forge_nb.dashboard.flags import FLAG_CSS, stranded_html
from forge_nb.dashboard.format import css_slug, duration, esc
from forge_nb.dashboard.pages.base import Context, Notice, Page, run_action
from forge_nb.dashboard.rate_templates import templates_html
from forge_nb.runtime.outcomes import backoff_delay
from forge_nb.storage.records import STATUSES, QueueConfig, RateLimit, RateLimitTemplate

PREVIEW_ATTEMPTS = 10
HOUR = 3600.0
DAY = 86400.0


def delay_schedule(config: QueueConfig, attempts: int = PREVIEW_ATTEMPTS) -> list[float]:
    """Upper bound of the delay after each failed attempt (jitter draws uniformly below it)."""
    bound = replace(config, backoff_jitter=False)
    return [backoff_delay(bound, n) for n in range(1, attempts + 1)]


class QueueEditor:
    """One queue's card: figures, form, Save, Pause/Resume and the backoff preview."""

    def __init__(self, ctx: Context, config: QueueConfig) -> None:
        self.ctx = ctx
        self.name = config.name
        slug = css_slug(config.name)
        disabled = ctx.read_only

        def count(name: str, css: str, width: int) -> Any:
            """A form field that takes a whole number from 0 to 10,000, found by its
            ``css`` class (with and without the queue's slug)."""
            return pn.widgets.IntInput(
                name=name,
                start=0,
                end=10_000,
                width=width,
                disabled=disabled,
                css_classes=[f"{css}-{slug}", css],
            )

        def number(name: str, step: float, width: int) -> Any:
            """A form field that takes a number of zero or more."""
            return pn.widgets.FloatInput(
                name=name, start=0, step=step, width=width, disabled=disabled
            )

        def switch(name: str) -> Any:
            """A form checkbox, lowered to line up with the number fields' inputs."""
            return pn.widgets.Checkbox(name=name, disabled=disabled, margin=(28, 10, 5, 10))

        self.workers = count("workers (per process)", "fnb-workers", 150)
        self.global_limit = count("global limit (all processes; 0: none)", "fnb-global-limit", 230)
        self.retain_done = number("keep done (hours)", 1, 140)
        self.retain_dead = number("keep dead (days)", 1, 140)
        self.backoff_enabled = switch("backoff on")
        self.base = number("base (s)", 0.5, 110)
        self.max = number("max (s)", 10, 110)
        self.jitter = switch("full jitter")
        self.state = pn.pane.HTML(
            "", margin=(5, 10), sizing_mode="stretch_width", css_classes=[f"fnb-queue-state-{slug}"]
        )
        self.flags = pn.pane.HTML(
            "",
            stylesheets=[FLAG_CSS],
            sizing_mode="stretch_width",
            css_classes=[f"fnb-queue-stranded-{slug}"],
        )
        self.schedule_text = pn.pane.HTML("", sizing_mode="stretch_width")
        self.preview = BackoffPreview(PREVIEW_ATTEMPTS)
        self.notice = Notice(f"fnb-queue-notice-{slug}")
        self.form = [
            self.workers,
            self.retain_done,
            self.retain_dead,
            self.backoff_enabled,
            self.base,
            self.max,
            self.jitter,
            self.global_limit,
        ]
        for widget in self.form[3:-1]:
            widget.param.watch(lambda _e: self._redraw_preview(), "value")
        controls: list[Any] = []
        if not ctx.read_only:
            self.save = pn.widgets.Button(
                name="Save",
                button_type="primary",
                width=90,
                css_classes=[f"fnb-save-{slug}", "fnb-save"],
            )
            self.pause = pn.widgets.Button(
                name="Pause",
                button_type="warning",
                width=100,
                css_classes=[f"fnb-pause-{slug}", "fnb-pause"],
            )
            self.save.on_click(self._save)
            self.pause.on_click(self._toggle_pause)
            controls = [self.save, self.pause]
        self.synced: QueueConfig | None = None
        self.set_form(config)
        self.synced = config
        self.card = pn.Card(
            self.state,
            self.flags,
            pn.Row(self.workers, self.global_limit, self.retain_done, self.retain_dead, *controls),
            pn.Row(self.backoff_enabled, self.base, self.max, self.jitter),
            self.notice.pane,
            self.schedule_text,
            pn.pane.Bokeh(self.preview.fig, sizing_mode="stretch_width"),
            title=f"queue {esc(config.name)}",  # Panel puts the title in HTML as is
            sizing_mode="stretch_width",
            collapsible=True,
            css_classes=[f"fnb-queue-{slug}", "fnb-queue-card"],
        )
        self._redraw_preview()

    # -- form <-> config ------------------------------------------------------------------------
    def set_form(self, config: QueueConfig) -> None:
        """Show ``config`` in the form."""
        self.workers.value = config.workers
        self.retain_done.value = round(config.retain_done_seconds / HOUR, 3)
        self.retain_dead.value = round(config.retain_dead_seconds / DAY, 3)
        self.backoff_enabled.value = config.backoff_enabled
        self.base.value = config.backoff_base_seconds
        self.max.value = config.backoff_max_seconds
        self.jitter.value = config.backoff_jitter
        self.global_limit.value = config.global_limit

    def form_config(self, base: QueueConfig) -> QueueConfig:
        """``base`` with the form's values."""
        return replace(
            base,
            workers=int(self.workers.value or 0),
            retain_done_seconds=float(self.retain_done.value or 0) * HOUR,
            retain_dead_seconds=float(self.retain_dead.value or 0) * DAY,
            backoff_enabled=bool(self.backoff_enabled.value),
            backoff_base_seconds=float(self.base.value or 0),
            backoff_max_seconds=float(self.max.value or 0),
            backoff_jitter=bool(self.jitter.value),
            global_limit=int(self.global_limit.value or 0),
        )

    def dirty(self) -> bool:
        """The form differs from the last config it showed (an edit in progress)."""
        return self.synced is not None and self.form_config(self.synced) != _rounded(self.synced)

    def _redraw_preview(self) -> None:
        base = self.synced or QueueConfig(self.name)
        config = self.form_config(base)
        delays = delay_schedule(config) if config.backoff_enabled else [0.0] * PREVIEW_ATTEMPTS
        self.preview.update(delays, config.backoff_jitter and config.backoff_enabled)
        if not config.backoff_enabled:
            text = "Backoff off: a failed job is retried at once."
        else:
            listed = ", ".join(f"#{i} {duration(d)}" for i, d in enumerate(delays, 1))
            jitter = (
                " With full jitter each wait is drawn uniformly between 0 and that bound."
                if config.backoff_jitter
                else ""
            )
            text = (
                f"Wait after failed attempt n = min(max, base·2<sup>n−1</sup>): {esc(listed)}; "
                f"{esc(duration(sum(delays)))} in total for {PREVIEW_ATTEMPTS} attempts.{jitter}"
            )
        self.schedule_text.object = f"<span style='font-size:12px'>{text}</span>"

    # -- live values ----------------------------------------------------------------------------
    def update(self, config: QueueConfig, snap: Tick) -> None:
        """Show live counts; take a new config unless the form is being edited."""
        if config != self.synced:
            if not self.dirty():
                self.set_form(config)
                self._redraw_preview()
            self.synced = config
        counts = snap.counts.get(self.name, {})
        slots = [p for p in snap.processes if p.queue == self.name]
        busy = sum(1 for p in slots if p.current_job)
        state = (
            '<b style="color:#e9a23b">paused</b>'
            if config.paused
            else '<b style="color:#2a9d8f">active</b>'
        )
        figures = " · ".join(f"{s} {counts.get(s, 0):,}" for s in STATUSES)
        self.state.object = (
            f"<span style='font-size:13px'>{state} · {figures} · worker slots live: "
            f"{len(slots)} ({busy} busy)</span>"
        )
        flags = stranded_html(snap.stranded, queue=self.name)
        if self.flags.object != flags:
            self.flags.object = flags
        if not self.ctx.read_only:
            self.pause.name = "Resume" if config.paused else "Pause"
            self.pause.button_type = "success" if config.paused else "warning"

    # -- actions ----------------------------------------------------------------------------------
    async def _save(self, _event: Any) -> None:
        base = self.synced or QueueConfig(self.name)
        wanted = self.form_config(base)
        knobs = {
            field: getattr(wanted, field)
            for field in (
                "workers",
                "retain_done_seconds",
                "retain_dead_seconds",
                "backoff_enabled",
                "backoff_base_seconds",
                "backoff_max_seconds",
                "backoff_jitter",
                "global_limit",
            )
            if getattr(wanted, field) != getattr(_rounded(base), field)
        }
        if not knobs:
            self.notice.show("nothing changed", "info")
            return

        async def action() -> str:
            config = await self.ctx.app.set_queue_config(self.name, **knobs)
            self.synced = config
            self.set_form(config)
            return f"queue {self.name}: saved {', '.join(sorted(knobs))}"

        await run_action(action, self.notice)
        self.ctx.source.invalidate("queues")
        self.ctx.refresh()

    async def _toggle_pause(self, _event: Any) -> None:
        paused = bool(self.synced and self.synced.paused)

        async def action() -> str:
            if paused:
                self.synced = await self.ctx.app.resume_queue(self.name)
                return f"queue {self.name} resumed"
            self.synced = await self.ctx.app.pause_queue(self.name)
            return f"queue {self.name} paused: running jobs finish, nothing new is claimed"

        await run_action(action, self.notice)
        self.ctx.source.invalidate("queues")
        self.ctx.refresh()


def _rounded(config: QueueConfig) -> QueueConfig:
    """The config as the form can show it (retention rounded like `set_form`)."""
    return replace(
        config,
        retain_done_seconds=round(config.retain_done_seconds / HOUR, 3) * HOUR,
        retain_dead_seconds=round(config.retain_dead_seconds / DAY, 3) * DAY,
    )


def rate_limits_html(limits: list[RateLimit], now: float) -> str:
    """The token buckets every process shares (escaped)."""
    if not limits:
        return "<span style='font-size:13px'><b>Rate limits</b>: none defined.</span>"
    rows = "".join(
        f"<tr><td>{esc(r.scope)}</td><td>{r.tokens:,.1f} / {r.capacity:,.1f}</td>"
        f"<td>{r.refill_per_second:,.2f} /s</td>"
        f"<td>{esc('drained for ' + duration(r.held_until - now)) if r.held_until > now else ''}"
        "</td></tr>"
        for r in sorted(limits, key=lambda r: r.scope)
    )
    return (
        "<div style='font-size:13px'><b>Rate limits</b> (shared token buckets)"
        "<table style='border-collapse:collapse;margin-top:4px'><tr><th align=left>scope</th>"
        "<th align=left>tokens</th><th align=left>refill</th><th></th></tr>"
        f"{rows}</table></div>"
    )


class QueuesPage(Page):
    """One editor card per queue, added as queues appear."""

    title = "Queues"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.editors: dict[str, QueueEditor] = {}
        note = (
            "Changes apply to every worker process on its next tick (no restart). "
            "'workers' is the number of concurrent jobs per process for the queue."
        )
        if ctx.read_only:
            note = "Read-only: queue settings are shown, not changed."
        self.cards = pn.Column(sizing_mode="stretch_width")
        self.flags = pn.pane.HTML(
            "", stylesheets=[FLAG_CSS], sizing_mode="stretch_width", css_classes=["fnb-stranded"]
        )
        self.limits = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["fnb-rate-limits"])
        self._panel = pn.Column(
            pn.pane.HTML(f"<span style='font-size:13px'>{note}</span>"),
            self.flags,
            self.cards,
            self.limits,
            sizing_mode="stretch_width",
        )
        #: The token buckets the last `fetch` read (None until the tab was first shown).
        self.rate_limits: list[RateLimit] | None = None
        self.templates: tuple[list[RateLimitTemplate], list[RateLimit]] = ([], [])

    async def fetch(self, snap: Tick) -> None:
        """Read the shared rate limits (shown under the queues)."""
        self.rate_limits = await self.ctx.source.rate_limits()
        self.templates = await self.ctx.source.rate_limit_templates()

    def update(self, snap: Tick) -> None:
        """Add cards for new queues; refresh each; show the rate limits and the flags."""
        flags = stranded_html(snap.stranded)
        if flags != self.flags.object:
            self.flags.object = flags
        if self.rate_limits is not None:
            html = rate_limits_html(self.rate_limits, snap.now) + templates_html(
                *self.templates, snap.now
            )
            if html != self.limits.object:
                self.limits.object = html
        added = False
        for config in sorted(snap.queues, key=lambda q: q.name):
            editor = self.editors.get(config.name)
            if editor is None:
                editor = self.editors[config.name] = QueueEditor(self.ctx, config)
                added = True
            editor.update(config, snap)
        if added:
            self.cards.objects = [self.editors[n].card for n in sorted(self.editors)]
