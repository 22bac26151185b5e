"""Mission Control for ``panel serve`` (this file runs as a script, once per session).

    FORGE_NB_DATABASE_URL=postgresql://… panel serve \\
        $(python -c 'import forge_nb.dashboard.panel_app as m; print(m.__file__)')

The database comes from `FORGE_NB_DATABASE_URL` (else the embedded SQLite
default); ``FORGE_NB_READ_ONLY=1`` hides every mutation. One `App` serves every
session of the server process. Add ``--plugins forge_nb.api.plugin`` to serve
the HTTP API under ``/api/`` as well.
"""

from __future__ import annotations

import panel as pn

from forge_nb.dashboard.app import create_page
from forge_nb.dashboard.server import read_only_from_env, shared_app

if pn.state.served:  # run by `panel serve`, once per session (a plain import does nothing)
    create_page(shared_app(), read_only=read_only_from_env()).servable()
