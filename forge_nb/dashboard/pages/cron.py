"""Cron: every schedule with its expression, next/last fire, an enabled toggle and run-now."""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn

from forge_nb.dashboard.data import Tick
from forge_nb.dashboard.format import TEXT_FORMATTER, compact_json, relative, utc
from forge_nb.dashboard.pages.base import Context, LiveTable, Notice, Page, run_action
from forge_nb.storage.records import Schedule

COLUMNS = [
    "name",
    "cron",
    "tz",
    "kind",
    "queue",
    "payload",
    "enabled",
    "next fire (UTC)",
    "next",
    "last fire (UTC)",
    "last",
]
TEXT = ("name", "cron", "tz", "kind", "queue", "payload")


def schedule_frame(schedules: list[Schedule], now: float) -> pd.DataFrame:
    """One row per schedule, by name."""
    rows = [
        {
            "name": s.name,
            "cron": s.cron,
            "tz": s.tz,
            "kind": s.kind,
            "queue": s.queue,
            "payload": compact_json(s.payload, 80),
            "enabled": bool(s.enabled),
            "next fire (UTC)": utc(s.next_fire_at) if s.enabled else "",
            "next": relative(s.next_fire_at, now) if s.enabled else "disabled",
            "last fire (UTC)": utc(s.last_fire_at) or "never",
            "last": relative(s.last_fire_at, now),
        }
        for s in sorted(schedules, key=lambda s: s.name)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


class CronPage(Page):
    """Schedules table: click ⏻ to turn a schedule on or off, ▶ to enqueue a run now."""

    title = "Cron"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        editable = not ctx.read_only
        buttons = {
            "switch": '<span title="turn on or off">⏻ on/off</span>',
            "run now": '<span title="enqueue a run now">▶ run</span>',
        }
        self.live = LiveTable(
            schedule_frame([], 0.0),
            disabled=True,
            formatters={**{c: TEXT_FORMATTER for c in TEXT}, "enabled": {"type": "tickCross"}},
            buttons=buttons if editable else {},
            sizing_mode="stretch_width",
            layout="fit_data_table",
            height=420,
            selectable=False,
            css_classes=["fnb-cron-table"],
        )
        self.table = self.live.widget
        self.notice = Notice("fnb-cron-notice")
        if editable:
            self.table.on_click(self._clicked)  # type: ignore[arg-type]  # async is fine
        hint = (
            "<b>⏻ on/off</b> turns a schedule on or off; <b>▶ run</b> enqueues its job now "
            "(the timetable is unchanged). Times are UTC."
            if editable
            else "Read-only: schedules are shown, not changed. Times are UTC."
        )
        self._panel = pn.Column(
            pn.pane.HTML(f"<span style='font-size:13px'>{hint}</span>"),
            self.notice.pane,
            self.live.panel,
            sizing_mode="stretch_width",
        )
        self._shown: list[Schedule] | None = None
        #: The schedules the last `fetch` read (None until the tab was first shown).
        self.schedules: list[Schedule] | None = None

    async def fetch(self, snap: Tick) -> None:
        """Read schedules."""
        self.schedules = await self.ctx.source.schedules()

    def update(self, snap: Tick) -> None:
        """Refresh rows (relative times move every tick)."""
        if self.schedules is None:
            return
        self.live.set(schedule_frame(self.schedules, snap.now))

    def activated(self) -> None:
        """The tab is shown again: its table view is rebuilt."""
        self.live.shown()

    def _name_at(self, row: Any) -> str | None:
        if row is None or not 0 <= int(row) < len(self.table.value):
            return None
        return str(self.table.value.iloc[int(row)]["name"])

    async def _toggle(self, name: str, enabled: bool) -> None:
        async def action() -> str:
            await self.ctx.app.set_schedule_enabled(name, enabled)
            return f"schedule {name} {'enabled' if enabled else 'disabled'}"

        await run_action(action, self.notice)
        self.ctx.source.invalidate("schedules")
        self.ctx.refresh()

    async def _clicked(self, event: Any) -> None:
        column = getattr(event, "column", None)
        name = self._name_at(getattr(event, "row", None))
        if name is None or column not in ("switch", "run now"):
            return
        if column == "switch":
            row = self.table.value.iloc[int(event.row)]
            await self._toggle(name, not bool(row["enabled"]))
            return

        async def action() -> str:
            ref = await self.ctx.app.run_schedule_now(name)
            return f"schedule {name}: enqueued job {ref.id}"

        await run_action(action, self.notice)
        self.ctx.source.invalidate("counts")
        self.ctx.refresh()
