"""Job tables: Jobs, Scheduled, Retries and Dead share one server-side paged browser.

Pages come from ``app.jobs_page`` (keyset cursors), never from a DataFrame of
the whole table, so a million-job database costs one indexed page per view.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import panel as pn

from forge_nb.dashboard.data import Tick
from forge_nb.dashboard.format import (
    TEXT_FORMATTER,
    compact_json,
    esc,
    first_line,
    relative,
    utc,
)
from forge_nb.dashboard.pages.base import (
    Confirm,
    Context,
    LiveTable,
    Notice,
    Page,
    options_with_all,
    session_arg,
)
from forge_nb.dashboard.pages.inspector import Inspector
from forge_nb.runtime.app_bulk import MATCHING_CAP
from forge_nb.storage.records import STATUSES, JobRecord

PAGE_SIZES = [25, 50, 100, 200]
#: Seconds a payload search may spend filling one page (each read is one bounded window).
SEARCH_BUDGET_S = 0.15


@dataclass(frozen=True)
class Mode:
    """What one job tab shows and allows."""

    key: str
    title: str
    status: str | None
    #: Extra columns after the common ones.
    columns: tuple[str, ...]
    #: Bulk actions offered on a selection and on everything matching the filter.
    bulk: tuple[str, ...] = ()
    future_only: bool = False


MODES = {
    "jobs": Mode(
        "jobs",
        "Jobs",
        None,
        ("tags", "created (UTC)", "finished (UTC)", "payload", "error"),
        bulk=("retry", "cancel", "delete"),
    ),
    "scheduled": Mode(
        "scheduled",
        "Scheduled",
        "pending",
        ("runs at (UTC)", "runs", "payload"),
        bulk=("run_now", "cancel", "delete"),
        future_only=True,
    ),
    "retries": Mode(
        "retries",
        "Retries",
        "failed",
        ("next retry (UTC)", "retry", "error", "payload"),
        bulk=("retry", "cancel", "delete"),
    ),
    "dead": Mode(
        "dead", "Dead", "dead", ("finished (UTC)", "error", "payload"), bulk=("retry", "delete")
    ),
}
#: "code": the shipped code version a job runs (empty: the worker's own handler).
BASE_COLUMNS = ("id", "kind", "code", "queue", "status", "attempts")
TEXT_COLUMNS = ("kind", "code", "queue", "tags", "payload", "error", "id")
VERBS = {"retry": "Retry", "delete": "Delete", "cancel": "Cancel", "run_now": "Run now"}


def job_row(job: JobRecord, now: float) -> dict[str, Any]:
    """One table row (text only; Tabulator escapes it)."""
    return {
        "id": job.id,
        "kind": job.kind,
        "code": job.code_version or "",
        "queue": job.queue,
        "status": job.status,
        "attempts": f"{job.attempts}/{job.max_attempts}",
        "tags": ", ".join(job.tags),
        "created (UTC)": utc(job.created_at),
        "finished (UTC)": utc(job.finished_at),
        "runs at (UTC)": utc(job.scheduled_at),
        "runs": relative(job.scheduled_at, now),
        "next retry (UTC)": utc(job.scheduled_at),
        "retry": relative(job.scheduled_at, now),
        "payload": compact_json(job.payload),
        "error": first_line(job.last_error),
    }


class JobBrowser(Page):
    """A filtered, paged job table with an inspector and (per mode) bulk actions."""

    def __init__(self, ctx: Context, mode: str) -> None:
        super().__init__(ctx)
        self.mode = MODES[mode]
        self.title = self.mode.title
        slug = self.mode.key
        self.columns = [*BASE_COLUMNS, *self.mode.columns]
        if self.mode.status is not None:
            self.columns.remove("status")
        self.queue = pn.widgets.Select(
            name="queue", options=options_with_all([]), width=160, css_classes=["fnb-filter-queue"]
        )
        self.status = pn.widgets.Select(
            name="status",
            options=options_with_all(list(STATUSES)),
            width=130,
            css_classes=["fnb-filter-status"],
            visible=self.mode.status is None,
        )
        self.kind = pn.widgets.TextInput(
            name="kind", placeholder="exact kind", width=180, css_classes=["fnb-filter-kind"]
        )
        self.search = pn.widgets.TextInput(
            name="payload contains",
            placeholder="substring",
            width=220,
            css_classes=["fnb-filter-search"],
        )
        self.tag = pn.widgets.TextInput(
            name="tag", placeholder="exact tag", width=140, css_classes=["fnb-filter-tag"]
        )
        self.page_size = pn.widgets.Select(name="per page", options=PAGE_SIZES, value=50, width=90)
        self.refresh_button = pn.widgets.Button(name="↻ Refresh", width=100)
        self.prev = pn.widgets.Button(
            name="◀ Newer", width=100, disabled=True, css_classes=["fnb-prev"]
        )
        self.next = pn.widgets.Button(
            name="Older ▶", width=100, disabled=True, css_classes=["fnb-next"]
        )
        self.page_label = pn.pane.HTML(
            "", css_classes=["fnb-page-label", f"fnb-page-{slug}"], margin=(14, 8)
        )
        bulk_ok = bool(self.mode.bulk) and not ctx.read_only
        self.live = LiveTable(
            pd.DataFrame(columns=self.columns),
            disabled=True,
            # Order is the server's (newest first, keyset pages): no client-side re-sorting.
            configuration={"columnDefaults": {"headerSort": False}},
            selectable="checkbox" if bulk_ok else False,
            height=520,
            sizing_mode="stretch_width",
            layout="fit_data_stretch",
            formatters={c: TEXT_FORMATTER for c in TEXT_COLUMNS if c in self.columns},
            css_classes=[f"fnb-table-{slug}"],
        )
        self.table = self.live.widget
        self.table.on_click(self._clicked)
        self.inspector = Inspector(ctx, on_change=self._reload)
        wanted = session_arg("job") if self.mode.key == "jobs" else None
        if wanted:  # ?tab=jobs&job=ID: a link from another job or from the Workflow view
            self.inspector.preselect(wanted)
        self.notice = Notice(f"fnb-{slug}-notice")
        self.confirm = Confirm(self.notice, slug)
        self.bulk_bar = pn.Row(sizing_mode="stretch_width")
        self.selected_buttons: dict[str, Any] = {}
        if bulk_ok:
            for verb in self.mode.bulk:
                selected = pn.widgets.Button(
                    name=f"{VERBS[verb]} selected",
                    button_type="primary" if verb in ("retry", "run_now") else "danger",
                    width=160,
                    css_classes=[f"fnb-{verb.replace('_', '-')}-selected"],
                )
                self.selected_buttons[verb] = selected
                matching = pn.widgets.Button(
                    name=f"{VERBS[verb]} all matching",
                    button_type="light",
                    width=170,
                    css_classes=[f"fnb-{verb.replace('_', '-')}-matching"],
                )
                selected.on_click(functools.partial(self._on_bulk, self._ask_selected, verb))
                matching.on_click(functools.partial(self._on_bulk, self._ask_matching, verb))
                self.bulk_bar.extend([selected, matching])
        for widget in (self.queue, self.status, self.kind, self.tag, self.search, self.page_size):
            widget.param.watch(self._filters_changed, "value")
        self.table.param.watch(self._selection_changed, "selection")
        self.refresh_button.on_click(lambda _e: self._reload())
        self.prev.on_click(self._newer)
        self.next.on_click(self._older)
        self._cursors: list[str | None] = [None]
        self._next_cursor: str | None = None
        self._stale = True
        self._jobs: list[JobRecord] = []
        self._queue_names: list[str] = []
        controls: list[Any] = [
            pn.Row(
                self.queue,
                self.status,
                self.kind,
                self.tag,
                self.search,
                self.page_size,
                self.refresh_button,
                sizing_mode="stretch_width",
            ),
        ]
        if bulk_ok:
            controls += [self.bulk_bar, self.confirm.panel, self.notice.pane]
        self._panel = pn.Column(
            *controls,
            pn.Row(self.prev, self.next, self.page_label),
            pn.Row(self.live.panel, self.inspector.panel, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )

    # -- filters and paging ----------------------------------------------------------------
    def filters(self) -> dict[str, Any]:
        """The current filter as ``app.jobs_page`` keyword arguments."""
        return {
            "status": self.mode.status or (self.status.value or None),
            "queue": self.queue.value or None,
            "kind": (self.kind.value or "").strip() or None,
            "search": (self.search.value or "").strip() or None,
            "tag": (self.tag.value or "").strip() or None,
        }

    def _filters_changed(self, _event: Any) -> None:
        self._cursors = [None]
        self._reload()

    def _reload(self) -> None:
        self._stale = True
        self.ctx.refresh()

    def _older(self, _event: Any) -> None:
        if self._next_cursor is not None:
            self._cursors.append(self._next_cursor)
            self._reload()

    def _newer(self, _event: Any) -> None:
        if len(self._cursors) > 1:
            self._cursors.pop()
            self._reload()

    def activated(self) -> None:
        """Re-read the page when the tab is shown."""
        self._stale = True
        self.live.shown()

    # -- reading ------------------------------------------------------------------------------
    async def fetch(self, snap: Tick) -> None:
        """Read the current page when something asked for it; the inspector re-reads itself."""
        if self._stale:
            self._stale = False
            if self.mode.future_only:
                self._jobs, self._next_cursor = await self._scan_future(snap.now)
            else:
                self._jobs, self._next_cursor = await self._read_page()
            self._show_page(snap)
        await self.inspector.fetch(snap)

    async def _read_page(self) -> tuple[list[JobRecord], str | None]:
        """One table page. A payload search reads id windows until the page is full
        or `SEARCH_BUDGET_S` is spent; Next then carries on where it stopped."""
        size, cursor, filters = int(self.page_size.value), self._cursors[-1], self.filters()
        jobs: list[JobRecord] = []
        deadline = time.monotonic() + SEARCH_BUDGET_S
        while True:
            page = await self.ctx.app.jobs_page(limit=size - len(jobs), cursor=cursor, **filters)
            jobs += page.jobs
            cursor = page.next_cursor
            if len(jobs) >= size or cursor is None or time.monotonic() > deadline:
                return jobs, cursor

    async def _scan_future(self, now: float) -> tuple[list[JobRecord], str | None]:
        """Pending jobs due after ``now``, soonest first: one indexed keyset page."""
        page = await self.ctx.app.jobs_page(
            limit=int(self.page_size.value),
            cursor=self._cursors[-1],
            scheduled_after=now,
            **self.filters(),
        )
        return page.jobs, page.next_cursor

    def _show_page(self, snap: Tick) -> None:
        rows = [job_row(j, snap.now) for j in self._jobs]
        frame = pd.DataFrame(rows, columns=list(job_row_columns())).reindex(columns=self.columns)
        self.table.selection = []
        self.live.set(frame)
        number = len(self._cursors)
        total = self._total(snap)
        total_text = f" of {total:,} matching" if total is not None else ""
        if self.filters()["search"] and self._next_cursor and len(rows) < self.page_size.value:
            total_text += f" · searched down to job #{esc(self._next_cursor)}: Next looks further"
        self.page_label.object = (
            f"<span style='font-size:13px'>page {number} · {len(rows)} row(s){total_text}</span>"
        )
        self.prev.disabled = number <= 1
        self.next.disabled = self._next_cursor is None

    def _total(self, snap: Tick) -> int | None:
        """Exact count from the status counts when only queue/status filter (else unknown)."""
        f = self.filters()
        if f["kind"] or f["search"] or f["tag"] or self.mode.future_only:
            return None
        queues = [f["queue"]] if f["queue"] else list(snap.counts)
        statuses = [f["status"]] if f["status"] else list(STATUSES)
        return sum(snap.counts.get(q, {}).get(s, 0) for q in queues for s in statuses)

    def update(self, snap: Tick) -> None:
        """Keep the queue filter's options current (and the table's rows delivered)."""
        self.live.tick()
        names = sorted(snap.counts)
        if names != self._queue_names:
            self._queue_names = names
            current = self.queue.value
            self.queue.options = options_with_all(names)
            if current and current not in names:
                self.queue.value = ""

    # -- clicks and actions ----------------------------------------------------------------------
    def _clicked(self, event: Any) -> None:
        row = getattr(event, "row", None)
        if row is None or not 0 <= row < len(self.table.value):
            return
        self.inspector.show(str(self.table.value.iloc[row]["id"]))

    @staticmethod
    async def _on_bulk(ask: Callable[[str], Any], verb: str, _event: Any) -> None:
        asked = ask(verb)
        if inspect.isawaitable(asked):  # "all matching" counts the jobs before it asks
            await asked

    def _selection_changed(self, _event: Any) -> None:
        """Say on each bulk button how many rows it would act on."""
        n = len(self.table.selection)
        for verb, button in self.selected_buttons.items():
            button.name = f"{VERBS[verb]} {n} selected" if n else f"{VERBS[verb]} selected"

    def selected_ids(self) -> list[str]:
        """Ids of the checked rows."""
        frame = self.table.value
        return [str(frame.iloc[i]["id"]) for i in self.table.selection if 0 <= i < len(frame)]

    def _ask_selected(self, verb: str) -> None:
        ids = self.selected_ids()
        if not ids:
            self.notice.show("Select rows first (tick the boxes on the left).", "info")
            return

        async def action() -> str:
            done = 0
            errors: list[str] = []
            for job_id in ids:
                try:
                    await self._apply(verb, job_id)
                    done += 1
                except (ValueError, LookupError) as exc:
                    errors.append(str(exc))
            self._after_change()
            tail = f"; {len(errors)} skipped ({errors[0]})" if errors else ""
            return f"{VERBS[verb].lower()}: {done} job(s){tail}"

        self.confirm.ask(f"{VERBS[verb]} {len(ids)} selected job(s)?", action)

    async def _ask_matching(self, verb: str) -> None:
        """Count what the filter matches, then ask with that count (the Dead tab's retry and
        delete take the whole filter in one statement; the rest go job by job)."""
        f = self.filters()
        described = ", ".join(f"{k}={v}" for k, v in f.items() if v) or "no filter"
        whole_filter = self.mode.key == "dead" and verb in ("retry", "delete")
        try:
            ids = await self.ctx.app.matching_ids(**f, scheduled=self.mode.future_only)
        except ValueError as exc:
            self.notice.show(str(exc), "error")
            return
        capped = " (the first 100,000)" if len(ids) >= MATCHING_CAP and not whole_filter else ""
        count = f"{len(ids):,}{'+' if len(ids) >= MATCHING_CAP else ''} job(s)"

        async def action() -> str:
            if whole_filter and verb == "retry":
                n = await self.ctx.app.retry_all(**f)
                tail = ""
            elif whole_filter:
                n = await self.ctx.app.delete_all(**f)
                tail = ""
            else:
                result = await self.ctx.app.bulk(verb, ids)
                n = result.done
                tail = f"; {result.skipped} skipped" if result.skipped else ""
            self._after_change()
            return f"{VERBS[verb].lower()}: {n} job(s) matching {described}{tail}"

        self.confirm.ask(f"{VERBS[verb]} ALL jobs matching {described} ({count}{capped})?", action)

    async def _apply(self, verb: str, job_id: str) -> None:
        result = await self.ctx.app.bulk(verb, [job_id])
        if not result.done:
            raise ValueError(result.reasons[0] if result.reasons else f"job {job_id}: skipped")

    def _after_change(self) -> None:
        self._cursors = [None]
        self._stale = True
        self.inspector.show(self.inspector.job_id)


def job_row_columns() -> tuple[str, ...]:
    """Every column `job_row` produces."""
    return (
        "id",
        "kind",
        "code",
        "queue",
        "status",
        "attempts",
        "tags",
        "created (UTC)",
        "finished (UTC)",
        "runs at (UTC)",
        "runs",
        "next retry (UTC)",
        "retry",
        "payload",
        "error",
    )
