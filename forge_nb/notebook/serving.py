"""The Mission Control dashboard from a notebook: inline, or served by the kernel itself.

Inline output loads Bokeh and Panel from the notebook (``inline=True``), not
from a CDN, so it works offline. Serving binds a Panel server to the kernel's
running loop: the cell returns at once, the page stays live while the kernel
is idle or awaiting, and re-running the cell replaces the server on that port.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forge_nb.runtime.app import App

#: Servers started from this kernel, by port (so a re-run can stop the old one first).
_servers: dict[int, Any] = {}
#: Panel extensions the dashboard's widgets need in a notebook (the Jobs and Cron tables).
NOTEBOOK_EXTENSIONS = ("tabulator",)


def inline_dashboard(app: App, *, read_only: bool = False) -> Any:
    """The dashboard as a notebook output (a Panel viewable; display it or end a cell with it)."""
    import panel as pn

    from forge_nb.dashboard.app import Dashboard
    from forge_nb.notebook.inline_css import InlineOutput

    pn.extension(*NOTEBOOK_EXTENSIONS, inline=True)
    dashboard = Dashboard(app, read_only=read_only)
    return InlineOutput(dashboard.layout, on_shown=dashboard.shown_in)


#: Set by JupyterHub (and Binder) in a user's server: its URL path, e.g. ``/user/ada/``.
ENV_HUB_PREFIX = "JUPYTERHUB_SERVICE_PREFIX"


def serve_dashboard(
    app: App, *, port: int = 5006, address: str = "127.0.0.1", **options: Any
) -> str:
    """Serve the dashboard from the running kernel loop without blocking; returns its URL.

    ``options`` go to `forge_nb.dashboard.server.build_server` (``read_only``,
    ``basic_auth``, ``insecure_no_auth``). Idempotent on re-run: the server
    this kernel already runs on ``port`` is stopped first.

    Under JupyterHub or Binder the visitor's browser cannot open 127.0.0.1: the URL
    is then the user server's own proxy path, ``<prefix>proxy/<port>/``
    (jupyter-server-proxy, behind the hub's login). Requests arrive there with the
    hub's public Host and origin, which this server cannot know, so it answers any;
    the port is bound to loopback inside the user's server, so only that server's
    proxy (and its own processes) can reach it, and DNS rebinding from a visitor's
    browser reaches the visitor's machine, not this one.
    """
    from forge_nb.dashboard.server import build_server

    hub_prefix = os.environ.get(ENV_HUB_PREFIX)
    if hub_prefix:
        options.setdefault("allow_host", ["*"])
        options.setdefault("allow_websocket_origin", ["*"])
    stop_dashboard(port)
    previous = signal.getsignal(signal.SIGINT)
    try:
        server = build_server(app, port=port, address=address, **options)
    finally:
        # pn.serve installs its own SIGINT handler; the kernel's must stay in charge.
        restore_sigint(previous)
    server.start()  # binds to the running (kernel) loop and returns at once
    _servers[port] = server
    if hub_prefix:
        return f"/{hub_prefix.strip('/')}/proxy/{port}/".replace("//proxy", "/proxy")
    host = "127.0.0.1" if address in ("0.0.0.0", "", "::") else address
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def stop_dashboard(port: int) -> bool:
    """Stop the server this kernel runs on ``port``; False if there is none."""
    server = _servers.pop(port, None)
    if server is None:
        return False
    server.stop()
    return True


def restore_sigint(handler: Any) -> None:
    """Put a SIGINT handler back (only possible from the main thread)."""
    try:
        signal.signal(signal.SIGINT, handler)
    except (ValueError, TypeError):  # not the main thread, or a handler set outside Python
        pass
