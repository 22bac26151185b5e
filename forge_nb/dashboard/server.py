"""`build_server`: Mission Control and the HTTP API on one Panel/Bokeh server.

The server is created with ``start=False``; ``server.start()`` binds it to the
running asyncio loop, the same loop the `App` lives on (the CLI's, or a
notebook kernel's). Binding beyond loopback requires credentials, because the
dashboard shows payloads and can retry and delete jobs.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import signal
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from forge_nb import compat
from forge_nb.api.access import load_credentials
from forge_nb.config import resolve_url
from forge_nb.errors import ForgeError
from forge_nb.runtime.app import App

ENV_READ_ONLY = "FORGE_NB_READ_ONLY"
LOGIN_TEMPLATE = Path(__file__).parent / "templates" / "login.html"
ENV_COOKIE_SECRET = "FORGE_NB_COOKIE_SECRET"
#: Credentials from the environment (``user:password``): unlike ``--basic-auth``, not in ``ps``.
ENV_BASIC_AUTH = "FORGE_NB_BASIC_AUTH"
#: Extra Host names the server answers to (comma-separated), like ``--allow-host``.
ENV_ALLOW_HOSTS = "FORGE_NB_ALLOW_HOSTS"
#: Credentials: ``"user:password"``, a bare password (any user), a ``{user: password}``
#: mapping, or the path of a JSON file holding one (Panel's ``basic_auth`` convention).
BasicAuth = str | Mapping[str, str]


class UnsafeBinding(ForgeError):
    """Serving on a non-loopback address without credentials (and without opting out)."""


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost`` are loopback; everything else (0.0.0.0 too) is not."""
    if address in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_basic_auth(spec: BasicAuth | None) -> BasicAuth | None:
    """``"user:pw"`` → ``{"user": "pw"}``; files, bare passwords and mappings pass through."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if not spec:
            raise ValueError("basic auth must not be empty: give user:password")
        if os.path.isfile(spec) or ":" not in spec:
            return spec
        user, _, password = spec.partition(":")
        if not user or not password:
            raise ValueError("basic auth must look like user:password (both non-empty)")
        return {user: password}
    return dict(spec)


def check_binding(address: str, basic_auth: BasicAuth | None, insecure_no_auth: bool) -> None:
    """Refuse a non-loopback address without credentials unless explicitly allowed."""
    if is_loopback(address) or basic_auth is not None or insecure_no_auth:
        return
    raise UnsafeBinding(
        f"refusing to serve the dashboard on {address!r} without authentication: anyone who "
        "can reach it could read payloads and retry or delete jobs. Pass --basic-auth "
        "user:password (or --insecure-no-auth if a proxy in front handles access)."
    )


def allowed_hosts(
    address: str, extra: Sequence[str] = (), origins: Sequence[str] = ()
) -> frozenset[str]:
    """Host names (no port) the server answers to: loopback names, the bound address (all of
    this machine's names when bound to every interface), ``extra`` (``--allow-host``,
    `ENV_ALLOW_HOSTS`; ``*`` for any) and the hosts of the extra websocket origins.

    Why: with auth off, a page on another site whose name resolves to 127.0.0.1 (DNS
    rebinding) would otherwise reach the API with the browser's help.
    """
    from forge_nb.dashboard.guard import host_name

    hosts = {"localhost", "127.0.0.1", "::1", host_name(address) if address else ""}
    if address in ("0.0.0.0", "::", ""):
        name = socket.gethostname()
        hosts |= {name.lower(), socket.getfqdn().lower()}
        try:
            hosts |= {str(info[4][0]).lower() for info in socket.getaddrinfo(name, None)}
        except OSError:
            pass
    env = [h for h in os.environ.get(ENV_ALLOW_HOSTS, "").split(",") if h.strip()]
    for item in (*extra, *env, *origins):
        item = item.strip()
        if "://" in item:
            item = item.split("://", 1)[1].split("/", 1)[0]
        hosts.add("*" if item == "*" else host_name(item))
    return frozenset(h for h in hosts if h)


def websocket_origins(address: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    """Origins the browser may open the dashboard's websocket from."""
    hosts = {address, "127.0.0.1", "localhost"}
    if address in ("0.0.0.0", "::", ""):
        hosts.discard(address)
        name = socket.gethostname()
        hosts |= {name, socket.getfqdn()}
        try:
            hosts |= {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
        except OSError:
            pass
    origins = {f"[{h}]:{port}" if ":" in h else f"{h}:{port}" for h in hosts if h}
    return sorted(origins | set(extra))


#: What a ``--prefix`` may hold: URL path characters that also mean themselves in the regular
#: expressions Bokeh builds its routes from (``.`` matches itself too).
_PREFIX_CHARS = re.compile(r"[A-Za-z0-9._~%@:/-]*")


def normalize_prefix(prefix: str | None) -> str:
    """``"/user/ann/forge-nb/"`` → ``"/user/ann/forge-nb"``; ``None``, ``""`` and ``"/"`` → ``""``.

    The dashboard, its static files, the Bokeh websocket and the API are all served under
    the prefix (Bokeh's ``prefix``), which is how a reverse proxy that passes the whole
    path (jupyter-server-proxy's ``absolute_url``) reaches them.
    """
    stripped = (prefix or "").strip().strip("/")
    if not stripped:
        return ""
    if not _PREFIX_CHARS.fullmatch(stripped) or "//" in stripped:
        raise ValueError(
            f"prefix {prefix!r} must be a URL path of letters, digits and . _ ~ % @ : - /"
        )
    if any(part in (".", "..") for part in stripped.split("/")):
        raise ValueError(f"prefix {prefix!r} must not contain . or .. segments")
    return "/" + stripped


def read_only_from_env() -> bool:
    """``FORGE_NB_READ_ONLY`` set to 1/true/yes/on."""
    return os.environ.get(ENV_READ_ONLY, "").strip().lower() in {"1", "true", "yes", "on"}


def build_server(
    app: App,
    *,
    port: int,
    address: str = "127.0.0.1",
    read_only: bool = False,
    basic_auth: BasicAuth | None = None,
    insecure_no_auth: bool = False,
    allow_websocket_origin: Sequence[str] = (),
    api_thread: bool = False,
    reuse_sessions: bool | None = None,
    allow_host: Sequence[str] = (),
    max_body_bytes: int | None = None,
    frame_ancestors: Sequence[str] = (),
    prefix: str | None = None,
    unix_socket: str | None = None,
) -> Any:
    """A Panel/Bokeh server (not started) with the dashboard at ``/`` and the API at ``/api/``.

    ``prefix`` (``/some/path``) mounts everything below that path instead: the page, its
    static files, the websocket and the API (`normalize_prefix`). ``unix_socket`` listens
    on that filesystem path (mode 0600) instead of ``address``/``port``: only this user's
    processes can connect, e.g. jupyter-server-proxy in front (`forge_nb.jupyter.proxy`).
    Browsers cannot reach a Unix socket, so it needs no credentials; the Host names and
    websocket origins the front proxy passes must still be allowed (``allow_host``,
    ``allow_websocket_origin``).

    Call ``server.start()`` on the loop the `App` uses, ``server.stop()`` to end.
    With ``basic_auth`` the dashboard asks for a login (Panel's login page) and
    the API takes HTTP Basic credentials. The process's SIGINT handler is left
    as it was (``pn.serve`` replaces it otherwise).

    ``api_thread=True`` serves ``/api/…`` from a thread with its own loop and its
    own `App` on the same database and port (`forge_nb.dashboard.api_thread`), so
    API answers never wait behind a page build. ``forge-nb dashboard`` does this;
    a notebook's server keeps the API on the kernel's `App` (same process: a
    cancel reaches the kernel's running jobs at once, enqueues see its handlers).

    ``reuse_sessions`` (default: what ``api_thread`` is, i.e. on for ``forge-nb
    dashboard``, off in a notebook) answers a page request with the HTML of an
    already built session and builds the new session right after the answer
    (Panel's ``reuse_sessions="warm"``), so the HTML no longer waits for the page
    build; the browser gets its own session over the websocket as before (see
    `enable_session_reuse`: it sets Panel's process-wide config, hence off in a
    notebook kernel, where other Panel servers may run).

    Every request first passes `forge_nb.dashboard.guard`: ``Host`` in
    `allowed_hosts` (plus ``allow_host``), bodies up to ``max_body_bytes`` (default
    10 MiB), credentials checked before a body is read, framing only by ``'self'``
    and ``frame_ancestors``, a bounded number of page sessions built at once.
    """
    import panel as pn

    from forge_nb.api import api_routes
    from forge_nb.dashboard.app import TITLE, create_page
    from forge_nb.dashboard.guard import DEFAULT_MAX_BODY_BYTES, GuardPolicy, SessionBuilds

    if basic_auth is None and os.environ.get(ENV_BASIC_AUTH):
        basic_auth = os.environ[ENV_BASIC_AUTH]
    credentials = parse_basic_auth(basic_auth)
    mount = normalize_prefix(prefix)
    if unix_socket is None:
        check_binding(address, credentials, insecure_no_auth)
        if not 0 < int(port) < 65536:
            raise ValueError(f"port must be between 1 and 65535, got {port!r}")
    body_limit = DEFAULT_MAX_BODY_BYTES if max_body_bytes is None else int(max_body_bytes)
    if body_limit < 1:
        raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes!r}")
    if unix_socket is None:
        origins = websocket_origins(address, int(port), allow_websocket_origin)
        local_id = f"port:{int(port)}"
    else:  # no address or port of ours a browser could be on: only what the proxy passes
        origins = sorted(set(allow_websocket_origin))
        local_id = f"unix:{unix_socket}"

    def page() -> Any:
        return create_page(app, read_only=read_only)

    options: dict[str, Any] = {}
    if mount:
        options["prefix"] = mount
        options["cookie_path"] = mount + "/"  # login cookies stay with this server's pages
    if unix_socket is not None:
        options["unix_socket"] = unix_socket
    if credentials is not None:
        options["basic_auth"] = credentials
        options["cookie_secret"] = os.environ.get(ENV_COOKIE_SECRET) or secrets.token_urlsafe(32)
        options["basic_login_template"] = str(LOGIN_TEMPLATE)  # Panel's pulls a CDN logo
    previous = signal.getsignal(signal.SIGINT)
    try:
        server = pn.serve(
            {"/": page},
            port=int(port) if unix_socket is None else 0,
            address=address if unix_socket is None else None,
            show=False,
            start=False,
            verbose=False,
            title=TITLE,
            websocket_origin=origins,
            extra_patterns=api_routes(app, read_only=read_only, basic_auth=credentials),
            **options,
        )
    finally:
        _restore_sigint(previous)
    if mount:
        _serve_favicon_under(server, mount)
    policy = GuardPolicy(
        allowed_hosts=allowed_hosts(address, allow_host, allow_websocket_origin),
        max_body_bytes=body_limit,
        credentials=load_credentials(credentials),
        cookie_secret=options.get("cookie_secret"),
        prefix=mount,
        builds=SessionBuilds(),
        frame_ancestors=tuple(frame_ancestors),
    )
    guard_server(server, policy)
    if api_thread if reuse_sessions is None else reuse_sessions:
        enable_session_reuse(server, local_id)
    if api_thread:
        from forge_nb.dashboard.api_thread import ApiThread

        split_api(
            server,
            ApiThread(
                app.url,
                read_only=read_only,
                basic_auth=credentials,
                cookie_secret=options.get("cookie_secret"),
                policy=policy,
                prefix=mount,
            ),
        )
    return server


def _serve_favicon_under(server: Any, prefix: str) -> None:
    """Bokeh serves ``/favicon.ico`` at the root only, even with a ``prefix``; the page asks
    for it next to itself (a 404 the browser reports as an error)."""
    tornado_app = compat.tornado_app(server)
    tornado_app.add_handlers(
        r".*", [(re.escape(prefix) + r"/favicon\.ico", compat.ico_handler(), {"app": tornado_app})]
    )


def guard_server(server: Any, policy: Any) -> None:
    """Every request to this Bokeh server passes the guard (`forge_nb.dashboard.guard`)."""
    from forge_nb.dashboard.guard import guard_http_server

    guard_http_server(compat.http_server(server), policy)
    policy.builds.wrap_application_contexts(compat.application_contexts(server))
    server.guard = policy


#: Themes the page has; any other ``?theme=`` value is the default one.
THEMES = ("default", "dark")


def session_key(request: Any) -> tuple[str, str, str, str]:
    """The key of the kept session a page request may reuse the HTML of: one per server
    (the local port or Unix socket the request came in on), path and theme. Panel's
    default key has no server: two servers in one process would answer with each other's
    page. Only values the server picks go in: a key from the request's own text (its
    ``Host``, any ``?theme=``) would let each new value build and keep another whole
    session."""
    theme = request.arguments.get("theme", [b"default"])[0].decode("utf-8", "replace")
    try:
        name = request.connection.stream.socket.getsockname()
        local = f"unix:{name!s}" if isinstance(name, str) else f"port:{name[1]}"
    except (AttributeError, OSError, IndexError):
        local = "port:0"
    return ("forge-nb", local, request.path, theme if theme in THEMES else "default")


def enable_session_reuse(server: Any, local_id: str) -> None:
    """Answer page requests from a kept session's HTML; build the new session right after.

    Panel's ``reuse_sessions="warm"``: the first request of a path builds a session as
    usual and Panel keeps it; later requests get HTML rendered from that kept document
    (the template with empty root elements: the content comes over the websocket) and a
    token for a new session id, and that session is built on the loop right after the
    HTML went out, while the browser loads the scripts. Each session still sees its own
    URL (``?tab=``), user and cookies: they travel in its token. This is process-wide
    Panel config (``pn.config.reuse_sessions``, ``session_key_func``), so only for a
    server that owns its process. ``server.stop()`` forgets the sessions kept for it.
    """
    import panel as pn

    pn.config.reuse_sessions = "warm"
    if pn.config.session_key_func is None:
        pn.config.session_key_func = session_key
    stop = server.stop

    def stop_and_forget(*args: Any, **kwargs: Any) -> None:
        stop(*args, **kwargs)
        kept = compat.kept_sessions()
        for key in list(kept):
            if isinstance(key, tuple) and key[:2] == ("forge-nb", local_id):
                kept.pop(key, None)

    server.stop = stop_and_forget


def split_api(server: Any, api: Any) -> None:
    """Hand the server's port to ``api`` (an `ApiThread`) on ``start()``; stop it first on
    ``stop()``. The dashboard side is served exactly as before."""
    start, stop = server.start, server.stop

    def start_both(*args: Any, **kwargs: Any) -> None:
        start(*args, **kwargs)
        api.attach(compat.http_server(server))

    def stop_both(*args: Any, **kwargs: Any) -> None:
        api.stop()
        stop(*args, **kwargs)

    server.start = start_both
    server.stop = stop_both
    server.api_thread = api


def _restore_sigint(handler: Any) -> None:
    try:
        signal.signal(signal.SIGINT, handler)
    except (ValueError, TypeError):  # not the main thread, or a handler set outside Python
        pass


# -- `panel serve` support -------------------------------------------------------------------

_shared: dict[str, App] = {}


def shared_app(url: str | None = None) -> App:
    """One `App` per server process and database URL, shared by every session.

    Created lazily on first use; it connects on the server's loop at its first
    query (``panel serve`` runs every session on that one loop).
    """
    resolved = resolve_url(url)
    found = _shared.get(resolved)
    if found is None:
        found = _shared[resolved] = App(resolved)
    return found
