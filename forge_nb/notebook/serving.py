"""The Mission Control dashboard from a notebook: inline, or served by the kernel itself.

Inline output loads Bokeh and Panel from the notebook (``inline=True``), not
from a CDN, so it works offline. Serving binds a Panel server to the kernel's
running loop: the cell returns at once, the page stays live while the kernel
is idle or awaiting, and re-running the cell replaces the server on that port.
"""

from __future__ import annotations

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

    from forge_nb.dashboard.app import create_dashboard

    pn.extension(*NOTEBOOK_EXTENSIONS, inline=True)
    return create_dashboard(app, read_only=read_only)


def serve_dashboard(
    app: App, *, port: int = 5006, address: str = "127.0.0.1", **options: Any
) -> str:
    """Serve the dashboard from the running kernel loop without blocking; returns its URL.

    ``options`` go to `forge_nb.dashboard.server.build_server` (``read_only``,
    ``basic_auth``, ``insecure_no_auth``). Idempotent on re-run: the server
    this kernel already runs on ``port`` is stopped first.
    """
    from forge_nb.dashboard.server import build_server

    stop_dashboard(port)
    previous = signal.getsignal(signal.SIGINT)
    try:
        server = build_server(app, port=port, address=address, **options)
    finally:
        # pn.serve installs its own SIGINT handler; the kernel's must stay in charge.
        restore_sigint(previous)
    server.start()  # binds to the running (kernel) loop and returns at once
    _servers[port] = server
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
