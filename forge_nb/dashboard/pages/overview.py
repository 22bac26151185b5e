"""Overview: status strip, workload timeline with range overview, latency, live processes."""

from __future__ import annotations

import time

import pandas as pd
import panel as pn

from forge_nb.dashboard.charts import StatusBars
from forge_nb.dashboard.data import Tick, latency_summary, metric_series, status_totals
from forge_nb.dashboard.flags import FLAG_CSS, stranded_html
from forge_nb.dashboard.format import STATUS_COLORS, TEXT_FORMATTER, duration, esc, utc
from forge_nb.dashboard.pages.base import Context, LiveTable, Page
from forge_nb.dashboard.throughput import Timeline
from forge_nb.storage.records import STATUSES

#: The timeline keeps this much history (the overview's span) …
TIMELINE_WINDOW_S = 6 * 3600
#: … shows this much at first …
TIMELINE_VISIBLE_S = 30 * 60
#: … and re-reads only this recent tail (also the latency cards' window) on later ticks.
TIMELINE_TAIL_S = 15 * 60
#: The latency cards' window: only these minutes are read with their histograms.
LATENCY_WINDOW_S = 15 * 60
#: The live-process table is refreshed every this many ticks (~4.5 s) while its workers
#: stay the same: under load every row changes every tick (current job, heartbeat age),
#: and re-sending the table was ~40 % of a tick's time. New or gone workers show at once.
PROCESS_TABLE_EVERY = 3

STRIP_CSS = """
.fnb-strip { display: flex; flex-wrap: wrap; gap: 10px; margin: 4px 0; }
.fnb-stat { min-width: 120px; padding: 6px 12px; border-radius: 6px;
  border: 1px solid rgba(128,128,128,.35); border-left: 6px solid var(--c); }
.fnb-stat .n { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.fnb-stat .l { font-size: 12px; opacity: .8; }
"""


def strip_html(items: list[tuple[str, str, str]]) -> str:
    """Stat cards: (label, value, colour); values and labels are escaped."""
    cards = "".join(
        f'<div class="fnb-stat" style="--c:{color}"><div class="n">{esc(value)}</div>'
        f'<div class="l">{esc(label)}</div></div>'
        for label, value, color in items
    )
    return f'<div class="fnb-strip">{cards}</div>'


def process_frame(snap: Tick) -> pd.DataFrame:
    """One row per worker slot, busy ones first."""
    rows = []
    for p in snap.processes:
        rows.append(
            {
                "host": p.hostname,
                "pid": p.pid,
                "queue": p.queue,
                "slot": p.id.rsplit("-", 2)[-2] if p.id.count("-") >= 2 else p.id,
                "current job": p.current_job or "idle",
                "heartbeat": f"{duration(snap.now - p.last_heartbeat.timestamp())} ago",
            }
        )
    frame = pd.DataFrame(rows, columns=["host", "pid", "queue", "slot", "current job", "heartbeat"])
    if not frame.empty:
        frame["busy"] = frame["current job"] != "idle"
        frame = frame.sort_values(
            ["busy", "queue", "host", "pid"], ascending=[False, True, True, True]
        )
        frame = frame.drop(columns="busy").reset_index(drop=True)
    return frame


def new_charts(now: float) -> tuple[Timeline, StatusBars]:
    """The Overview's Bokeh figures (each session gets its own: models belong to one document)."""
    timeline = Timeline(
        window_s=TIMELINE_WINDOW_S,
        visible_s=TIMELINE_VISIBLE_S,
        now=now,
        rollover=TIMELINE_WINDOW_S // 60 + 5,
    )
    return timeline, StatusBars()


class OverviewPage(Page):
    """The page an operator keeps open."""

    title = "Overview"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        now = time.time()
        self.timeline, self.bars = new_charts(now)
        #: Jobs no live worker can run (empty when there are none).
        self.flags = pn.pane.HTML(
            "", stylesheets=[FLAG_CSS], sizing_mode="stretch_width", css_classes=["fnb-stranded"]
        )
        self.strip = pn.pane.HTML(
            strip_html([]),
            stylesheets=[STRIP_CSS],
            sizing_mode="stretch_width",
            css_classes=["fnb-status-strip"],
        )
        self.latency = pn.pane.HTML(
            "",
            stylesheets=[STRIP_CSS],
            sizing_mode="stretch_width",
            css_classes=["fnb-latency-cards"],
        )
        self.process_summary = pn.pane.HTML("", sizing_mode="stretch_width")
        self.processes = LiveTable(
            process_frame(Tick(now=now)),
            disabled=True,
            height=220,
            sizing_mode="stretch_width",
            layout="fit_data_stretch",
            formatters={c: TEXT_FORMATTER for c in ("host", "queue", "current job")},
            css_classes=["fnb-process-strip"],
        )
        self._panel = pn.Column(
            self.flags,
            self.strip,
            pn.pane.Bokeh(self.timeline.main, sizing_mode="stretch_width"),
            pn.pane.Bokeh(self.timeline.overview, sizing_mode="stretch_width"),
            self.latency,
            pn.Row(
                pn.pane.Bokeh(self.timeline.processing, sizing_mode="stretch_width"),
                pn.pane.Bokeh(self.timeline.e2e, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            ),
            pn.Row(
                pn.pane.Bokeh(self.bars.fig, sizing_mode="stretch_width"),
                pn.Column(
                    pn.pane.HTML("<b>Live processes</b>"),
                    self.process_summary,
                    self.processes.panel,
                    sizing_mode="stretch_width",
                ),
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
        )
        self._loaded = False
        #: Ticks until the process table is due again, and the worker slots it shows.
        self._table_due = 0
        self._table_slots: frozenset[str] = frozenset()

    def activated(self) -> None:
        """The tab is shown again: its table view is rebuilt."""
        self.processes.shown()

    def timeline_since(self, now: float) -> float:
        """The window to read this tick: all of it once, then only the recent tail."""
        return now - (TIMELINE_TAIL_S if self._loaded else TIMELINE_WINDOW_S)

    def update_timeline(self, snap: Tick) -> None:
        """Stream the tail into the timeline (every tick, shown or not: only Bokeh sources)."""
        series = metric_series(snap.metrics, snap.metrics_since, snap.now)
        self.timeline.update(series, stream=self.ctx.streaming)
        self._loaded = True

    def update(self, snap: Tick) -> None:
        """Refresh strip, latency cards, bars and processes (while the tab is shown)."""
        totals = status_totals(snap.counts)
        items: list[tuple[str, str, str]] = [
            (status, f"{totals.get(status, 0):,}", STATUS_COLORS[status]) for status in STATUSES
        ]
        busy = sum(1 for p in snap.processes if p.current_job)
        items.append(("busy / worker slots", f"{busy} / {len(snap.processes)}", "#8d99ae"))
        html = strip_html(items)
        if self.strip.object != html:
            self.strip.object = html
        flags = stranded_html(snap.stranded)
        if self.flags.object != flags:
            self.flags.object = flags
        self._update_latency(snap)
        self.bars.update(snap.counts)
        self._update_processes(snap)
        hosts = {p.host_id for p in snap.processes}
        procs = {(p.host_id, p.pid) for p in snap.processes}
        summary = (
            f"{len(snap.processes)} worker slot(s) in {len(procs)} "
            f"process(es) on {len(hosts)} host(s); {busy} busy. Updated {esc(utc(snap.now))} UTC."
        )
        self.process_summary.object = f'<span style="font-size:12px">{summary}</span>'

    def _update_processes(self, snap: Tick) -> None:
        """The live-process table, every `PROCESS_TABLE_EVERY` ticks or when slots change."""
        slots = frozenset(p.id for p in snap.processes)
        self._table_due -= 1
        if self._table_due > 0 and slots == self._table_slots and self.processes.settled:
            return
        self.processes.set(process_frame(snap))
        self._table_due = PROCESS_TABLE_EVERY
        self._table_slots = slots

    def _update_latency(self, snap: Tick) -> None:
        recent = [r for r in snap.metrics if r.minute * 60 >= snap.now - LATENCY_WINDOW_S]
        if not recent and self.latency.object:
            return
        summary = latency_summary(recent)
        items = []
        for prefix, label in (("processing", "processing"), ("e2e", "end-to-end")):
            for q in ("p50", "p95", "p99"):
                items.append(
                    (
                        f"{label} {q}, last 15 min",
                        duration(summary[f"{prefix}_{q}"]),
                        "#2a9d8f" if prefix == "processing" else "#6c8ebf",
                    )
                )
        html = strip_html(items)
        if self.latency.object != html:
            self.latency.object = html
