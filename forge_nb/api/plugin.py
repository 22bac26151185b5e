"""The API as a ``panel serve --plugins forge_nb.api.plugin`` plugin.

Panel reads `ROUTES` from the plugin module at startup. The `App` is created on
first request from `FORGE_NB_DATABASE_URL` (or the embedded SQLite default),
the API follows the server's own ``--basic-auth``, and ``FORGE_NB_READ_ONLY=1``
makes it read-only::

    FORGE_NB_DATABASE_URL=postgresql://… panel serve dashboard.py \\
        --plugins forge_nb.api.plugin --basic-auth secret
"""

from __future__ import annotations

import os

from forge_nb.api.routes import api_routes
from forge_nb.runtime.app import App

ENV_READ_ONLY = "FORGE_NB_READ_ONLY"

_app: App | None = None


def shared_app() -> App:
    """One `App` for every request of this server process."""
    global _app
    if _app is None:
        _app = App()
    return _app


def read_only_from_env() -> bool:
    """``FORGE_NB_READ_ONLY`` set to 1/true/yes/on."""
    return os.environ.get(ENV_READ_ONLY, "").strip().lower() in {"1", "true", "yes", "on"}


ROUTES = api_routes(shared_app, read_only=read_only_from_env(), panel_auth=True)
