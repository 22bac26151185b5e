"""Throughput and latency over time: one chart component for every page that shows them.

`ThroughputLatency` draws jobs per minute and the processing / end-to-end latency
percentiles from one ColumnDataSource (the columns of `metric_series`) on one x range.
The Overview wraps it in a `Timeline` (a range overview that follows the newest
minute); the Per-queue metrics page shows the expanded queue with it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from bokeh.models import ColumnDataSource, Range1d, RangeTool

from forge_nb.dashboard.charts import (
    TIME_LABEL,
    hover_for,
    merge_series,
    new_figure,
    outside_legend,
    share_time_axis,
    slim,
    time_figure,
    time_format,
)
from forge_nb.dashboard.data import PERCENTILES, metric_series
from forge_nb.dashboard.format import PERCENTILE_COLORS, SERIES_COLORS

#: The workload timeline's x range; tests and users find it by this name.
MAIN_X_NAME = "main_x"
TIMELINE_SERIES = ("enqueued", "completed", "retried", "failed")
#: A fitted first window starts this long before the first busy minute …
FIT_MARGIN_MS = 2 * 60_000.0
#: … and shows at least this much.
MIN_VISIBLE_MS = 10 * 60_000.0
#: Latency series prefixes and how a legend names them.
LATENCY = (("processing", "processing"), ("e2e", "end-to-end"))
SPLIT_TITLES = {
    "processing": "Processing time (started → finished)",
    "e2e": "End-to-end time (enqueued → finished)",
}


def small_throughput(source: Any, *, title: str, line_width: float = 1.0, **options: Any) -> Any:
    """A chart without tools of jobs enqueued, completed and failed: the Overview's range
    overview and each queue's mini chart."""
    fig = new_figure(
        x_axis_type="datetime", toolbar_location=None, tools="", title=title, **options
    )
    fig.xaxis.formatter = time_format()
    for name in ("enqueued", "completed", "failed"):
        fig.line("t", name, source=source, color=SERIES_COLORS[name], line_width=line_width)
    return fig


def empty_series() -> dict[str, list[float]]:
    """The columns of `metric_series`, empty."""
    now = time.time()
    return {k: [] for k in metric_series([], now, now)}


class ThroughputLatency:
    """Jobs per minute (``series``) and latency percentiles, all on ``x_range``.

    ``split_latency``: one chart for processing and one for end-to-end time (each with a
    hover); otherwise one chart, processing solid and end-to-end dashed. The option
    dicts go to the figures as they are (tools, active drag and scroll, a name).
    """

    def __init__(
        self,
        *,
        series: Sequence[str],
        x_range: Any,
        title: str,
        height: int,
        split_latency: bool,
        latency_height: int,
        throughput_options: Mapping[str, Any] | None = None,
        latency_options: Mapping[str, Any] | None = None,
        source_name: str | None = None,
    ) -> None:
        self.source = ColumnDataSource(empty_series(), name=source_name)
        self.throughput = time_figure(
            height=height,
            title=title,
            y_label="jobs / minute",
            x_range=x_range,
            **(throughput_options or {}),
        )
        for name in series:
            self.throughput.line(
                "t",
                name,
                source=self.source,
                color=SERIES_COLORS[name],
                line_width=2,
                legend_label=name,
            )
        self.throughput.add_tools(hover_for([(n, f"@{n}{{0,0.[0]}}") for n in series]))
        self.throughput.y_range.start = 0
        outside_legend(self.throughput)
        options = dict(latency_options or {}, x_range=x_range, height=latency_height)
        if split_latency:
            self.latency = [
                self._latency_figure([(prefix, "")], SPLIT_TITLES[prefix], True, options)
                for prefix, _ in LATENCY
            ]
        else:
            title = "Latency (solid processing, dashed end-to-end)"
            self.latency = [self._latency_figure(list(LATENCY), title, False, options)]
        self.figures = [self.throughput, *self.latency]
        for fig in self.figures:
            slim(fig)

    def _latency_figure(
        self,
        prefixes: Sequence[tuple[str, str]],
        title: str,
        hover: bool,
        options: Mapping[str, Any],
    ) -> Any:
        fig = time_figure(title=title, y_label="seconds (log)", y_axis_type="log", **options)
        for index, (prefix, label) in enumerate(prefixes):
            for q in PERCENTILES:
                legend = f"{label} {q}".strip()
                column = f"{prefix}_{q}"
                color = PERCENTILE_COLORS[q]
                dash = "dashed" if index else "solid"
                fig.line(
                    "t",
                    column,
                    source=self.source,
                    color=color,
                    line_width=2,
                    line_dash=dash,
                    legend_label=legend,
                )
                # Markers too: a bucket between two empty ones has no segment to draw.
                fig.scatter(
                    "t", column, source=self.source, size=4, color=color, legend_label=legend
                )
        if hover:
            prefix = prefixes[0][0]
            fig.add_tools(hover_for([(q, f"@{prefix}_{q}{{0.000}} s") for q in PERCENTILES]))
        outside_legend(fig)
        return fig

    def show(
        self, series: Mapping[str, list[float]], *, rollover: int, stream: bool, replace: bool
    ) -> None:
        """Merge a window of buckets (``replace``: the window changed, assign it whole)."""
        if replace:
            self.source.data = dict(series)
        else:
            merge_series(self.source, series, rollover=rollover, stream=stream)


class Timeline:
    """Workload timeline (enqueued/retried/completed/failed per minute) with a range overview.

    The main chart's x range (``main_x``) is shared by the latency charts, so a
    drag on the overview's RangeTool zooms all three. While the window ends at
    the newest bucket it follows new minutes; once the user moves it, it stays.
    """

    def __init__(self, *, window_s: int, visible_s: int, now: float, rollover: int) -> None:
        self.rollover = rollover
        self.visible_s = visible_s
        self.x_range = Range1d(name=MAIN_X_NAME, bounds=None)
        self.reset_window(now)
        self.charts = ThroughputLatency(
            series=TIMELINE_SERIES,
            x_range=self.x_range,
            title="Workload per minute",
            height=260,
            split_latency=True,
            latency_height=220,
            throughput_options={"active_scroll": "xwheel_zoom", "active_drag": "xpan"},
            source_name="timeline_source",
        )
        self.source = self.charts.source
        self.main = self.charts.throughput
        self.processing, self.e2e = self.charts.latency
        self.overview = self._overview_figure()
        share_time_axis([self.main, self.overview, self.processing, self.e2e])
        self._last_t: float | None = None

    def _overview_figure(self) -> Any:
        overview = small_throughput(
            self.source,
            title="Drag the box to move the window above; drag its edges to resize it",
            name="timeline_overview",
            height=120,
            sizing_mode="stretch_width",
        )
        overview.xaxis.axis_label = TIME_LABEL
        overview.yaxis.visible = False
        overview.ygrid.grid_line_color = None
        overview.min_border_left = 60
        tool = RangeTool(x_range=self.x_range)
        tool.overlay.fill_alpha = 0.2
        overview.add_tools(tool)
        overview.title.text_font_size = "8pt"
        overview.title.text_font_style = "normal"
        return slim(overview)

    def reset_window(self, now: float) -> None:
        """Show the last ``visible_s`` up to ``now`` (the charts may have been built earlier)."""
        end_ms = (now + 60) * 1000.0
        self.x_range.update(start=end_ms - self.visible_s * 1000.0, end=end_ms)

    def update(self, series: Mapping[str, list[float]], *, stream: bool = True) -> None:
        """Merge a window of buckets; keep following the newest minute if the user was."""
        data = {k: v for k, v in series.items() if k in self.source.data}
        if not data.get("t"):
            return
        x_range: Any = self.x_range  # start/end come back from the browser as epoch ms
        following = self._last_t is None or float(x_range.end) >= self._last_t
        self.charts.show(data, rollover=self.rollover, stream=stream, replace=False)
        newest = float(self.source.data["t"][-1])
        if self._last_t is None:
            self._fit_recent_start(data)
        elif following and newest > self._last_t:
            shift = newest - self._last_t
            x_range.update(start=float(x_range.start) + shift, end=float(x_range.end) + shift)
        self._last_t = newest

    def _fit_recent_start(self, data: Mapping[str, list[float]]) -> None:
        """First load: if work began within the window, start the window just before it
        (a fresh database shows its minutes, not half an hour of zeros)."""
        busy = [
            t
            for i, t in enumerate(data["t"])
            if any(data[name][i] for name in TIMELINE_SERIES if name in data)
        ]
        x_range: Any = self.x_range
        if busy and busy[0] > float(x_range.start):
            end = float(x_range.end)
            x_range.start = min(busy[0] - FIT_MARGIN_MS, end - MIN_VISIBLE_MS)
