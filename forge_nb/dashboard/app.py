"""`create_dashboard`: one browser session's Mission Control, live from one periodic callback.

Panel calls the factory once per session, so every session owns its Bokeh
sources and figures. One periodic callback per session (every 1.5 s) reads one
`Tick` (what every page shows), lets the shown tab read its own data (`Page.fetch`)
and pushes both into the existing widgets and sources; nothing is re-rendered. Reads are shared
between sessions through `forge_nb.dashboard.data.source_for`. A session builds
the Overview up front and every other tab when it is first shown (`PageSlot`), so
a page load costs the server one page, not eleven.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import panel as pn

from forge_nb import compat
from forge_nb.dashboard.data import Tick, source_for
from forge_nb.dashboard.format import esc, utc
from forge_nb.dashboard.pages.base import NOTICE_CSS, Context, Page
from forge_nb.dashboard.pages.cron import CronPage
from forge_nb.dashboard.pages.db_health import DbHealthPage
from forge_nb.dashboard.pages.jobs import MODES, JobBrowser
from forge_nb.dashboard.pages.overview import LATENCY_WINDOW_S, OverviewPage
from forge_nb.dashboard.pages.processes import ProcessesPage
from forge_nb.dashboard.pages.queue_metrics import QueueMetricsPage
from forge_nb.dashboard.pages.queues import QueuesPage
from forge_nb.dashboard.pages.resources import ResourcesPage
from forge_nb.dashboard.pages.workflow import WorkflowPage
from forge_nb.runtime.app import App

log = logging.getLogger("forge_nb.dashboard")

#: Milliseconds between two ticks of a session.
TICK_MS = 1500
#: Ticks after a page is shown that change its structure (see `Dashboard._batched`).
SETTLING_TICKS = 1
#: Seconds a notebook output's ticks wait after its browser opened the output's comm: Panel
#: sends what it kept for the output before then, each message on its own 0.1 s timer
#: (see `compat.output_comms_open`), and the first tick's changes must come after them.
OUTPUT_SETTLE_S = 0.5
#: Seconds between two looks at whether a notebook output's browser has opened its comm.
OUTPUT_POLL_S = 0.2
#: Longest wait for a browser to open an output's comm before ticking anyway: an output
#: no browser ever draws (cleared first, run headless) must not stop the others for good.
OUTPUT_WAIT_MAX_S = 30.0
#: A new session's Overview starts from the newest snapshot another session's tick read,
#: if it is at most this old (seconds); its own first tick follows at once.
PREFILL_MAX_AGE_S = 10.0
TITLE = "forge-nb Mission Control"

HEADER_CSS = """
.fnb-header { display: flex; gap: 14px; align-items: baseline; flex-wrap: wrap; font-size: 13px; }
.fnb-header .db { font-family: monospace; opacity: .85; }
.fnb-header .ro { background: #e9a23b; color: #222; padding: 1px 8px; border-radius: 10px;
  font-weight: 600; }
.fnb-header .live { color: #2a9d8f; font-weight: 600; }
.fnb-header .down { color: #d1495b; font-weight: 600; }
"""


def tab_slug(title: str) -> str:
    """``"Per-queue metrics"`` → ``"per-queue-metrics"`` (for ``?tab=`` links)."""
    return "-".join(title.lower().replace("-", " ").split())


class PageSlot:
    """A tab whose page is built on first show: a session pays only for the tabs it opens.

    Building every page (and its Bokeh figures) was most of a page load's time on the
    server; most sessions only ever look at the Overview.
    """

    def __init__(self, title: str, build: Callable[[], Page]) -> None:
        self.title = title
        self._build = build
        self.page: Page | None = None
        #: The tab's content: empty until the page is built.
        self.holder = pn.Column(sizing_mode="stretch_width")

    def ensure(self) -> Page:
        """The page, built (and put into its tab) on the first call."""
        if self.page is None:
            self.page = self._build()
            self.holder.objects = [self.page.panel]
        return self.page


def page_slots(ctx: Context, overview: OverviewPage) -> list[PageSlot]:
    """Every tab in order; only the Overview is built up front (its timeline always streams)."""
    jobs = [
        PageSlot(MODES[mode].title, functools.partial(JobBrowser, ctx, mode))
        for mode in ("jobs", "scheduled", "retries", "dead")
    ]
    others: list[type[Page]] = [
        CronPage,
        QueuesPage,
        ProcessesPage,
        ResourcesPage,
        DbHealthPage,
        QueueMetricsPage,
        WorkflowPage,
    ]
    first = PageSlot(overview.title, lambda: overview)
    first.ensure()
    return [first, *jobs, *[PageSlot(cls.title, functools.partial(cls, ctx)) for cls in others]]


class Dashboard:
    """The session's pages, tabs and its single live-update loop."""

    def __init__(self, app: App, *, read_only: bool = False, show_title: bool = True) -> None:
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            # Tables join the page only once they have rows (see LiveTable), so the
            # Tabulator scripts must be requested up front, not found in the first render.
            pn.extension("tabulator")
        self.app = app
        self.read_only = read_only
        self.show_title = show_title
        doc = pn.state.curdoc
        self._served = bool(doc is not None and doc.session_context is not None)
        self.ctx = Context(
            app=app,
            source=source_for(app),
            read_only=read_only,
            refresh=self.refresh,
            streaming=self._served,
        )
        self.overview = OverviewPage(self.ctx)
        self.slots = page_slots(self.ctx, self.overview)
        first = self._requested_tab()
        if first:
            self.slots[first].ensure().activated()
        self.tabs = pn.Tabs(
            *[(slot.title, slot.holder) for slot in self.slots],
            active=first,
            dynamic=True,
            sizing_mode="stretch_width",
            css_classes=["fnb-tabs"],
        )
        self.tabs.param.watch(self._tab_changed, "active")
        self.header = pn.pane.HTML(
            self._header_html(None, None),
            stylesheets=[HEADER_CSS],
            sizing_mode="stretch_width",
            css_classes=["fnb-header-pane"],
        )
        self.layout = pn.Column(
            self.header, self.tabs, sizing_mode="stretch_width", stylesheets=[NOTICE_CSS]
        )
        self._busy = False
        self._again = False
        self._read_s = 0.0
        self._settling = SETTLING_TICKS
        self._prefill(first)
        self._doc = doc
        #: The notebook output's document, once shown (see `shown_in`).
        self._output_doc: Any = None
        #: When the notebook outputs' comms were all found open (None: not yet, or one closed).
        self._outputs_open_at: float | None = None
        #: Since when an output's comm has been found closed (None: none is).
        self._outputs_closed_at: float | None = None
        self._output_look: Any = None  # the pending timer of `_outputs_ready`
        self._callback: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        if self._served:
            pn.state.onload(self._start)
        else:
            self._start()

    def _prefill(self, first: int) -> bool:
        """Show the newest shared snapshot in the Overview as the page is built.

        Its strip, cards, bars and live-process table are then part of the page the
        browser first renders, instead of joining in the session's first tick (the
        slowest tick of all, the one that blocks the loop longest). That tick still runs
        frozen (`SETTLING_TICKS`): each HTML pane's first update after the page is
        built also replaces its stylesheet list (the template's design), and unfrozen
        every such change walks the whole model graph. Served sessions on the Overview
        only; without a recent snapshot (a server's first session) the first tick
        builds it all, as before.
        """
        if not self._served or first != 0:
            return False
        snap = self.ctx.source.latest(PREFILL_MAX_AGE_S)
        if snap is None:
            return False
        try:
            self.overview.update(snap)
        except Exception:  # a bug here must not cost the page: the first tick shows it all
            log.exception("dashboard prefill failed")
            return False
        self.header.object = self._header_html(snap.now, None)
        return True

    def _requested_tab(self) -> int:
        """The tab named by ``?tab=`` in the page URL (title or slug, any case), else 0."""
        if not self._served:
            return 0
        raw = pn.state.session_args.get("tab") or [b""]
        wanted = tab_slug(raw[0].decode("utf-8", "replace"))
        for index, slot in enumerate(self.slots):
            if tab_slug(slot.title) == wanted:
                return index
        return 0

    # -- live loop ---------------------------------------------------------------------------
    def _start(self) -> None:
        if self._callback is None:
            self._callback = pn.state.add_periodic_callback(
                self.tick,  # type: ignore[arg-type]  # Panel awaits coroutine callbacks
                period=TICK_MS,
            )
            self.refresh()  # the first snapshot now, not one period later

    @property
    def pages(self) -> list[Page]:
        """The pages built so far, in tab order."""
        return [slot.page for slot in self.slots if slot.page is not None]

    @property
    def active_page(self) -> Page:
        """The page of the selected tab (built now if it never was)."""
        return self.slots[self.tabs.active].ensure()

    def _tab_changed(self, _event: Any) -> None:
        self.active_page.activated()
        self._settling = SETTLING_TICKS
        self.refresh()

    def refresh(self) -> None:
        """Tick as soon as possible (after the running tick, if any)."""
        if self._busy:
            self._again = True
            return
        if self._served and self._doc is not None:
            self._doc.add_next_tick_callback(self.tick)  # type: ignore[arg-type]  # awaited
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.tick())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def tick(self) -> None:
        """Read one snapshot and show it (never two ticks at once)."""
        if self._busy:
            self._again = True
            return
        self._busy = True
        try:
            while True:
                self._again = False
                await self._tick_once()
                if not self._again:
                    break
        finally:
            self._busy = False

    async def _tick_once(self) -> None:
        if not self._connected():
            return
        t0 = time.perf_counter()
        self._read_s = 0.0
        try:
            in_output = self._output_doc is not None
            with compat.current_doc(self._output_doc) if in_output else nullcontext():
                await self._tick_inner()
        finally:
            took = time.perf_counter() - t0
            # bench/soak.py reads these lines: "tick took" is the update's whole latency,
            # "show" the part that holds the event loop (and every other request) up.
            log.debug(
                "tick took %.3f s (read %.3f s, show %.3f s, tab %s)",
                took,
                self._read_s,
                took - self._read_s,
                self.tabs.active,
            )

    def shown_in(self, document: Any) -> None:
        """The notebook output this dashboard is shown in: ticks run with it as Panel's
        current document, so the stylesheets they give panes come from that document's
        shared set (inline there) and not from Panel's CDN (see forge_nb.notebook.inline_css)."""
        if not self._served:
            self._output_doc = document

    def _connected(self) -> bool:
        """False once a served session's browser has gone (a reload leaves the old session
        ticking until Bokeh expires it, ~15-30 s later: that work would only slow the rest),
        and while a notebook output waits for its browser (`_outputs_ready`)."""
        if not self._served:
            return self._outputs_ready()
        if self._doc is None or self._doc.session_context is None:
            return True
        return compat.connection_count(self._doc) > 0

    def _outputs_ready(self) -> bool:
        """Whether the notebook outputs showing the dashboard may get changes: their comms
        open for `OUTPUT_SETTLE_S` (see `compat.output_comms_open`). A change pushed earlier
        could reach BokehJS ahead of the models it refers to: the Overview's table stayed
        blank (about one notebook in ten, on a busy machine). Until then ticks are skipped
        and a timer looks again, so the first tick follows soon after. Shown nowhere: ready."""
        comms = compat.output_comms_open(self.layout)
        now = time.monotonic()
        if not all(comms):
            self._outputs_open_at = None
            if self._outputs_closed_at is None:
                self._outputs_closed_at = now
            if now - self._outputs_closed_at < OUTPUT_WAIT_MAX_S:
                self._look_again(OUTPUT_POLL_S)
                return False
            return True  # a browser that never came: tick for the others
        self._outputs_closed_at = None
        if not comms:
            return True
        if self._outputs_open_at is None:
            self._outputs_open_at = now
        wait = self._outputs_open_at + OUTPUT_SETTLE_S - now
        if wait > 0:
            # A timer, not a task: the loop runs due timers in time order, so every message
            # Panel kept (each on an earlier timer) is sent before this tick's changes.
            self._look_again(wait)
            return False
        return True

    def _look_again(self, delay: float) -> None:
        if self._output_look is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        def look() -> None:
            self._output_look = None
            self.refresh()

        self._output_look = loop.call_later(delay, look)

    async def _tick_inner(self) -> None:
        t0 = time.perf_counter()
        now = time.time()
        snap = Tick(now=now, metrics_since=self.overview.timeline_since(now))
        page = self.active_page
        try:
            source = self.ctx.source
            (
                snap.counts,
                snap.processes,
                snap.queues,
                snap.metrics,
                snap.stranded,
            ) = await asyncio.gather(
                source.counts(),
                source.processes(),
                source.queues(),
                # The timeline shows counts; only the latency cards' minutes need histograms.
                source.metric_rows(snap.metrics_since, histograms_from=now - LATENCY_WINDOW_S),
                source.stranded(),
            )
            if page is not self.overview:
                await page.fetch(snap)
        except Exception as exc:  # the database may be down: say so, keep ticking
            log.warning("dashboard refresh failed: %s", exc)
            self.header.object = self._header_html(now, f"database unreachable: {exc}")
            return
        finally:
            self._read_s = time.perf_counter() - t0
        self.ctx.source.remember(snap)
        if not self._served and not self._outputs_ready():
            return  # shown again, in an output whose browser connected during the read
        if page is not self.slots[self.tabs.active].page:
            # The tab changed while this tick read: that page is hidden now, and a change
            # of structure there (a chart's first lines and legend) has no view in the
            # browser to go to (BokehJS: "cannot find a view"). The tick the tab change
            # asked for shows the page now in front.
            self._again = True
            return
        with self._one_message(page), self._batched():
            self._show(snap, page)
        if not self._served:
            compat.push_notebook(self.layout)

    def _show(self, snap: Tick, page: Page) -> None:
        # Hidden tabs have no models in the page: only raw Bokeh sources may change there
        # (a Panel pane changed while hidden would re-render detached, without its styles).
        try:
            self.overview.update_timeline(snap)
            page.update(snap)
        except Exception as exc:  # a bug in one view must not stop the live updates
            log.exception("dashboard update failed")
            self.header.object = self._header_html(snap.now, f"display error: {exc}")
            return
        self.header.object = self._header_html(snap.now, None)

    @contextmanager
    def _one_message(self, page: Page) -> Iterator[None]:
        """Send the whole tick's changes to the browser as one message.

        Otherwise every changed pane, table and source is its own PATCH-DOC message,
        and Bokeh builds each one's serializer from every model of the page (a few
        hundred): most of a tick's time on the event loop under load. Only for ticks
        that change values alone: the Overview's after `SETTLING_TICKS`. Changes of
        structure (a table joins, a chart gets a line and a legend entry for a new
        host) must reach BokehJS one by one, which builds the new views in between.
        """
        if self._doc is None or not self._served or self._settling > 0 or page is not self.overview:
            yield
            return
        with compat.one_message(self._doc):  # keeps their order
            yield

    def _batched(self) -> AbstractContextManager[None]:
        """In the first tick(s) of a shown page, one model-graph walk instead of several.

        Those ticks change the page's structure (a table joins, panes get their first
        styles) and Bokeh re-walks every model of the document after each such change,
        blocking the event loop each time. Later ticks change only
        values; freezing those would add a walk (leaving a freeze always walks), so they
        run as they are.
        """
        if self._settling <= 0 or self._doc is None or not self._served:
            return nullcontext()
        self._settling -= 1
        return compat.frozen(self._doc)

    def _header_html(self, at: float | None, error: str | None) -> str:
        parts = [f"<b>{esc(TITLE)}</b>"] if self.show_title else []
        parts.append(f'<span class="db">{esc(self.app.safe_url)}</span>')
        if self.read_only:
            parts.append('<span class="ro">read-only</span>')
        if error:
            parts.append(f'<span class="down">{esc(error)}</span>')
        elif at is not None:
            parts.append(
                f'<span class="live">● live</span> <span>updated {esc(utc(at))} UTC</span>'
            )
        return f'<div class="fnb-header">{"".join(parts)}</div>'

    def __panel__(self) -> Any:
        return self.layout


def create_dashboard(app: App, *, read_only: bool = False) -> pn.viewable.Viewable:
    """One session's dashboard UI (call it per session; Panel's ``pn.serve`` factory does)."""
    # The layout's widget callbacks and the periodic callback keep the Dashboard alive.
    return Dashboard(app, read_only=read_only).layout


def _dashboard_without_title(app: App, read_only: bool) -> pn.viewable.Viewable:
    return Dashboard(app, read_only=read_only, show_title=False).layout


def create_page(app: App, *, read_only: bool = False) -> Any:
    """The dashboard in a themed page (light/dark toggle) — what the servers show."""
    template = pn.template.BootstrapTemplate(
        title=TITLE,
        header_background="#2b4162",
        sidebar_width=0,
        collapsed_sidebar=True,
    )
    template.main.append(_dashboard_without_title(app, read_only))  # type: ignore[union-attr]
    template.server_doc = functools.partial(  # type: ignore[method-assign]
        _frozen_server_doc, template.server_doc
    )
    return template


def _frozen_server_doc(
    server_doc: Callable[..., Any], doc: Any = None, title: Any = None, location: Any = True
) -> Any:
    """The template's ``server_doc`` with one walk of the document's model graph at the end.

    Bokeh re-walks every model of a document each time a root is added or a theme is
    applied; a template adds its parts one by one, a walk of a few hundred models each.
    Frozen, the document is walked once, when the page is complete.
    """
    if doc is None:
        return server_doc(doc=doc, title=title, location=location)
    with compat.frozen(doc):
        local = _serve_stylesheets_locally(doc)
        if location is True:
            _keep_stylesheets_relative(doc)
        built = server_doc(doc=doc, title=title, location=location)
        if local is not None:
            for root in doc.roots:
                local(root)
        return built


#: Where Panel's own static files are, relative to the page (which is at the server's root
#: or at its ``--prefix``).
_RELATIVE_DIST = "static/extensions/panel/"


def _keep_stylesheets_relative(doc: Any) -> None:
    """Keep the page's stylesheet URLs relative to the page after the browser reports its URL.

    When the browser's location arrives, Panel recomputes the stylesheets' base from the
    path below the server's prefix and, for a page at the top, makes it
    ``/static/extensions/panel/``: right at the server's root, 404 behind a ``--prefix``
    (only when the browser uses the server's own port; behind a proxy it leaves it
    alone). The relative form is right in both cases. Called before the template builds
    the page (which first syncs the location), so this watcher runs right after Panel's.
    """
    if doc.session_context is None:
        return

    def fix(_event: Any = None) -> None:
        variables = compat.template_variables(doc)
        if variables.get("dist_url") == "/" + _RELATIVE_DIST:
            variables["dist_url"] = _RELATIVE_DIST
            compat.forget_stylesheets(doc)

    with compat.current_doc(doc):
        location = pn.state.location  # made (and synced once) now; the template uses this one
    fix()
    if location is not None:
        location.param.watch(fix, "pathname")


def _serve_stylesheets_locally(doc: Any) -> Callable[[Any], None] | None:
    """Point the page's stylesheets at this server, as Panel does when it renders a page.

    Panel sets the document's ``dist_url`` and rewrites its models' CDN stylesheet URLs
    to the server's own static files while it renders that session's HTML. With
    ``reuse_sessions`` the HTML is rendered from another (kept) session, so a new
    session would reach the browser pointing at cdn.holoviz.org (offline: failed
    requests, unstyled widgets). Done here, before its models exist, for every served
    session; returns what patches a root's stylesheets (None: nothing to do). Only
    with Bokeh's "server" resources (the default; ``BOKEH_RESOURCES`` may change it).
    """
    if not pn.config.reuse_sessions or doc.session_context is None:
        return None
    from bokeh.settings import settings

    if settings.resources(default="server") != "server":
        return None
    dist = compat.local_dist()
    with compat.current_doc(doc):
        dist_url = f"{pn.state.rel_path}/{dist}" if pn.state.rel_path else dist
    variables = compat.template_variables(doc)
    variables["dist_url"] = dist_url
    variables["theme_name"] = pn.config.theme
    return compat.css_patcher(dist_url)
