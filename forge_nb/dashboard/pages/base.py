"""What every page shares: the session context, feedback messages and a confirmation step."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import panel as pn

from forge_nb import compat
from forge_nb.dashboard.data import SnapshotSource, Tick
from forge_nb.dashboard.format import esc
from forge_nb.runtime.app import App

log = logging.getLogger("forge_nb.dashboard")

NOTICE_CSS = """
.fnb-notice { padding: 6px 10px; border-radius: 4px; margin: 2px 0; font-size: 13px;
  border: 1px solid rgba(128,128,128,.4); white-space: pre-wrap; word-break: break-word; }
.fnb-ok { background: rgba(90,158,75,.18); }
.fnb-error { background: rgba(209,73,91,.20); }
.fnb-info { background: rgba(108,142,191,.18); }
"""


@dataclass
class Context:
    """One browser session's handles: the app, the shared reads, and how to refresh now."""

    app: App
    source: SnapshotSource
    read_only: bool
    #: Ask the session for a tick as soon as possible (after a filter change or an action).
    refresh: Callable[[], None]
    #: True when served (stream into sources); False in notebook output (assign whole data).
    streaming: bool = True


class Page:
    """A dashboard tab. While it is shown, each tick ``fetch`` reads (and keeps) the data
    only this page needs; ``update`` then shows it with the common `Tick` in the existing
    widgets and sources. No page's data rides on the shared `Tick`."""

    title = ""
    #: The tab's content: each page builds it in ``__init__``.
    _panel: Any

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @property
    def panel(self) -> Any:
        """The tab's content."""
        return self._panel

    async def fetch(self, snap: Tick) -> None:
        """Read what this page needs beyond the common `Tick` (only while shown)."""

    def update(self, snap: Tick) -> None:
        """Show the tick and this page's data (only called while the tab is shown)."""

    def activated(self) -> None:
        """The tab was just selected."""


class Notice:
    """A one-line result or error message (escaped)."""

    def __init__(self, css_class: str | None = None) -> None:
        self.pane = pn.pane.HTML(
            "",
            css_classes=[css_class] if css_class else [],
            stylesheets=[NOTICE_CSS],
            sizing_mode="stretch_width",
            visible=False,
            margin=(2, 5),
        )

    def show(self, text: str, kind: str = "ok") -> None:
        """Show ``text`` styled as ``ok``, ``error`` or ``info``."""
        self.pane.object = f'<div class="fnb-notice fnb-{kind}">{esc(text)}</div>'
        self.pane.visible = True

    def clear(self) -> None:
        """Hide the message."""
        self.pane.visible = False


class Confirm:
    """A confirmation step before a destructive or bulk action."""

    def __init__(self, notice: Notice, name: str) -> None:
        self.notice = notice
        self.text = pn.pane.HTML(
            "", stylesheets=[NOTICE_CSS], margin=(8, 5), css_classes=[f"fnb-question-{name}"]
        )
        self.yes = pn.widgets.Button(
            name="Confirm",
            button_type="danger",
            width=100,
            css_classes=["fnb-confirm", f"fnb-confirm-{name}"],
        )
        self.no = pn.widgets.Button(
            name="Cancel", width=90, css_classes=["fnb-cancel", f"fnb-cancel-{name}"]
        )
        self.yes.on_click(self._confirmed)
        self.no.on_click(lambda _e: self.dismiss())
        self.panel = pn.Row(
            self.text, self.yes, self.no, visible=False, sizing_mode="stretch_width"
        )
        self._action: Callable[[], Awaitable[str]] | None = None

    def ask(self, message: str, action: Callable[[], Awaitable[str]]) -> None:
        """Show ``message`` with Confirm/Cancel; ``action`` runs on Confirm, its text is shown."""
        self._action = action
        self.text.object = f'<div class="fnb-notice fnb-info">{esc(message)}</div>'
        self.panel.visible = True

    def dismiss(self) -> None:
        """Hide without running anything."""
        self._action = None
        self.panel.visible = False

    async def _confirmed(self, _event: Any) -> None:
        action, self._action = self._action, None
        self.panel.visible = False
        if action is not None:
            await run_action(action, self.notice)


async def run_action(action: Callable[[], Awaitable[str]], notice: Notice) -> None:
    """Run a mutation; show its summary, or its error, never a traceback."""
    try:
        message = await action()
    except Exception as exc:  # shown to the operator; the dashboard keeps running
        log.warning("dashboard action failed: %s", exc)
        notice.show(f"failed: {exc}", "error")
    else:
        notice.show(message, "ok")


def session_arg(name: str) -> str | None:
    """A query argument of the served page's URL (``?job=…``); None when absent or not served.

    Links between pages (the inspector's to a dependency, to the Workflow view) are plain
    relative URLs, so they also work behind a ``--prefix`` and open in a new tab.
    """
    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        return None
    values = pn.state.session_args.get(name) or []
    return values[0].decode("utf-8", "replace").strip() or None if values else None


def options_with_all(names: list[str], all_label: str = "(all)") -> dict[str, str]:
    """Select options: an "all" entry (empty value) and each name."""
    return {all_label: "", **{n: n for n in names}}


class Table(pn.widgets.Tabulator):
    """Panel's Tabulator, whose theme stylesheet also comes from the document's shared set.

    Tabulator makes a new link to its theme's CSS on Panel's CDN at every restyle; in a
    notebook output, whose stylesheets forge-nb keeps inline (notebook.inline_css), that
    link would be the one request to leave the machine.
    """

    def _process_param_change(self, params: dict[str, Any]) -> dict[str, Any]:
        params = super()._process_param_change(params)
        if "stylesheets" in params:
            params["stylesheets"] = compat.inline_copies(params["stylesheets"])
        return params


class LiveTable:
    """A Tabulator that enters the page with its first rows, and re-sends rows after a re-show.

    Panel's Tabulator drops data that reaches the browser while the table is
    still being built there. So the table joins the layout (``panel``) only
    once it has rows to show, which makes them part of its first render. When
    its tab is shown again the browser rebuilds the view, so the first
    `RESENDS` ticks after that send the rows again; a hidden version column
    makes each send differ (Bokeh does not send a value equal to the last one).
    The browser ignores a row being ticked while it applies re-sent rows (the
    box comes back unticked), so re-sends stop as soon as a selection comes
    back: the browser has its view then.
    """

    RESENDS = 6
    VERSION = "_v"

    def __init__(self, frame: Any, **options: Any) -> None:
        options["hidden_columns"] = [*options.get("hidden_columns", []), self.VERSION]
        options.setdefault("show_index", False)
        self._version = 0
        self._resends = 0
        self.widget = Table(self._stamp(frame), **options)
        self.widget.param.watch(self._selected, "selection")
        self.panel = pn.Column(
            pn.pane.HTML("<i>loading…</i>", margin=(10, 10)),
            sizing_mode="stretch_width",
            min_height=60,
        )

    def _stamp(self, frame: Any) -> Any:
        stamped = frame.copy()
        stamped[self.VERSION] = self._version
        return stamped

    @property
    def frame(self) -> Any:
        """The rows shown (without the version column)."""
        return self.widget.value.drop(columns=self.VERSION)

    def set(self, frame: Any) -> None:
        """Show ``frame`` (sent only if it changed, or while the table may still be building)."""
        if self.panel.objects[0] is not self.widget:
            self._version += 1
            self.widget.value = self._stamp(frame)
            self.panel.objects = [self.widget]
            return
        if self._resends > 0:
            self._resends -= 1
        elif frame.equals(self.frame):
            return
        self._version += 1
        self.widget.value = self._stamp(frame)

    @property
    def settled(self) -> bool:
        """In the page, and no re-sends pending (what the browser shows is what was set)."""
        return self.panel.objects[0] is self.widget and self._resends == 0

    def tick(self) -> None:
        """Called every tick while shown: re-send during the settling ticks."""
        if self._resends > 0 and self.panel.objects[0] is self.widget:
            self.set(self.frame)

    def _selected(self, event: Any) -> None:
        if event.new:
            self._resends = 0  # the browser has the view: a selection came from it

    def shown(self) -> None:
        """The table's tab was just shown (its browser view is being rebuilt)."""
        self._resends = self.RESENDS
