"""Mission Control: the Panel + Bokeh operations dashboard of forge-nb.

`create_dashboard` builds one browser session's UI, `create_page` wraps it in
the themed page that ``forge-nb dashboard`` and ``panel serve`` show, and
`build_server` serves it (with the HTTP API) on the running asyncio loop.
Everything here imports Panel and Bokeh, so nothing outside this package (and
the notebook glue) imports it eagerly.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_server", "create_dashboard", "create_page"]


def __getattr__(name: str) -> Any:
    """Load the UI modules on first use (``import forge_nb.dashboard`` stays cheap)."""
    if name in ("create_dashboard", "create_page"):
        from forge_nb.dashboard import app

        return getattr(app, name)
    if name == "build_server":
        from forge_nb.dashboard.server import build_server

        return build_server
    raise AttributeError(f"module 'forge_nb.dashboard' has no attribute {name!r}")
