"""The HTTP API on its own thread and event loop, on the dashboard's port.

Why: Bokeh builds a page's document synchronously on the server's loop (the
template, every model of the page: a few hundred milliseconds under load), and
an API request handled on that loop waits behind it. Here a small thread owns
the listening socket, peeks at the first request line of each new connection
(``MSG_PEEK``: nothing is consumed) and hands the connection over whole:

- ``… /api…`` connections are served by this thread's own Tornado application
  (the same `forge_nb.api` routes and access policy) over this thread's own
  `App`: its own database connections, so a page build never holds it up;
- everything else (pages, static files, the Bokeh websocket) goes to the Bokeh
  server's HTTP server on the main loop, as if it had accepted it itself.

Routing is per connection. A keep-alive connection that began with a page and
later asks for ``/api/…`` is answered by the API routes also mounted on the
Bokeh server (as before); one that began with ``/api`` and later asks for
anything else is forwarded over loopback to the same port (and lands on the
Bokeh side, whose guard checks it again). Only an origin-form path (``/x``,
never ``//host`` or ``http://host/x``) is forwarded, always to this server's own
address: the request's text never chooses the host. Nothing here is
user-visible except the latency.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import tornado.httpclient
import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.web

from forge_nb import compat
from forge_nb.api import api_routes
from forge_nb.api.access import Credentials
from forge_nb.api.base import API_ROOT
from forge_nb.dashboard.guard import GuardPolicy, guard_http_server
from forge_nb.runtime.app import App

log = logging.getLogger("forge_nb.dashboard")

#: Bytes peeked at to classify a connection (``DELETE /api/`` needs 12; a ``--prefix``
#: adds its length, see `ApiThread.peek_bytes`).
PEEK_BYTES = 32
#: A connection that sends nothing for this long goes to the dashboard side (browsers
#: open spare connections early and use them later).
PEEK_TIMEOUT_S = 5.0
#: While a request line is incomplete, look again this often.
PEEK_RETRY_S = 0.005
_METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS")
#: Response headers not copied when forwarding (hop-by-hop, or recomputed by Tornado).
_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "server", "date"}
)


def classify(head: bytes, api_root: str = "/api") -> str | None:
    """``"api"``, ``"dashboard"``, or None when more bytes are needed to tell.

    ``head`` is the start of the first request on a connection.
    """
    root = api_root.encode("ascii")
    space = head.find(b" ")
    if space < 0:
        if len(head) < 8 and any(m.startswith(head) for m in _METHODS):
            return None
        return "dashboard"
    if head[:space] not in _METHODS:
        return "dashboard"
    path = head[space + 1 :]
    if len(path) < len(root) + 1:
        return None if (root + b"/").startswith(path) or root.startswith(path) else "dashboard"
    if path.startswith(root) and path[len(root) : len(root) + 1] in (b"/", b"?", b" "):
        return "api"
    return "dashboard"


def origin_form(uri: str) -> bool:
    """A request target that is a path on this server: ``/…`` but not ``//…``.

    Anything else (``@host/x``, ``//host/x``, ``http://host/x``, ``*``) would let
    the request line pick where a forwarded request goes.
    """
    return uri.startswith("/") and not uri.startswith("//") and "\\" not in uri


class UnixResolver(tornado.netutil.Resolver):
    """Every host name resolves to one Unix socket (the server's own)."""

    def initialize(self, path: str) -> None:
        self.path = path

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[tuple[int, Any]]:
        return [(socket.AF_UNIX, self.path)]


class ForwardHandler(tornado.web.RequestHandler):
    """A non-API request on a connection that began with an API request: ask our own port."""

    def initialize(self, target: Callable[[], str], unix: str | None = None) -> None:
        self._target = target
        self._unix = unix

    def check_xsrf_cookie(self) -> None:
        """The dashboard side does its own checks."""

    async def _forward(self) -> None:
        request = self.request
        if not origin_form(request.uri or ""):
            self.set_status(400)
            self.finish("request target must be a path on this server")
            return
        headers = {k: v for k, v in request.headers.get_all() if k.lower() not in _HOP_HEADERS}
        if self._unix is None:
            client = tornado.httpclient.AsyncHTTPClient()
        else:  # our own socket file, whatever the request says
            client = tornado.httpclient.AsyncHTTPClient(
                force_instance=True, resolver=UnixResolver(self._unix)
            )
        reply = await client.fetch(
            self._target() + request.uri,
            method=request.method,
            headers=headers,
            body=request.body if request.method in ("POST", "PUT", "PATCH") else None,
            allow_nonstandard_methods=True,
            follow_redirects=False,
            decompress_response=False,
            raise_error=False,
            request_timeout=120,
        )
        self.set_status(reply.code, reply.reason)
        self.clear_header("Content-Type")
        for name, value in reply.headers.get_all():
            if name.lower() not in _HOP_HEADERS:
                self.add_header(name, value)
        if reply.body:
            self.write(reply.body)

    get = head = post = put = patch = delete = options = _forward


class ApiThread:
    """Serve ``/api/…`` of a Bokeh server's port from a thread with its own loop and `App`.

    `attach` takes the listening sockets over from the Bokeh HTTP server (call it
    on the main loop, after the server is built); `stop` gives nothing back: the
    Bokeh server closes the sockets when it stops.
    """

    def __init__(
        self,
        url: str,
        *,
        read_only: bool = False,
        basic_auth: Credentials | None = None,
        cookie_secret: str | None = None,
        policy: GuardPolicy | None = None,
        prefix: str = "",
    ) -> None:
        self.url = url
        #: The server's mount point (`forge_nb.dashboard.server.normalize_prefix`): the API
        #: is at ``{prefix}/api``.
        self.prefix = prefix
        #: Enough of the request line to see ``OPTIONS {prefix}/api/`` whole.
        self.peek_bytes = PEEK_BYTES + len(prefix.encode())
        #: The dashboard server's guard policy, minus session builds (none happen here).
        self.policy = None if policy is None else dataclasses.replace(policy, builds=None)
        self.read_only = read_only
        self.basic_auth = basic_auth
        self.cookie_secret = cookie_secret
        self.app: App | None = None
        self._bokeh_http: Any = None
        self._sockets: list[socket.socket] = []
        self._main_loop: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._failed: BaseException | None = None
        self._http: tornado.httpserver.HTTPServer | None = None
        self._target = ""
        #: The socket's path when the server listens on a Unix socket.
        self._unix_path: str | None = None

    # -- main-thread side ------------------------------------------------------------------
    def attach(self, bokeh_http: Any) -> None:
        """Take the Bokeh HTTP server's listening sockets; start the thread that accepts."""
        self._main_loop = asyncio.get_running_loop()
        self._bokeh_http = bokeh_http
        self._sockets = compat.listening_sockets(bokeh_http)
        if self._sockets[0].family == getattr(socket, "AF_UNIX", None):
            self._unix_path = str(self._sockets[0].getsockname())
            self._target = "http://localhost"
        else:
            host, port = self._sockets[0].getsockname()[:2]
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1" if self._sockets[0].family == socket.AF_INET else "::1"
            self._target = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        self._thread = threading.Thread(target=self._run, name="forge-nb-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._failed is not None or self._http is None:
            # The main loop keeps accepting: the API still answers there (as it always has).
            log.warning(
                "the API thread did not start (%s); serving the API on the main loop",
                self._failed or "timed out",
            )
            self.stop(timeout=1)
            return
        # Only now stop accepting on the main loop: no connection waits in between.
        compat.stop_accepting(bokeh_http)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, close the API's connections and its `App`, end the thread."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop already ended
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    def _to_dashboard(self, conn: socket.socket, address: Any) -> None:
        """On the main loop: the Bokeh server serves this connection from its first byte."""
        http = self._bokeh_http
        try:
            stream = tornado.iostream.IOStream(
                conn, max_buffer_size=http.max_buffer_size, read_chunk_size=http.read_chunk_size
            )
            http.handle_stream(stream, address)
        except Exception:
            log.exception("could not hand a connection to the dashboard server")
            conn.close()

    # -- API-thread side -------------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._failed = exc
            log.exception("the API thread stopped")
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self.app = App(self.url)
        routes: list[Any] = list(
            api_routes(
                self.app, read_only=self.read_only, basic_auth=self.basic_auth, prefix=self.prefix
            )
        )
        routes.append(
            (r".*", ForwardHandler, {"target": lambda: self._target, "unix": self._unix_path})
        )
        settings: dict[str, Any] = {}
        if self.cookie_secret:
            settings["cookie_secret"] = self.cookie_secret
        application = tornado.web.Application(routes, **settings)
        self._http = tornado.httpserver.HTTPServer(application)
        if self.policy is not None:
            guard_http_server(self._http, self.policy)
        removers = [
            tornado.netutil.add_accept_handler(sock, self._accepted) for sock in self._sockets
        ]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            for remove in removers:
                remove()
            self._http.stop()
            await self._http.close_all_connections()
            await self.app.close()

    def _accepted(self, conn: socket.socket, address: Any) -> None:
        conn.setblocking(False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PEEK_TIMEOUT_S
        fd = conn.fileno()
        state = {"open": True}

        def done() -> None:
            loop.remove_reader(fd)

        def readable() -> None:
            if not state["open"]:
                return
            try:
                head = conn.recv(self.peek_bytes, socket.MSG_PEEK)
            except BlockingIOError:
                return
            except OSError:
                head = b""
            if not head:  # closed (or broken) before a request
                state["open"] = False
                done()
                timer.cancel()
                conn.close()
                return
            kind = classify(head, self.prefix + API_ROOT)
            if kind is None and len(head) < self.peek_bytes and loop.time() < deadline:
                done()  # level-triggered: wait for more bytes without spinning
                loop.call_later(PEEK_RETRY_S, again)
                return
            state["open"] = False
            done()
            timer.cancel()
            self._route(conn, address, kind or "dashboard")

        def again() -> None:
            if state["open"]:
                loop.add_reader(fd, readable)

        def timed_out() -> None:
            if state["open"]:
                state["open"] = False
                done()
                self._route(conn, address, "dashboard")

        timer = loop.call_later(PEEK_TIMEOUT_S, timed_out)
        loop.add_reader(fd, readable)

    def _route(self, conn: socket.socket, address: Any, kind: str) -> None:
        if kind == "api" and self._http is not None:
            stream = tornado.iostream.IOStream(conn)
            self._http.handle_stream(stream, address)
            return
        main = self._main_loop
        if main is None or main.is_closed():
            conn.close()
            return
        try:
            main.call_soon_threadsafe(self._to_dashboard, conn, address)
        except RuntimeError:  # the main loop is gone: the server is stopping
            conn.close()
