"""Workflow: one job's connected graph (its dependencies and dependents) as a live layered DAG.

Opened from the inspector (``?tab=workflow&job=ID``) or by typing a job id. Each tick
while shown re-reads ``app.job_graph`` (at most `GRAPH_LIMIT` jobs) and replaces the
sources' data when something changed: a status (colour) or the graph itself (layout).
Nothing here changes a job, so read-only mode has nothing to hide.
"""

from __future__ import annotations

import math
from typing import Any

import panel as pn
from bokeh.models import ColumnDataSource, HoverTool, OpenURL, TapTool
from bokeh.models.annotations import LabelSet

from forge_nb.dashboard.charts import new_figure
from forge_nb.dashboard.dag_layout import layout
from forge_nb.dashboard.data import Tick
from forge_nb.dashboard.format import STATUS_COLORS, esc, first_line
from forge_nb.dashboard.pages.base import Context, Page, session_arg
from forge_nb.storage.records import STATUSES, JobGraph

#: Jobs drawn at most (the nearest ones to the chosen job).
GRAPH_LIMIT = 500
#: Above this many jobs, nodes carry no text label (the hover still names them).
LABELS_UP_TO = 60
NODE_COLUMNS = ("id", "kind", "queue", "status", "error", "color", "x", "y", "label", "line")
EDGE_COLUMNS = ("x0", "y0", "x1", "y1", "ax", "ay", "angle")


def graph_data(graph: JobGraph, focus: str) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """(node columns, edge columns) for the figure's two sources: positions from `layout`,
    colours from the status, an arrow head near each dependent end."""
    ids = [n.id for n in graph.nodes]
    placed = layout(ids, graph.edges)
    labels = len(ids) <= LABELS_UP_TO
    nodes: dict[str, list[Any]] = {c: [] for c in NODE_COLUMNS}
    for n in graph.nodes:
        where = placed[n.id]
        row = {
            "id": n.id,
            "kind": n.kind,
            "queue": n.queue,
            "status": n.status,
            "error": first_line(n.last_error) if n.last_error else "",
            "color": STATUS_COLORS.get(n.status, "#888"),
            "x": where.layer,
            "y": where.y,
            "label": f"{n.kind} {n.id}" if labels else "",
            "line": 3 if n.id == focus else 1,
        }
        for column, value in row.items():
            nodes[column].append(value)
    edges: dict[str, list[Any]] = {c: [] for c in EDGE_COLUMNS}
    for job, dep in graph.edges:
        if job not in placed or dep not in placed:
            continue
        x0, y0 = placed[dep].layer, placed[dep].y
        x1, y1 = placed[job].layer, placed[job].y
        length = math.hypot(x1 - x0, y1 - y0) or 1.0
        back = 0.12 / length  # the arrow head sits just before the dependent's circle
        row = {
            "x0": x0,
            "y0": y0,
            "x1": x1,
            "y1": y1,
            "ax": x1 - (x1 - x0) * back,
            "ay": y1 - (y1 - y0) * back,
            # Bokeh's triangle points up: turn it along the edge.
            "angle": math.atan2(y1 - y0, x1 - x0) - math.pi / 2,
        }
        for column, value in row.items():
            edges[column].append(value)
    return nodes, edges


def summary_html(graph: JobGraph, focus: str) -> str:
    """One line: how many jobs per status, and whether the graph was cut at `GRAPH_LIMIT`."""
    per_status = {s: 0 for s in STATUSES}
    for n in graph.nodes:
        per_status[n.status] = per_status.get(n.status, 0) + 1
    parts = [
        f'<span class="fnb-wf-count" style="color:{STATUS_COLORS.get(s, "#888")}">'
        f"{esc(s)} {count:,}</span>"
        for s, count in per_status.items()
        if count
    ]
    cut = (
        f" · <b>showing the {len(graph.nodes):,} jobs nearest to it</b>" if graph.truncated else ""
    )
    return (
        f'<div class="fnb-wf-summary" style="font-size:13px">Workflow of job '
        f"<b>{esc(focus)}</b>: {len(graph.nodes):,} job(s), {len(graph.edges):,} "
        f"dependencies{cut}. {' · '.join(parts)}</div>"
    )


def workflow_figure(nodes: ColumnDataSource, edges: ColumnDataSource) -> Any:
    """The DAG figure drawing ``nodes`` and ``edges`` (sources with `NODE_COLUMNS` and
    `EDGE_COLUMNS`, as `graph_data` fills them)."""
    fig = new_figure(
        height=520,
        sizing_mode="stretch_width",
        tools="pan,wheel_zoom,box_zoom,reset,save",
        active_scroll="wheel_zoom",
        name="workflow_figure",
    )
    fig.segment("x0", "y0", "x1", "y1", source=edges, line_color="#8d99ae", line_alpha=0.7)
    fig.scatter("ax", "ay", source=edges, marker="triangle", angle="angle", size=8, color="#8d99ae")
    circles = fig.scatter(
        "x",
        "y",
        source=nodes,
        size=18,
        fill_color="color",
        line_color="#222",
        line_width="line",
        name="workflow_jobs",
    )
    fig.add_layout(
        LabelSet(
            x="x",
            y="y",
            text="label",
            source=nodes,
            x_offset=10,
            y_offset=6,
            text_font_size="8pt",
        )
    )
    fig.add_tools(
        HoverTool(
            renderers=[circles],
            tooltips=[
                ("job", "@id"),
                ("kind", "@kind"),
                ("queue", "@queue"),
                ("status", "@status"),
                ("error", "@error"),
            ],
        ),
        # A click opens the job in the inspector (a relative link: works under a prefix).
        TapTool(renderers=[circles], callback=OpenURL(url="?tab=jobs&job=@id", same_tab=True)),
    )
    fig.xaxis.axis_label = "layer (longest dependency path from a root)"
    fig.yaxis.visible = False
    fig.ygrid.grid_line_color = None
    fig.xaxis.ticker.desired_num_ticks = 3
    fig.min_border_left = 20
    # Room right of the last layer for its labels (drawn right of each node), which the
    # default 10% padding clipped.
    fig.x_range.range_padding = 0.3
    return fig


def graph_figure(graph: JobGraph, focus: str = "") -> Any:
    """A one-off figure of ``graph`` (a notebook shows ``await app.job_graph(ref)`` with it)."""
    nodes, edges = graph_data(graph, focus)
    return workflow_figure(ColumnDataSource(nodes), ColumnDataSource(edges))


class WorkflowPage(Page):
    """A job's workflow graph: layers left to right (dependencies before their dependents)."""

    title = "Workflow"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.job = pn.widgets.TextInput(
            name="job id",
            placeholder="a job id (the inspector's Workflow link fills it in)",
            value=session_arg("job") or "",
            width=320,
            css_classes=["fnb-wf-job"],
        )
        self.job.param.watch(lambda _e: ctx.refresh(), "value")
        self.summary = pn.pane.HTML(
            '<div class="fnb-wf-summary"><i>Enter a job id.</i></div>',
            sizing_mode="stretch_width",
            css_classes=["fnb-wf-summary-pane"],
        )
        self.nodes = ColumnDataSource({c: [] for c in NODE_COLUMNS}, name="workflow_nodes")
        self.edges = ColumnDataSource({c: [] for c in EDGE_COLUMNS}, name="workflow_edges")
        self.fig = workflow_figure(self.nodes, self.edges)
        self._graph: JobGraph | None = None
        self._error: str | None = None
        self._panel = pn.Column(
            pn.Row(self.job),
            self.summary,
            pn.pane.Bokeh(self.fig, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )

    @property
    def job_id(self) -> str:
        """The job whose workflow is shown ("" for none)."""
        return (self.job.value or "").strip()

    async def fetch(self, snap: Tick) -> None:
        """Read the graph of the chosen job (None when there is no such job)."""
        self._error = None
        if not self.job_id:
            self._graph = None
            return
        if await self.ctx.app.job(self.job_id) is None:
            self._graph = None
            self._error = f"no job {self.job_id}"
            return
        self._graph = await self.ctx.app.job_graph(self.job_id, limit=GRAPH_LIMIT)

    def update(self, snap: Tick) -> None:
        """Show the graph: new data only when a status or the graph itself changed."""
        graph = self._graph
        if graph is None:
            text = esc(self._error) if self._error else "Enter a job id."
            html = f'<div class="fnb-wf-summary"><i>{text}</i></div>'
            nodes: dict[str, list[Any]] = {c: [] for c in NODE_COLUMNS}
            edges: dict[str, list[Any]] = {c: [] for c in EDGE_COLUMNS}
        else:
            html = summary_html(graph, self.job_id)
            nodes, edges = graph_data(graph, self.job_id)
        if self.summary.object != html:
            self.summary.object = html
        if dict(self.nodes.data) != nodes:
            self.nodes.data = nodes
        if dict(self.edges.data) != edges:
            self.edges.data = edges
