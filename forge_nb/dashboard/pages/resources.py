"""Resources and DB health: per-minute samples every worker process writes."""

from __future__ import annotations

from typing import Any

import panel as pn
from bokeh.models import DataRange1d
from bokeh.palettes import Category10_10

from forge_nb.dashboard.charts import MultiSeriesChart
from forge_nb.dashboard.data import Snapshot, sample_series
from forge_nb.dashboard.pages.base import Context, Page

SAMPLE_RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}
MB = 1024.0 * 1024.0
GB = MB * 1024.0

NO_SAMPLES = (
    "<span style='font-size:13px'><i>No samples in this range yet: worker processes "
    "(<code>forge-nb worker</code>, <code>await app.start()</code>) write one per "
    "minute.</i></span>"
)


class SampledPage(Page):
    """A page of sample charts over a chosen range (shared x range for all charts)."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.range = pn.widgets.RadioButtonGroup(
            options=list(SAMPLE_RANGES),
            value="1h",
            button_type="default",
            css_classes=["fnb-sample-range"],
        )
        self.range.param.watch(lambda _e: ctx.refresh(), "value")
        self.x_range = DataRange1d()
        self.empty = pn.pane.HTML(NO_SAMPLES, visible=False)

    def since(self, snap: Snapshot) -> float:
        """Start of the chosen range."""
        return snap.now - SAMPLE_RANGES[str(self.range.value)]


class ResourcesPage(SampledPage):
    """CPU, memory, disk I/O and free disk, one line per process."""

    title = "Resources"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cpu = MultiSeriesChart(title="CPU", y_label="% of one core", x_range=self.x_range)
        self.rss = MultiSeriesChart(
            title="Memory (resident)", y_label="MB", x_range=self.x_range, y_format="0,0"
        )
        self.io = MultiSeriesChart(
            title="Disk I/O (solid read, dashed write)",
            y_label="MB / minute",
            x_range=self.x_range,
            y_format="0,0.[00]",
        )
        self.disk = MultiSeriesChart(
            title="Free disk where the data lives",
            y_label="GB",
            x_range=self.x_range,
            y_format="0,0.[0]",
        )
        charts = [self.cpu, self.rss, self.io, self.disk]
        self._panel = pn.Column(
            pn.Row(pn.pane.HTML("<b>Range</b>", margin=(12, 5)), self.range),
            self.empty,
            *[pn.pane.Bokeh(c.fig, sizing_mode="stretch_width") for c in charts],
            sizing_mode="stretch_width",
        )

    @property
    def panel(self) -> Any:
        """The tab's content."""
        return self._panel

    async def fetch(self, snap: Snapshot) -> None:
        """Read resource samples."""
        snap.resources = await self.ctx.source.resources(self.since(snap))

    def update(self, snap: Snapshot) -> None:
        """Redraw the lines (one per process)."""
        if snap.resources is None:
            return
        self.empty.visible = not snap.resources
        per_host = sample_series(
            snap.resources,
            ["cpu_percent", "rss_bytes", "read_bytes", "write_bytes", "disk_free_bytes"],
        )
        self.cpu.update({h: {"t": s["t"], "y": s["cpu_percent"]} for h, s in per_host.items()})
        self.rss.update(
            {h: {"t": s["t"], "y": [v / MB for v in s["rss_bytes"]]} for h, s in per_host.items()}
        )
        io: dict[str, dict[str, list[float]]] = {}
        styles: dict[str, dict[str, Any]] = {}
        for i, (h, s) in enumerate(sorted(per_host.items())):
            color = Category10_10[i % 10]
            io[f"{h} read"] = {"t": s["t"], "y": [v / MB for v in s["read_bytes"]]}
            io[f"{h} write"] = {"t": s["t"], "y": [v / MB for v in s["write_bytes"]]}
            styles[f"{h} read"] = {"color": color}
            styles[f"{h} write"] = {"color": color, "line_dash": "dashed"}
        self.io.update(io, styles)
        self.disk.update(
            {
                h: {"t": s["t"], "y": [v / GB for v in s["disk_free_bytes"]]}
                for h, s in per_host.items()
            }
        )
