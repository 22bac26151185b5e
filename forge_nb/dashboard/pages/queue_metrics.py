"""Per-queue metrics: a mini chart per queue; expand one to a full, box-zoomable chart."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import panel as pn
from bokeh.models import ColumnDataSource, DataRange1d

from forge_nb.dashboard.charts import (
    merge_series,
)
from forge_nb.dashboard.data import RANGES, Tick, latency_summary, metric_series
from forge_nb.dashboard.format import css_slug, duration, esc
from forge_nb.dashboard.pages.base import Context, Page
from forge_nb.dashboard.throughput import ThroughputLatency, empty_series, small_throughput
from forge_nb.runtime.rollup import VALID_STEPS
from forge_nb.storage.records import MetricRow

THROUGHPUT = ("enqueued", "completed", "failed", "retried", "dead", "throttled")
#: Ranges up to this long re-read every tick; longer ones every `SLOW_TTL_S`.
FAST_RANGE_S = 3600
SLOW_TTL_S = 15.0


def queue_names(counts: Mapping[str, object], rows: Iterable[MetricRow]) -> list[str]:
    """Every queue the counts or the range's metrics know, by name."""
    return sorted(set(counts) | {r.queue for r in rows})


def default_expanded(names: list[str]) -> str | None:
    """The queue shown in full until the user expands another: 'default', else the first."""
    return "default" if "default" in names else (names[0] if names else None)


class MiniChart:
    """A small throughput chart for one queue with an Expand button."""

    def __init__(self, name: str, expand: Any) -> None:
        self.name = name
        self.source = ColumnDataSource(empty_series())
        self.fig = small_throughput(
            self.source, title=f"{name} · jobs/min · UTC", line_width=1.5, height=150, width=370
        )
        self.fig.xaxis.major_label_text_font_size = "8pt"
        self.fig.yaxis.major_label_text_font_size = "8pt"
        self.fig.y_range.start = 0
        self.fig.min_border_left = 30
        self.summary = pn.pane.HTML("", margin=(0, 5))
        self.button = pn.widgets.Button(
            name=f"Expand {name}",
            width=180,
            button_type="light",
            css_classes=[f"fnb-expand-{css_slug(name)}"],
        )
        self.button.on_click(lambda _e: expand(name))
        self.panel = pn.Column(
            pn.pane.Bokeh(self.fig),
            pn.Row(self.button, self.summary),
            width=380,
            margin=5,
            styles={"border": "1px solid rgba(128,128,128,.3)", "border-radius": "6px"},
        )


class QueueMetricsPage(Page):
    """Ranges 5m … 7d; mini charts per queue; the expanded queue gets throughput and latency."""

    title = "Per-queue metrics"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.range = pn.widgets.RadioButtonGroup(
            options=list(RANGES), value="1h", css_classes=["fnb-range"]
        )
        self.range.param.watch(lambda _e: self._replace_all(), "value")
        self.expanded: str | None = None
        self.minis: dict[str, MiniChart] = {}
        self.x_range = DataRange1d(name="queue_x")
        tools = {"tools": "xpan,xbox_zoom,xwheel_zoom,reset,save", "active_drag": "xbox_zoom"}
        self.charts = ThroughputLatency(
            series=THROUGHPUT,
            x_range=self.x_range,
            title="Throughput",
            height=280,
            split_latency=False,
            latency_height=240,
            throughput_options={**tools, "name": "queue_throughput"},
            latency_options=tools,
        )
        self.source = self.charts.source
        self.heading = pn.pane.HTML(
            "", sizing_mode="stretch_width", css_classes=["fnb-queue-heading"]
        )
        # GridBox, not FlexBox: fixed-size plots in a FlexBox nested in Tabs in a Column get
        # laid out at 0×0 by Bokeh 3.9 / Panel 1.9.
        self.grid = pn.GridBox(ncols=3, sizing_mode="stretch_width")
        self.full = pn.Column(
            self.heading,
            *[pn.pane.Bokeh(fig, sizing_mode="stretch_width") for fig in self.charts.figures],
            sizing_mode="stretch_width",
        )
        self._panel = pn.Column(
            pn.Row(pn.pane.HTML("<b>Range</b>", margin=(12, 5)), self.range),
            pn.pane.HTML(
                "<span style='font-size:12px'>Drag on a full chart to zoom into a time "
                "span (reset ⟲ to undo); scroll to zoom.</span>"
            ),
            self.full,
            pn.pane.HTML("<b>All queues</b> (expand one to see it in full above)"),
            self.grid,
            sizing_mode="stretch_width",
        )
        self._replace = True
        #: What the last `fetch` read: every queue's counters (None until first shown) and
        #: the expanded queue's rows with latency.
        self.rows: list[MetricRow] | None = None
        self.expanded_rows: list[MetricRow] | None = None

    def _replace_all(self) -> None:
        self._replace = True
        self.ctx.refresh()

    def expand(self, name: str) -> None:
        """Show ``name`` in the full charts."""
        self.expanded = name
        self._replace_all()

    def window(self, now: float) -> tuple[float, int]:
        """(start, bucket seconds) of the chosen range."""
        span, bucket = RANGES[str(self.range.value)]
        return now - span, bucket

    async def fetch(self, snap: Tick) -> None:
        """Read the range (long ranges at most every 15 s, from roll-ups).

        Every queue's counters for the minis; latency only for the expanded queue.
        """
        since, bucket = self.window(snap.now)
        span = snap.now - since
        ttl = None if span <= FAST_RANGE_S else SLOW_TTL_S
        step = max(s for s in VALID_STEPS if bucket % (s * 60) == 0)
        source = self.ctx.source
        rows = await source.metric_rows(since, ttl=ttl, step=step, histograms_from=math.inf)
        if self.expanded is None:
            self.expanded = default_expanded(queue_names(snap.counts, rows))
        expanded_rows = None
        if self.expanded is not None:
            expanded_rows = await source.metric_rows(since, self.expanded, ttl=ttl, step=step)
        self.rows, self.expanded_rows = rows, expanded_rows

    def update(self, snap: Tick) -> None:
        """Merge the range into every chart."""
        if self.rows is None:
            return
        since, bucket = self.window(snap.now)
        rows = self.rows
        names = queue_names(snap.counts, rows)
        rollover = int((snap.now - since) // bucket) + 2
        replace = self._replace
        self._replace = False
        added = False
        for name in names:
            mini = self.minis.get(name)
            if mini is None:
                mini = self.minis[name] = MiniChart(name, self.expand)
                added = True
            series = metric_series(rows, since, snap.now, bucket, queue=name)
            if replace:
                mini.source.data = series
            else:
                merge_series(mini.source, series, rollover=rollover, stream=self.ctx.streaming)
            done = sum(series["completed"]) * bucket / 60
            failed = sum(series["failed"]) * bucket / 60
            mini.summary.object = (
                f"<span style='font-size:12px'>{done:,.0f} done · {failed:,.0f} failed</span>"
            )
        if added:
            self.grid.objects = [self.minis[n].panel for n in sorted(self.minis)]
        if self.expanded is not None:
            if self.expanded_rows is not None:
                rows = self.expanded_rows  # the only rows with latency
            series = metric_series(rows, since, snap.now, bucket, queue=self.expanded)
            self.charts.show(series, rollover=rollover, stream=self.ctx.streaming, replace=replace)
            summary = latency_summary(rows, queue=self.expanded)
            label = str(self.range.value)
            self.heading.object = (
                f"<b>queue {esc(self.expanded)}</b> · last {esc(label)} · per "
                f"{esc(duration(bucket))} bucket · processing p50 "
                f"{esc(duration(summary['processing_p50']))}, p95 "
                f"{esc(duration(summary['processing_p95']))}, p99 "
                f"{esc(duration(summary['processing_p99']))} · end-to-end p95 "
                f"{esc(duration(summary['e2e_p95']))}"
            )
