"""The jupyter-server-proxy entry point ``forge-nb``: Mission Control at ``<base_url>forge-nb/``.

Registered in pyproject.toml under ``jupyter_serverproxy_servers``. jupyter-server-proxy
starts ``forge-nb dashboard`` on the first request to ``<base_url>forge-nb/…`` and
relays every request to it, after the Jupyter server's own authentication (token,
password, JupyterHub OAuth): whoever can open Lab can open Mission Control, nobody else.

How the two meet, and why that is safe:

- **A Unix socket, not a TCP port.** jupyter-server-proxy makes a fresh directory for it
  with ``mkdtemp`` (mode 0700) and the dashboard binds the socket with mode 0600, so only
  this user's processes can connect. A loopback port would be open to every local user
  (a JupyterHub node runs many) and, through DNS rebinding, to web pages in this user's
  browser, all without Jupyter's auth in between; a socket file is neither.
- **Any Host, any websocket origin** (``--allow-host '*'``, ``--allow-websocket-origin
  '*'``). The proxy passes the browser's own ``Host`` and ``Origin`` (the Jupyter
  server's public name: ``localhost:8888``, ``hub.example.org``, a Binder host), which
  cannot be known here. The checks those allow-lists stand for were already made in
  front: a request only gets here through Jupyter's authenticated handler, and Jupyter
  refuses cross-origin websockets itself (``ServerApp.allow_origin``). What stays on in
  the dashboard: its API refuses cross-origin mutations (``Origin`` against ``Host``,
  both as the browser sent them), since jupyter-server-proxy leaves XSRF checks to the
  proxied app; bodies are bounded; pages may only be framed by the same origin
  (``frame-ancestors 'self'``: the Lab page that opens them as panels is that origin).
- **The whole path** (``absolute_url``) with ``--prefix <base_url>forge-nb``: every asset,
  the Bokeh websocket and ``/api/`` are served under the proxied path.

The database: ``FORGE_NB_DATABASE_URL`` when the Jupyter server has it (passed through the
environment, so a password never shows in ``ps``), else the default SQLite file of the
server's root directory, ``<root_dir>/.forge_nb/forge_nb.db`` (``FORGE_NB_DATA_DIR``
moves it, as everywhere), the file a notebook at the root of the tree uses by default.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from forge_nb.config import DEFAULT_DB_FILENAME, ENV_DATA_DIR, ENV_DATABASE_URL

#: The URL path under the Jupyter server's base URL, and the entry point's name.
NAME = "forge-nb"
#: The launcher tile's icon (also the sidebar's, in the labextension).
ICON = Path(__file__).with_name("forge-nb.svg")
#: Seconds jupyter-server-proxy waits for the dashboard to answer its first request.
START_TIMEOUT_S = 60


def setup_forge_nb() -> dict[str, Any]:
    """The server process config jupyter-server-proxy reads from the entry point."""
    return {
        "command": dashboard_command,
        "unix_socket": True,
        "absolute_url": True,
        "timeout": START_TIMEOUT_S,
        # Opens as a Lab panel (an iframe of the same origin), not a new browser tab.
        "new_browser_tab": False,
        "launcher_entry": {
            "enabled": True,
            "title": "Mission Control",
            "icon_path": str(ICON),
            # The launcher shows a tile's icon only in the Notebook and Console sections.
            "category": "Notebook",
        },
    }


def dashboard_command(unix_socket: str, base_url: str) -> list[str]:
    """``forge-nb dashboard`` on jupyter-server-proxy's socket, under ``<base_url>forge-nb``.

    jupyter-server-proxy formats every string of the list with ``str.format``: braces in
    paths are doubled here so they survive that.
    """
    command = [
        sys.executable,
        "-m",
        "forge_nb.cli",
        "dashboard",
        "--unix-socket",
        _literal(unix_socket),
        "--prefix",
        _literal(base_url.rstrip("/") + "/" + NAME + "/"),
        # Safe on a socket only this user can reach; see the module docstring.
        "--allow-host",
        "*",
        "--allow-websocket-origin",
        "*",
    ]
    if not os.environ.get(ENV_DATABASE_URL):
        command += ["--db", _literal(default_database_url(server_root_dir()))]
    return command


def default_database_url(root: Path) -> str:
    """The SQLite file a notebook in ``root`` uses by default."""
    data = Path(os.environ.get(ENV_DATA_DIR) or ".forge_nb").expanduser()
    if not data.is_absolute():
        data = root / data
    return f"sqlite:///{(data / DEFAULT_DB_FILENAME).resolve()}"


def server_root_dir() -> Path:
    """The running Jupyter server's ``root_dir`` (the file browser's top), else the cwd."""
    try:
        from jupyter_server.serverapp import ServerApp

        if ServerApp.initialized():
            return Path(ServerApp.instance().root_dir).expanduser()
    except Exception:  # not inside a Jupyter server (or an old one): the cwd it was started in
        pass
    return Path.cwd()


def _literal(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")
