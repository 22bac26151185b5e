"""Every use of a private Panel, Bokeh or Tornado internal, in one place.

Why one module: these names are not public API and may change in any release. The
dashboard, the API and the notebook glue go through the functions below, so an
upgrade is checked here alone: `missing_internals` probes every internal listed in
`INTERNALS` (the test suite runs it and names what is gone), and pyproject.toml caps
panel and bokeh below the next minor release. Each function says why forge-nb needs
the internal. Panel and Bokeh are imported lazily: importing this module is cheap.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: Private or internal names this module uses: (dotted name, how to find it). Keep this
#: list in step with the functions below; `missing_internals` checks each of them.
INTERNALS: list[tuple[str, Callable[[], bool]]] = []


class MissingInternal(RuntimeError):
    """A Panel/Bokeh/Tornado internal forge-nb relies on is gone (an upgrade changed it)."""


def _internal(name: str) -> Callable[[Callable[[], bool]], Callable[[], bool]]:
    def register(probe: Callable[[], bool]) -> Callable[[], bool]:
        INTERNALS.append((name, probe))
        return probe

    return register


def _attr(obj: Any, attr: str, name: str) -> Any:
    """``getattr(obj, attr)``, or `MissingInternal` naming the internal."""
    try:
        return getattr(obj, attr)
    except AttributeError:
        raise MissingInternal(f"{name} is gone: forge-nb's compat module needs updating") from None


def _module_attr(module: str, attr: str) -> Any:
    return _attr(importlib.import_module(module), attr, f"{module}.{attr}")


def missing_internals() -> list[str]:
    """The internals of `INTERNALS` that this Panel/Bokeh/Tornado no longer has."""
    missing = []
    for name, probe in INTERNALS:
        try:
            present = probe()
        except Exception:  # an import or attribute error: gone either way
            present = False
        if not present:
            missing.append(name)
    return missing


# -- Panel: the document a callback runs in ---------------------------------------------------


@_internal("panel.io.state.set_curdoc")
def _probe_set_curdoc() -> bool:
    return callable(_module_attr("panel.io.state", "set_curdoc"))


@_internal("panel.io.document.hold")
def _probe_hold() -> bool:
    return callable(_module_attr("panel.io.document", "hold"))


def current_doc(doc: Any) -> Any:
    """A context manager making ``doc`` Panel's current document (for code run outside a
    session callback that reads ``pn.state``)."""
    return _module_attr("panel.io.state", "set_curdoc")(doc)


@contextmanager
def one_message(doc: Any) -> Iterator[None]:
    """Collect every change made inside into one message to the browser, in order.

    Why: each changed model is otherwise its own PATCH-DOC message, and Bokeh builds each
    one's serializer from every model of the page.
    """
    hold = _module_attr("panel.io.document", "hold")
    with current_doc(doc), hold(doc, policy="collect"):
        yield


def push_notebook(viewable: Any) -> None:
    """Send pending changes of notebook output (no server pushes them there)."""
    _module_attr("panel.io", "push_notebook")(viewable)


@_internal("panel.io.push_notebook")
def _probe_push_notebook() -> bool:
    return callable(_module_attr("panel.io", "push_notebook"))


# -- Bokeh documents and sessions -------------------------------------------------------------


@_internal("bokeh.document.models.DocumentModelManager.freeze")
def _probe_freeze() -> bool:
    from bokeh.document import Document

    return callable(Document().models.freeze)


def frozen(doc: Any) -> Any:
    """A context manager: one walk of ``doc``'s model graph at its end instead of one per
    change (adding roots, themes and first styles each walk every model)."""
    return _attr(doc.models, "freeze", "bokeh.document.models.DocumentModelManager.freeze")()


@_internal("bokeh.server.contexts.BokehSessionContext._session")
def _probe_session() -> bool:
    from bokeh.document import Document
    from bokeh.server.contexts import BokehSessionContext

    context = BokehSessionContext("probe", None, Document())  # type: ignore[arg-type]
    return hasattr(context, "_session")


def connection_count(doc: Any) -> int:
    """Browser connections of a served document's session (1 when it cannot tell).

    Why: a reloaded page leaves its old session ticking until Bokeh expires it; with no
    connection left its ticks are wasted work.
    """
    context = doc.session_context
    session = getattr(context, "_session", None) if context is not None else None
    return int(getattr(session, "connection_count", 1))


@_internal("bokeh.document.Document._template_variables")
def _probe_template_variables() -> bool:
    from bokeh.document import Document

    return isinstance(Document()._template_variables, dict)


def template_variables(doc: Any) -> dict[str, Any]:
    """The variables the page template is rendered with (``dist_url``, ``theme_name``):
    forge-nb points stylesheets at the server's own files through them."""
    variables: dict[str, Any] = _attr(
        doc, "_template_variables", "bokeh.document.Document._template_variables"
    )
    return variables


# -- Panel resources and its per-document caches ----------------------------------------------


@_internal("panel.io.state.state._stylesheets")
def _probe_stylesheets() -> bool:
    from panel.io.state import state

    return hasattr(state, "_stylesheets")


def forget_stylesheets(doc: Any) -> None:
    """Drop Panel's cached stylesheets of ``doc`` so they are rebuilt from a new ``dist_url``."""
    from panel.io.state import state

    _attr(state, "_stylesheets", "panel.io.state.state._stylesheets").pop(doc, None)


def document_stylesheets(doc: Any) -> dict[str, Any] | None:
    """Panel's shared stylesheet models of ``doc``, by URL (None: none made yet)."""
    from panel.io.state import state

    found: dict[str, Any] | None = _attr(
        state, "_stylesheets", "panel.io.state.state._stylesheets"
    ).get(doc)
    return found


def set_document_stylesheets(doc: Any, cache: dict[str, Any]) -> None:
    """Put ``cache`` in place of Panel's stylesheet cache of ``doc`` (see notebook.inline_css)."""
    from panel.io.state import state

    _attr(state, "_stylesheets", "panel.io.state.state._stylesheets")[doc] = cache


def inline_copies(sheets: list[Any]) -> list[Any]:
    """``sheets`` with each imported stylesheet that the current document keeps an inline
    copy of (a notebook output's, see notebook.inline_css) replaced by that copy."""
    from bokeh.models import ImportedStyleSheet, InlineStyleSheet
    from panel.io.state import state

    cache = document_stylesheets(state.curdoc) if state.curdoc is not None else None
    if not cache:
        return sheets
    out = []
    for sheet in sheets:
        if isinstance(sheet, ImportedStyleSheet) and sheet.url in cache:
            copy = cache[sheet.url]
            sheet = copy if isinstance(copy, InlineStyleSheet) else sheet
        out.append(sheet)
    return out


@_internal("panel.io.state.state._views")
def _probe_views() -> bool:
    from panel.io.state import state

    return isinstance(getattr(state, "_views", None), dict)


def documents_showing(viewable: Any) -> list[Any]:
    """The documents ``viewable`` was rendered into as a root (notebook outputs included)."""
    from panel.io.state import state

    views = _attr(state, "_views", "panel.io.state.state._views")
    return [doc for view, _root, doc, _comm in list(views.values()) if view is viewable and doc]


@_internal("panel.viewable.Renderable._models / pyviz_comms.Comm._comm")
def _probe_output_comms() -> bool:
    import panel as pn
    from pyviz_comms import Comm  # type: ignore[import-untyped]

    return isinstance(getattr(pn.Column(), "_models", None), dict) and Comm()._comm is None


def output_comms_open(viewable: Any) -> list[bool]:
    """For each notebook output showing ``viewable``: whether its comm is open (the browser
    rendered it). Empty when it is shown in none.

    Why: until the browser has rendered an output and opened its comm, Panel keeps each
    message pushed to it on a timer of its own (0.1 s, again and again), so a message
    pushed just after the comm opens overtakes the ones kept: BokehJS then meets models
    it does not know yet, and a table stays blank.
    """
    from panel.io.state import state

    views = _attr(state, "_views", "panel.io.state.state._views")
    flags = []
    for ref in list(_attr(viewable, "_models", "panel.viewable.Renderable._models")):
        view = views.get(ref)
        comm = view[3] if view is not None else None
        if comm is not None:
            flags.append(bool(_attr(comm, "_comm", "pyviz_comms.Comm._comm")))
    return flags


@_internal("panel.viewable.Renderable._comms / pyviz_comms.Comm._on_msg")
def _probe_client_comms() -> bool:
    import panel as pn
    from pyviz_comms import Comm

    return isinstance(getattr(pn.Column(), "_comms", None), dict) and hasattr(Comm(), "_on_msg")


def handle_messages_on(viewable: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Handle the browser's messages to ``viewable``'s notebook outputs on ``loop``, in order.

    Why: ipykernel 7 may deliver comm messages on a subshell's thread (JupyterLab sends
    them there so that widgets answer while a cell runs). Panel then changes an output's
    models, and runs its callbacks, on that thread and that thread's loop, while the
    kernel's loop changes the same models in the dashboard's ticks and owns the App's
    connections: the same models sent twice, tables left blank, storage used from two
    loops. Every message goes through ``loop``'s queue, even one that arrives on its own
    thread, so none overtakes another.
    """
    outputs = _attr(viewable, "_comms", "panel.viewable.Renderable._comms")
    for _comm, client in list(outputs.values()):
        handler = _attr(client, "_on_msg", "pyviz_comms.Comm._on_msg")
        if handler is None or getattr(handler, "forge_nb_loop", None) is loop:
            continue

        def handle(msg: Any, handler: Callable[[Any], None] = handler) -> None:
            loop.call_soon_threadsafe(_handle_logged, handler, msg)

        handle.forge_nb_loop = loop  # type: ignore[attr-defined]
        client._on_msg = handle


def _handle_logged(handler: Callable[[Any], None], msg: Any) -> None:
    try:
        handler(msg)
    except Exception:  # the browser is not told any more (its reply went out): log it
        logging.getLogger("forge_nb.notebook").exception("a notebook output's message failed")


@_internal("panel.io.resources.CDN_DIST")
def _probe_dist() -> bool:
    resources = importlib.import_module("panel.io.resources")
    return isinstance(getattr(resources, "CDN_DIST", None), str) and hasattr(resources, "DIST_DIR")


def panel_dist_css(url: str) -> str | None:
    """The text of one of Panel's own stylesheets, named by its CDN URL or by the
    server-relative path Panel uses for it, read from the installed package (None if
    ``url`` is not one of them)."""
    from pathlib import Path

    cdn: str = _module_attr("panel.io.resources", "CDN_DIST")
    dist_dir = Path(_module_attr("panel.io.resources", "DIST_DIR")).resolve()
    prefix = next((p for p in (cdn, local_dist()) if url.startswith(p)), None)
    if prefix is None:
        return None
    relative = url.removeprefix(prefix).split("?", 1)[0]
    path = (dist_dir / relative).resolve()
    if not relative.endswith(".css") or not path.is_relative_to(dist_dir):
        return None
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


@_internal("panel.io.resources.LOCAL_DIST")
def _probe_local_dist() -> bool:
    return isinstance(_module_attr("panel.io.resources", "LOCAL_DIST"), str)


@_internal("panel.io.resources.patch_model_css")
def _probe_patch_model_css() -> bool:
    return callable(_module_attr("panel.io.resources", "patch_model_css"))


def local_dist() -> str:
    """Where Panel's static files are below the server's root (``static/extensions/panel/``)."""
    dist: str = _module_attr("panel.io.resources", "LOCAL_DIST")
    return dist


def css_patcher(dist_url: str) -> Callable[[Any], None]:
    """What points a root model's CDN stylesheet URLs at ``dist_url`` (Panel does it for the
    sessions it renders HTML for; a reused session's HTML comes from another session)."""
    patch = _module_attr("panel.io.resources", "patch_model_css")
    return lambda root: patch(root, dist_url=dist_url)


@_internal("panel.io.state.state._sessions")
def _probe_sessions() -> bool:
    from panel.io.state import state

    return isinstance(state._sessions, dict)


def kept_sessions() -> dict[Any, Any]:
    """Panel's sessions kept for ``reuse_sessions`` (by session key), to forget a stopped
    server's."""
    from panel.io.state import state

    sessions: dict[Any, Any] = _attr(state, "_sessions", "panel.io.state.state._sessions")
    return sessions


@_internal("panel.io.state.state._server_config")
def _probe_server_config() -> bool:
    from panel.io.state import state

    return hasattr(state._server_config, "get")


def server_config(application: Any) -> dict[str, Any]:
    """What ``panel serve`` recorded for a Tornado application (its ``basic_auth``): the API
    follows the server's own auth."""
    from panel.io.state import state

    configs = _attr(state, "_server_config", "panel.io.state.state._server_config")
    found: dict[str, Any] = configs.get(application, {})
    return found


# -- the Bokeh server's Tornado parts ---------------------------------------------------------


@_internal("bokeh.server.server.BaseServer._tornado / ._http")
def _probe_server() -> bool:
    import inspect

    from bokeh.server.server import BaseServer

    source = inspect.getsource(BaseServer.__init__)
    return "self._tornado =" in source and "self._http =" in source


def tornado_app(server: Any) -> Any:
    """The Bokeh server's ``BokehTornado`` application (to add routes to it)."""
    return _attr(server, "_tornado", "bokeh.server.server.Server._tornado")


def http_server(server: Any) -> Any:
    """The Bokeh server's Tornado ``HTTPServer`` (to guard it, or hand its sockets on)."""
    return _attr(server, "_http", "bokeh.server.server.Server._http")


@_internal("bokeh.server.tornado.BokehTornado._applications")
def _probe_applications() -> bool:
    import inspect

    from bokeh.server.tornado import BokehTornado

    return "self._applications" in inspect.getsource(BokehTornado.__init__)


def application_contexts(server: Any) -> list[Any]:
    """The server's ``ApplicationContext`` per app path (their session creation is wrapped)."""
    apps = _attr(tornado_app(server), "_applications", "BokehTornado._applications")
    return list(apps.values())


@_internal("bokeh.server.contexts.ApplicationContext.create_session_if_needed")
def _probe_create_session() -> bool:
    from bokeh.server.contexts import ApplicationContext

    return callable(getattr(ApplicationContext, "create_session_if_needed", None))


def wrap_session_creation(context: Any, wrap: Callable[[Any], Any]) -> None:
    """Replace an ``ApplicationContext``'s session creation with ``wrap(original)`` (the
    guard releases a request's build slot when its session is built)."""
    name = "bokeh.server.contexts.ApplicationContext.create_session_if_needed"
    context.create_session_if_needed = wrap(_attr(context, "create_session_if_needed", name))


@_internal("tornado.httpserver.HTTPServer.request_callback / .conn_params")
def _probe_request_callback() -> bool:
    from tornado.httpserver import HTTPServer

    server = HTTPServer(lambda request: None)
    return hasattr(server, "request_callback") and hasattr(server.conn_params, "max_body_size")


def intercept_requests(http: Any, wrap: Callable[[Any], Any], max_body_bytes: int) -> None:
    """Put ``wrap(delegate)`` in front of a Tornado ``HTTPServer``'s request delegate and cap
    its bodies (chunked ones too): the guard sees each request line before Tornado routes
    it or reads its body."""
    params = _attr(http, "conn_params", "tornado.httpserver.HTTPServer.conn_params")
    params.max_body_size = max_body_bytes
    name = "tornado.httpserver.HTTPServer.request_callback"
    http.request_callback = wrap(_attr(http, "request_callback", name))


@_internal("bokeh.server.views.ico_handler.IcoHandler")
def _probe_ico_handler() -> bool:
    return isinstance(_module_attr("bokeh.server.views.ico_handler", "IcoHandler"), type)


def ico_handler() -> type:
    """Bokeh's favicon handler (served at the root only; forge-nb adds it under a prefix)."""
    handler: type = _module_attr("bokeh.server.views.ico_handler", "IcoHandler")
    return handler


@_internal("tornado.tcpserver.TCPServer._sockets / ._handlers")
def _probe_tcp_server() -> bool:
    from tornado.tcpserver import TCPServer

    server = TCPServer()
    return isinstance(server._sockets, dict) and isinstance(server._handlers, dict)


def listening_sockets(http: Any) -> list[socket.socket]:
    """The sockets a Tornado server listens on (the API thread accepts on them instead)."""
    return list(_attr(http, "_sockets", "tornado.tcpserver.TCPServer._sockets").values())


def stop_accepting(http: Any) -> None:
    """Stop the server's own accept handlers but keep its sockets open (Tornado's ``stop``
    would close them): from now on the API thread accepts every connection."""
    handlers = _attr(http, "_handlers", "tornado.tcpserver.TCPServer._handlers")
    for fd in list(handlers):
        handlers[fd]()
        handlers[fd] = _nothing


def _nothing() -> None:
    """An accept handler already removed (``TCPServer.stop`` calls each once more)."""
