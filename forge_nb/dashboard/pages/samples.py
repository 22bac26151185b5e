"""One chart page over the per-minute samples every worker process writes.

Resources and DB health are this page with other charts: a range picker, a note while
there are no samples, and one `MultiSeriesChart` per `ChartSpec` on a shared x range.
A subclass says where its samples come from (`read`) and how they become lines (`lines`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import panel as pn
from bokeh.models import DataRange1d

from forge_nb.dashboard.charts import MultiSeriesChart
from forge_nb.dashboard.data import Tick
from forge_nb.dashboard.pages.base import Context, Page

SAMPLE_RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}

NO_SAMPLES = (
    "<span style='font-size:13px'><i>No samples in this range yet: worker processes "
    "(<code>forge-nb worker</code>, <code>await app.start()</code>) write one per "
    "minute.</i></span>"
)

#: Lines of one chart: ``{label: {"t": [...], "y": [...]}}``.
Series = dict[str, dict[str, list[float]]]
#: Styles of those lines by label (colour, dash); labels not named get the palette.
Styles = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class ChartSpec:
    """One chart of a sample page."""

    key: str
    title: str
    y_label: str
    y_format: str | None = None


class SampleChartsPage(Page):
    """Sample charts over a chosen range (1h … 7d), all on one x range."""

    charts: tuple[ChartSpec, ...] = ()

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
        self.figures = {
            spec.key: MultiSeriesChart(
                title=spec.title, y_label=spec.y_label, x_range=self.x_range, y_format=spec.y_format
            )
            for spec in self.charts
        }
        self._panel = pn.Column(
            pn.Row(pn.pane.HTML("<b>Range</b>", margin=(12, 5)), self.range),
            self.empty,
            *[pn.pane.Bokeh(c.fig, sizing_mode="stretch_width") for c in self.figures.values()],
            sizing_mode="stretch_width",
        )
        #: The samples the last `fetch` read (None until the tab was first shown).
        self.samples: list[dict[str, Any]] | None = None

    def since(self, now: float) -> float:
        """Start of the chosen range."""
        return now - SAMPLE_RANGES[str(self.range.value)]

    async def read(self, since: float) -> list[dict[str, Any]]:
        """The samples since ``since`` (shared between sessions by the source)."""
        raise NotImplementedError

    def lines(self, samples: list[dict[str, Any]]) -> dict[str, tuple[Series, Styles | None]]:
        """Each chart's lines and their styles, by `ChartSpec.key`."""
        raise NotImplementedError

    async def fetch(self, snap: Tick) -> None:
        """Read this page's samples over the chosen range."""
        self.samples = await self.read(self.since(snap.now))

    def update(self, snap: Tick) -> None:
        """Redraw the lines."""
        if self.samples is None:
            return
        self.empty.visible = not self.samples
        for key, (series, styles) in self.lines(self.samples).items():
            self.figures[key].update(series, styles)
