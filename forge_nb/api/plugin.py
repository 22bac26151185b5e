"""The API as a ``panel serve --plugins forge_nb.api.plugin`` plugin.

Panel reads `ROUTES` from the plugin module at startup. The `App` is created on
first request from `FORGE_NB_DATABASE_URL` (or the embedded SQLite default),
the API follows the server's own ``--basic-auth``, and ``FORGE_NB_READ_ONLY=1``
makes it read-only::

    FORGE_NB_DATABASE_URL=postgresql://… panel serve dashboard.py \\
        --plugins forge_nb.api.plugin --basic-auth secret
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

from forge_nb.api.routes import api_routes
from forge_nb.runtime.app import App

ENV_READ_ONLY = "FORGE_NB_READ_ONLY"
log = logging.getLogger("forge_nb.api")

_app: App | None = None
_loop: asyncio.AbstractEventLoop | None = None


def shared_app() -> App:
    """One `App` for every request of this server process, closed when the server exits."""
    global _app, _loop
    if _app is None:
        _app = App()
        _loop = asyncio.get_running_loop()
    return _app


def close_shared_app() -> None:
    """Close the App on its own (now stopped) loop once the server has stopped.

    Without this a SIGTERM'd ``panel serve`` never exits: Python waits for the
    SQLite connection threads of an App nobody closed.
    """
    app, loop = _app, _loop
    if app is None or loop is None or loop.is_closed() or loop.is_running():
        return
    try:
        loop.run_until_complete(app.close(timeout=5))
    except Exception:  # exiting anyway: say why the database was not closed cleanly
        log.exception("could not close the forge-nb app at exit")


def read_only_from_env() -> bool:
    """``FORGE_NB_READ_ONLY`` set to 1/true/yes/on."""
    return os.environ.get(ENV_READ_ONLY, "").strip().lower() in {"1", "true", "yes", "on"}


# Runs before the interpreter joins non-daemon threads (plain atexit runs after: too late).
threading._register_atexit(close_shared_app)  # type: ignore[attr-defined]

ROUTES = api_routes(shared_app, read_only=read_only_from_env(), panel_auth=True)
