"""DB health: read/write latency percentiles, operations per minute and pool saturation."""

from __future__ import annotations

from typing import Any

import panel as pn

from forge_nb.dashboard.charts import MultiSeriesChart
from forge_nb.dashboard.data import Snapshot, combined_samples
from forge_nb.dashboard.format import PERCENTILE_COLORS
from forge_nb.dashboard.pages.base import Context
from forge_nb.dashboard.pages.resources import SampledPage

LATENCY_KEYS = [f"{op}_{q}_ms" for op in ("read", "write") for q in ("p50", "p95", "p99")]
POOL_KEYS = ["pool_size", "pool_in_use", "pool_waiting"]


class DbHealthPage(SampledPage):
    """Database latency as every worker process sees it, summed or worst over processes."""

    title = "DB health"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.latency = MultiSeriesChart(
            title="Storage call latency, worst process (solid read, dashed write)",
            y_label="milliseconds",
            x_range=self.x_range,
            y_format="0,0.[00]",
        )
        self.ops = MultiSeriesChart(
            title="Storage operations, all processes",
            y_label="operations / minute",
            x_range=self.x_range,
            y_format="0,0",
        )
        self.pool = MultiSeriesChart(
            title="Connection pool, all processes (peak per minute)",
            y_label="connections",
            x_range=self.x_range,
            y_format="0,0",
        )
        self._panel = pn.Column(
            pn.Row(pn.pane.HTML("<b>Range</b>", margin=(12, 5)), self.range),
            self.empty,
            *[
                pn.pane.Bokeh(c.fig, sizing_mode="stretch_width")
                for c in (self.latency, self.ops, self.pool)
            ],
            sizing_mode="stretch_width",
        )

    @property
    def panel(self) -> Any:
        """The tab's content."""
        return self._panel

    async def fetch(self, snap: Snapshot) -> None:
        """Read DB health samples."""
        snap.db_health = await self.ctx.source.db_health(self.since(snap))

    def update(self, snap: Snapshot) -> None:
        """Redraw the three charts."""
        if snap.db_health is None:
            return
        self.empty.visible = not snap.db_health
        data = combined_samples(snap.db_health, sums=["ops", *POOL_KEYS], maxes=LATENCY_KEYS)
        t = data["t"]
        latency: dict[str, dict[str, list[float]]] = {}
        styles: dict[str, dict[str, Any]] = {}
        for key in LATENCY_KEYS:
            op, q, _ = key.split("_")
            label = f"{op} {q}"
            latency[label] = {"t": t, "y": data[key]}
            styles[label] = {
                "color": PERCENTILE_COLORS[q],
                "line_dash": "solid" if op == "read" else "dashed",
            }
        self.latency.update(latency, styles)
        self.ops.update({"ops": {"t": t, "y": data["ops"]}}, {"ops": {"color": "#6c8ebf"}})
        self.pool.update(
            {
                "size": {"t": t, "y": data["pool_size"]},
                "in use": {"t": t, "y": data["pool_in_use"]},
                "waiting": {"t": t, "y": data["pool_waiting"]},
            },
            {
                "size": {"color": "#8d99ae", "line_dash": "dotted"},
                "in use": {"color": "#2a9d8f"},
                "waiting": {"color": "#d1495b"},
            },
        )
