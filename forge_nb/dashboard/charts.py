"""Bokeh charts of the dashboard, each built per session around its own ColumnDataSource.

Live updates never rebuild a figure: `merge_series` patches the buckets that
changed and streams new ones (``source.stream(..., rollover=N)``), or assigns
``source.data`` once when a whole window is replaced. Colours avoid pure black
and white and no background is hard-coded, so the light and dark Bokeh themes
of the page both read well. Every time axis is labelled UTC (Bokeh shows epoch
milliseconds as UTC).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from bokeh.models import (
    ColumnDataSource,
    DatetimeTickFormatter,
    FactorRange,
    HoverTool,
    NumeralTickFormatter,
)
from bokeh.models.annotations import LabelSet, Legend, LegendItem
from bokeh.models.renderers import GlyphRenderer
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from forge_nb.dashboard.data import series_equal
from forge_nb.dashboard.format import STATUS_COLORS
from forge_nb.storage.records import STATUSES

TIME_LABEL = "time (UTC)"
STATUS_ORDER: tuple[str, ...] = STATUSES


def time_format() -> DatetimeTickFormatter:
    """A new UTC tick formatter (Bokeh models belong to one document: never share them)."""
    return DatetimeTickFormatter(
        seconds="%H:%M:%S",
        minsec="%H:%M:%S",
        minutes="%H:%M",
        hourmin="%H:%M",
        hours="%H:%M",
        days="%b %d",
        months="%b %Y",
    )


def new_figure(**options: Any) -> Any:
    """``bokeh.plotting.figure`` (typed loosely: Bokeh's property stubs fight plain values)."""
    return figure(**options)


def time_figure(
    *, height: int, title: str | None = None, y_label: str | None = None, **options: Any
) -> Any:
    """A stretch-width figure with a UTC datetime x axis."""
    options.setdefault("tools", "xpan,xwheel_zoom,xbox_zoom,reset,save")
    fig = new_figure(
        x_axis_type="datetime",
        height=height,
        sizing_mode="stretch_width",
        title=title,
        toolbar_location="right",
        **options,
    )
    fig.xaxis.axis_label = TIME_LABEL
    fig.xaxis.formatter = time_format()
    if y_label:
        fig.yaxis.axis_label = y_label
    fig.toolbar.logo = None
    fig.min_border_left = 60
    return fig


def slim(fig: Any) -> Any:
    """Leave the non-selected and muted look of every glyph to BokehJS (its defaults are the
    same as ``bokeh.plotting``'s): two models fewer per renderer to build, send and track."""
    for renderer in fig.renderers:
        if isinstance(renderer, GlyphRenderer):
            renderer.nonselection_glyph = "auto"
            renderer.muted_glyph = "auto"
    return fig


def share_time_axis(figures: Sequence[Any]) -> None:
    """One datetime ticker and formatter for the x axes of ``figures`` (one document).

    A datetime ticker is a dozen models (days, months, years, adaptive tickers); they
    hold no state, so the figures of one page can share them.
    """
    first = figures[0].xaxis[0]
    for fig in figures[1:]:
        for axis in fig.xaxis:
            axis.ticker = first.ticker
            axis.formatter = first.formatter
        for grid in fig.xgrid:
            grid.ticker = first.ticker


def outside_legend(fig: Any) -> None:
    """Move the legend to the right of the plot, click to hide a series."""
    if fig.legend:
        legend = fig.legend[0]
        legend.click_policy = "hide"
        legend.label_text_font_size = "9pt"
        legend.spacing = 0
        legend.padding = 4
        fig.add_layout(legend, "right")


def hover_for(fields: Sequence[tuple[str, str]], **options: Any) -> HoverTool:
    """A vline hover showing the bucket time (UTC) and the given fields."""
    return HoverTool(
        tooltips=[("time (UTC)", "@t{%F %H:%M}"), *fields],
        formatters={"@t": "datetime"},
        mode="vline",
        **options,
    )


def merge_series(
    source: ColumnDataSource,
    new: Mapping[str, list[float]],
    *,
    rollover: int,
    stream: bool = True,
) -> None:
    """Bring ``source`` up to date with ``new`` (same columns, ``t`` ascending).

    Buckets already shown are patched only where a value changed; later buckets
    are streamed. A window that starts before the shown one replaces it. With
    ``stream=False`` (notebook output, where early stream messages can arrive
    out of order) the merged data is assigned in one go instead.
    """
    new_t = list(new.get("t", []))
    old = source.data
    old_t = list(old.get("t", []))
    if not new_t:
        return
    if not old_t or new_t[0] < old_t[0] or set(new) != set(old):
        source.data = {k: list(v)[-rollover:] for k, v in new.items()}
        return
    index = {t: i for i, t in enumerate(old_t)}
    patches: dict[str, list[tuple[int, float]]] = {}
    appended: dict[str, list[float]] = {k: [] for k in new}
    for j, t in enumerate(new_t):
        i = index.get(t)
        if i is None:
            if t > old_t[-1]:
                for k, values in new.items():
                    appended[k].append(values[j])
            continue
        for k, values in new.items():
            if k != "t" and not series_equal(float(old[k][i]), float(values[j])):
                patches.setdefault(k, []).append((i, values[j]))
    if not stream:
        if not patches and not appended["t"]:
            return
        data = {k: list(old[k]) for k in new}
        for k, changes in patches.items():
            for i, value in changes:
                data[k][i] = value
        for k, values in appended.items():
            data[k].extend(values)
        source.data = {k: v[-rollover:] for k, v in data.items()}
        return
    if patches:
        source.patch(patches)
    if appended["t"]:
        source.stream(dict(appended), rollover=rollover)


class StatusBars:
    """Jobs per queue and status, one stacked horizontal bar per queue."""

    def __init__(self) -> None:
        self.source = ColumnDataSource({"queue": [], **{s: [] for s in STATUS_ORDER}})
        self.fig = new_figure(
            y_range=FactorRange(factors=[]),
            height=180,
            sizing_mode="stretch_width",
            title="Jobs by queue and status",
            toolbar_location=None,
            tools="hover",
            tooltips="@queue $name: @$name{0,0}",
        )
        self.fig.hbar_stack(
            list(STATUS_ORDER),
            y="queue",
            height=0.7,
            source=self.source,
            color=[STATUS_COLORS[s] for s in STATUS_ORDER],
            legend_label=list(STATUS_ORDER),
        )
        self.fig.xaxis.axis_label = "jobs"
        self.fig.xaxis.formatter = NumeralTickFormatter(format="0,0")
        self.fig.x_range.start = 0
        self.fig.ygrid.grid_line_color = None
        legend = self.fig.legend[0]
        legend.orientation = "horizontal"
        legend.label_text_font_size = "8pt"
        legend.padding = 2
        self.fig.add_layout(legend, "above")
        self.fig.min_border_left = 60
        slim(self.fig)

    def update(self, counts: Mapping[str, Mapping[str, int]]) -> None:
        """Replace the bars when any count changed."""
        queues = sorted(counts)
        data: dict[str, list[Any]] = {"queue": queues}
        for status in STATUS_ORDER:
            data[status] = [int(counts[q].get(status, 0)) for q in queues]
        if dict(self.source.data) != data:
            self.source.data = data
        if list(self.fig.y_range.factors) != queues:
            self.fig.y_range.factors = queues
            self.fig.height = max(140, 60 + 28 * len(queues))


class MultiSeriesChart:
    """One line per label (host, metric…), renderers added as new labels appear."""

    def __init__(
        self,
        *,
        title: str,
        y_label: str,
        height: int = 220,
        y_format: str | None = None,
        x_range: Any = None,
    ) -> None:
        options: dict[str, Any] = {}
        if x_range is not None:
            options["x_range"] = x_range
        self.fig = time_figure(height=height, title=title, y_label=y_label, **options)
        if y_format:
            self.fig.yaxis.formatter = NumeralTickFormatter(format=y_format)
        self._sources: dict[str, ColumnDataSource] = {}
        # In the figure from the start (empty), so it is part of the first render: made
        # with the first series instead, a notebook output's BokehJS could get the legend's
        # items before its view existed ("cannot find a view for Legend").
        self._legend = Legend(items=[], click_policy="hide")
        self._legend.update(label_text_font_size="9pt", spacing=0, padding=4)
        self.fig.add_layout(self._legend, "right")

    def update(
        self,
        series: Mapping[str, Mapping[str, list[float]]],
        styles: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """``{label: {"t": [...], "y": [...]}}``; labels missing now are emptied."""
        for label, data in series.items():
            source = self._sources.get(label)
            if source is None:
                source = self._sources[label] = ColumnDataSource({"t": [], "y": []})
                style = dict((styles or {}).get(label, {}))
                style.setdefault("color", Category10_10[(len(self._sources) - 1) % 10])
                style.setdefault("line_width", 2)
                renderer = self.fig.line("t", "y", source=source, **style)
                renderer.update(nonselection_glyph="auto", muted_glyph="auto")
                item = LegendItem(label=label, renderers=[renderer])
                self._legend.items = [*self._legend.items, item]
            new = {"t": list(data["t"]), "y": list(data["y"])}
            if not _same(source.data, new):
                source.data = new
        for label, source in self._sources.items():
            if label not in series and source.data["t"]:
                source.data = {"t": [], "y": []}


def _same(a: Mapping[str, Any], b: Mapping[str, list[float]]) -> bool:
    if set(a) != set(b) or any(len(a[k]) != len(b[k]) for k in b):
        return False
    return all(series_equal(float(x), float(y)) for k in b for x, y in zip(a[k], b[k], strict=True))


class BackoffPreview:
    """Bars of the retry delay per attempt for a queue's backoff knobs."""

    def __init__(self, attempts: int = 10) -> None:
        self.attempts = attempts
        self.source = ColumnDataSource({"attempt": [], "delay": [], "label": [], "half": []})
        self.fig = new_figure(
            height=200,
            sizing_mode="stretch_width",
            title="Retry delay by attempt",
            toolbar_location=None,
            tools="hover",
            tooltips=[("attempt", "@attempt"), ("delay up to", "@label")],
        )
        self.bars = self.fig.vbar(
            x="attempt", top="delay", width=0.7, source=self.source, color="#6c8ebf", fill_alpha=0.8
        )
        self.fig.scatter(
            "attempt",
            "half",
            source=self.source,
            size=7,
            color="#e9a23b",
            legend_label="mean with jitter",
        )
        self.fig.add_layout(
            LabelSet(
                x="attempt",
                y="delay",
                text="label",
                source=self.source,
                text_font_size="8pt",
                y_offset=2,
                x_offset=-12,
            )
        )
        self.fig.xaxis.axis_label = "attempt that failed"
        self.fig.yaxis.axis_label = "seconds until retry"
        self.fig.y_range.start = 0
        self.fig.xaxis.ticker = list(range(1, attempts + 1))
        self.fig.legend.location = "top_left"
        self.fig.legend.label_text_font_size = "8pt"

    def update(self, delays: Sequence[float], jitter: bool) -> None:
        """Delays (upper bounds) for attempts 1..n; with jitter, the mean is half of each."""
        from forge_nb.dashboard.format import duration

        n = len(delays)
        self.source.data = {
            "attempt": list(range(1, n + 1)),
            "delay": list(delays),
            "label": [duration(d) for d in delays],
            "half": [d / 2 if jitter else math.nan for d in delays],
        }
        self.bars.glyph.fill_alpha = 0.35 if jitter else 0.8
