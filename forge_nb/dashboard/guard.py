"""The dashboard server's front door: checks every request before Tornado routes it.

Why here and not in the handlers: Tornado reads a request's whole body before
any handler runs, Panel and Bokeh own most of the routes, and the API thread
serves the same port with a second Tornado server. One delegate in front of
each HTTP server (`guard_http_server`) sees the request line and headers first
and answers on its own, before the body is read, when:

- the ``Host`` is not one this server answers to (DNS rebinding; 403);
- the declared body is over the size limit (413);
- auth is on and an API request, or any request with a body other than the
  login form, carries no valid credentials (401);
- Panel's ``/components/<module>/…`` route names a module that is not already
  imported (Panel would import it; 404);
- too many page sessions are being built for this client or in all (503 with
  ``Retry-After``; see `SessionBuilds`).

It also forgets login cookies that were logged out (`RevokedCookies`), and adds
framing, cookie and ``Retry-After`` headers to every answer.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie
from typing import Any

import tornado.httputil
import tornado.web

from forge_nb import compat
from forge_nb.api.access import Credentials, parse_basic_header, password_matches

#: Default largest request body (``--max-body-size``): jobs are at most 1 MB of JSON.
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
#: Page sessions one client may have being built at once, and all clients together.
BUILDS_PER_CLIENT = 4
BUILDS_TOTAL = 8
#: A reservation not released by a build (the request failed on the way) lapses after this.
BUILD_HOLD_S = 15.0
#: What a refused build tells the client to wait, in seconds.
RETRY_AFTER_S = 2
#: Panel's login cookies; a logout revokes the values it clears.
LOGIN_COOKIES = ("user", "id_token")
LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
COMPONENTS = "/components/"


def local_path(prefix: str, path: str) -> str | None:
    """``path`` relative to the server's ``prefix`` (``""`` at the prefix itself), or None when
    the path lies outside it: ``/forge-nb/api`` → ``/api`` but ``/forge-nbx/api`` → None."""
    if not prefix:
        return path
    if path == prefix:
        return ""
    if path.startswith(prefix + "/"):
        return path[len(prefix) :]
    return None


def host_name(host_header: str) -> str:
    """``Example.org:5006`` → ``example.org``; ``[::1]:5006`` → ``::1``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


class RevokedCookies:
    """Login cookie values that a ``/logout`` retired, kept until they would expire anyway.

    Panel's logout only asks the browser to drop its cookie; a copy of the signed value
    kept elsewhere would stay valid for its whole lifetime. Shared by the dashboard's
    and the API thread's guards (hence the lock). Memory is bounded: the oldest go first.
    """

    def __init__(self, max_age_s: float = 30 * 86_400, max_entries: int = 10_000) -> None:
        self.max_age_s = max_age_s
        self.max_entries = max_entries
        self._revoked: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def revoke(self, value: str) -> None:
        """Refuse this cookie value from now on."""
        now = time.monotonic()
        with self._lock:
            self._revoked[value] = now
            self._revoked.move_to_end(value)
            while self._revoked and (
                len(self._revoked) > self.max_entries
                or next(iter(self._revoked.values())) < now - self.max_age_s
            ):
                self._revoked.popitem(last=False)

    def __contains__(self, value: object) -> bool:
        with self._lock:
            return value in self._revoked


@dataclass
class _Reservation:
    client: str
    expires: float
    released: bool = False


class SessionBuilds:
    """Admission for page-session builds: at most so many per client and in all.

    A Bokeh session build (a whole dashboard document) costs hundreds of milliseconds of
    the server's loop, and anyone who can reach the port may ask for one (a page load, or
    a websocket with a made-up session id). The guard reserves a slot for each request
    that may build one and refuses the rest with 503; the slot is released when the
    build ends (`wrap_application_contexts`), when the answer shows none will happen, or
    after `BUILD_HOLD_S` at the latest.
    """

    def __init__(
        self,
        per_client: int = BUILDS_PER_CLIENT,
        total: int = BUILDS_TOTAL,
        hold_s: float = BUILD_HOLD_S,
    ) -> None:
        self.per_client = per_client
        self.total = total
        self.hold_s = hold_s
        self._held: list[_Reservation] = []

    def _live(self) -> list[_Reservation]:
        now = time.monotonic()
        self._held = [r for r in self._held if not r.released and r.expires > now]
        return self._held

    def reserve(self, client: str) -> _Reservation | None:
        """A slot for one build, or None when this client or the server is at its limit."""
        held = self._live()
        if len(held) >= self.total or sum(r.client == client for r in held) >= self.per_client:
            return None
        reservation = _Reservation(client, time.monotonic() + self.hold_s)
        held.append(reservation)
        return reservation

    @staticmethod
    def release(reservation: _Reservation | None) -> None:
        """Give the slot back (idempotent)."""
        if reservation is not None:
            reservation.released = True

    def in_use(self) -> int:
        """Slots held now (tests, logs)."""
        return len(self._live())

    def wrap_application_contexts(self, contexts: Iterable[Any]) -> None:
        """Release a request's slot when its session build ends (or finds one built)."""

        def wrap(create: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def create_and_release(
                session_id: Any, request: Any = None, token: str | None = None
            ) -> Any:
                try:
                    return await create(session_id, request, token)
                finally:
                    self.release(_reservation_of(request))

            return create_and_release

        for context in contexts:
            compat.wrap_session_creation(context, wrap)


def _reservation_of(request: Any) -> _Reservation | None:
    connection = getattr(request, "connection", None)
    return getattr(connection, "forge_nb_build", None)


@dataclass
class GuardPolicy:
    """What the guard enforces for one server (shared by its API thread)."""

    #: Host names (no port) this server answers to; ``"*"`` accepts any.
    allowed_hosts: frozenset[str]
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    credentials: Credentials | None = None
    cookie_secret: str | None = None
    #: Where the server is mounted (``""`` at the root, else ``/prefix``, no trailing slash:
    #: see `forge_nb.dashboard.server.normalize_prefix`).
    prefix: str = ""
    revoked: RevokedCookies = field(default_factory=RevokedCookies)
    #: None: this server builds no sessions (the API thread).
    builds: SessionBuilds | None = None
    #: ``frame-ancestors`` sources besides ``'self'``.
    frame_ancestors: tuple[str, ...] = ()

    def host_allowed(self, host_header: str | None) -> bool:
        """A request without ``Host`` (HTTP/1.0) is for the bound address."""
        if not host_header or "*" in self.allowed_hosts:
            return True
        name = host_name(host_header)
        if name in self.allowed_hosts:
            return True
        try:  # any loopback address (127.0.0.0/8, ::1): a rebinding attack needs a name
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

    def authenticated(self, headers: tornado.httputil.HTTPHeaders) -> bool:
        """Basic credentials, or a signed login cookie that was not logged out."""
        assert self.credentials is not None
        pair = parse_basic_header(headers.get("Authorization"))
        if pair is not None:
            return password_matches(self.credentials, *pair)
        if not self.cookie_secret:
            return False
        value = _cookies(headers).get("user")
        if value is None or value in self.revoked:
            return False
        return (
            tornado.web.decode_signed_value(self.cookie_secret, "user", value, max_age_days=31)
            is not None
        )


def _cookies(headers: tornado.httputil.HTTPHeaders) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for header in headers.get_list("Cookie"):
        try:
            jar.load(header)
        except Exception:  # a malformed cookie header: Tornado ignores it too
            continue
    return {name: morsel.value for name, morsel in jar.items()}


@dataclass(frozen=True)
class Refusal:
    """An answer the guard gives instead of the server."""

    status: int
    message: str
    headers: tuple[tuple[str, str], ...] = ()


def _has_body(headers: tornado.httputil.HTTPHeaders) -> bool:
    if "Transfer-Encoding" in headers:
        return True
    try:
        return int(headers.get("Content-Length", "0") or 0) > 0
    except ValueError:
        return True


def check_request(
    policy: GuardPolicy,
    method: str,
    path: str,
    headers: tornado.httputil.HTTPHeaders,
) -> Refusal | None:
    """The guard's decision for one request line and its headers (None: let it through)."""
    if not policy.host_allowed(headers.get("Host")):
        return Refusal(403, f"host {headers.get('Host', '')!r} is not allowed on this server")
    length = headers.get("Content-Length")
    if length is not None:
        try:
            too_big = int(length) > policy.max_body_bytes
        except ValueError:
            return Refusal(400, "malformed Content-Length")
        if too_big:
            return Refusal(413, f"request body over the limit of {policy.max_body_bytes} bytes", ())
    # Outside the prefix nothing of ours is served (404); checked as if inside, to be safe.
    local = local_path(policy.prefix, path)
    if local is None:
        local = path
    if policy.credentials is not None:
        is_api = local == "/api" or local.startswith("/api/")
        if (is_api or (_has_body(headers) and local != LOGIN_PATH)) and not policy.authenticated(
            headers
        ):
            return Refusal(
                401,
                "authentication required: send HTTP Basic credentials",
                (("WWW-Authenticate", 'Basic realm="forge-nb", charset="UTF-8"'),),
            )
    if local.startswith(COMPONENTS):
        import sys

        module = local[len(COMPONENTS) :].split("/", 1)[0]
        if module not in sys.modules:
            return Refusal(404, "no such component module")
    return None


def builds_session(policy: GuardPolicy, method: str, path: str) -> bool:
    """Requests that may build a page session: the page itself and its websocket."""
    if policy.builds is None or method != "GET":
        return False
    return local_path(policy.prefix, path) in ("", "/", "/ws")


class _GuardedRequest(tornado.httputil.HTTPMessageDelegate):
    """Checks one request's headers, then passes it on or answers it itself."""

    def __init__(
        self,
        policy: GuardPolicy,
        inner: tornado.httputil.HTTPMessageDelegate,
        connection: Any,
    ) -> None:
        self.policy = policy
        self.inner = inner
        self.connection = connection
        self.refused = False
        self.https = False
        self._write_headers = connection.write_headers
        connection.write_headers = self._decorated_write_headers

    def _decorated_write_headers(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> Any:
        """Every answer: framing policy, cookie flags, ``Retry-After`` on 503; an answer that
        is a redirect or an error gives back the session-build slot its request held."""
        if isinstance(start_line, tornado.httputil.ResponseStartLine):
            sources = " ".join(("'self'", *self.policy.frame_ancestors))
            headers["Content-Security-Policy"] = f"frame-ancestors {sources}"
            if not self.policy.frame_ancestors:
                headers["X-Frame-Options"] = "SAMEORIGIN"
            if start_line.code == 503 and "Retry-After" not in headers:
                headers["Retry-After"] = str(RETRY_AFTER_S)
            if "Set-Cookie" in headers:
                cookies = [_harden_cookie(c, self.https) for c in headers.get_list("Set-Cookie")]
                del headers["Set-Cookie"]
                for cookie in cookies:
                    headers.add("Set-Cookie", cookie)
            if start_line.code >= 300:  # this request builds no session
                SessionBuilds.release(getattr(self.connection, "forge_nb_build", None))
        return self._write_headers(start_line, headers, chunk)

    def headers_received(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        assert isinstance(start_line, tornado.httputil.RequestStartLine)
        self.https = _https(self.connection, headers)
        path = start_line.path.split("?", 1)[0]
        refusal = check_request(self.policy, start_line.method, path, headers)
        if refusal is None and builds_session(self.policy, start_line.method, path):
            assert self.policy.builds is not None
            client = getattr(getattr(self.connection, "context", None), "remote_ip", "") or ""
            reservation = self.policy.builds.reserve(client)
            if reservation is None:
                refusal = Refusal(
                    503,
                    "too many dashboard sessions are being built; try again shortly",
                    (("Retry-After", str(RETRY_AFTER_S)),),
                )
            else:
                self.connection.forge_nb_build = reservation
        if refusal is not None:
            self.refused = True
            return self._answer(refusal)
        self._forget_logged_out(path, headers)
        return self.inner.headers_received(start_line, headers)

    def _forget_logged_out(self, path: str, headers: tornado.httputil.HTTPHeaders) -> None:
        """A logout revokes the login cookies it clears; revoked ones are dropped here."""
        if "Cookie" not in headers:
            return
        cookies = _cookies(headers)
        if local_path(self.policy.prefix, path) == LOGOUT_PATH:
            for name in LOGIN_COOKIES:
                if name in cookies:
                    self.policy.revoked.revoke(cookies[name])
            return
        if not any(cookies.get(name) in self.policy.revoked for name in LOGIN_COOKIES):
            return
        kept = "; ".join(
            f"{name}={value}"
            for name, value in cookies.items()
            if not (name in LOGIN_COOKIES and value in self.policy.revoked)
        )
        del headers["Cookie"]
        if kept:
            headers["Cookie"] = kept

    async def _answer(self, refusal: Refusal) -> None:
        import json

        body = json.dumps(
            {
                "status": refusal.status,
                "error": HTTPStatus(refusal.status).phrase,
                "message": refusal.message,
            }
        ).encode()
        headers = tornado.httputil.HTTPHeaders(
            {
                "Content-Type": "application/json; charset=UTF-8",
                "Content-Length": str(len(body)),
                "Cache-Control": "no-store",
                "Connection": "close",
            }
        )
        for name, value in refusal.headers:
            headers[name] = value
        line = tornado.httputil.ResponseStartLine(
            "HTTP/1.1", refusal.status, HTTPStatus(refusal.status).phrase
        )
        # Finishing before the body is read makes Tornado close the connection once this
        # answer is out, without reading (or buffering) the body.
        await self.connection.write_headers(line, headers, body)
        self.connection.finish()

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return None if self.refused else self.inner.data_received(chunk)

    def finish(self) -> None:
        if not self.refused:
            self.inner.finish()

    def on_connection_close(self) -> None:
        SessionBuilds.release(getattr(self.connection, "forge_nb_build", None))
        if not self.refused:
            self.inner.on_connection_close()


class RequestGuard(tornado.httputil.HTTPServerConnectionDelegate):
    """Wraps a server's request callback (a Tornado ``Application``) with `_GuardedRequest`."""

    def __init__(self, inner: tornado.httputil.HTTPServerConnectionDelegate, policy: GuardPolicy):
        self.inner = inner
        self.policy = policy

    def start_request(
        self, server_conn: object, request_conn: tornado.httputil.HTTPConnection
    ) -> tornado.httputil.HTTPMessageDelegate:
        return _GuardedRequest(
            self.policy, self.inner.start_request(server_conn, request_conn), request_conn
        )

    def on_close(self, server_conn: object) -> None:
        self.inner.on_close(server_conn)


def _https(connection: Any, headers: tornado.httputil.HTTPHeaders) -> bool:
    """Served over TLS, here or by a proxy in front (which says so in X-Forwarded-Proto)."""
    forwarded = headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    protocol = getattr(getattr(connection, "context", None), "protocol", "http")
    return protocol == "https" or forwarded == "https"


def _harden_cookie(cookie: str, secure: bool) -> str:
    lowered = cookie.lower()
    if "samesite=" not in lowered:
        cookie += "; SameSite=Lax"
    if secure and "; secure" not in lowered:
        cookie += "; Secure"
    return cookie


def guard_http_server(http_server: Any, policy: GuardPolicy) -> None:
    """Put the guard in front of a Tornado ``HTTPServer``."""
    compat.intercept_requests(
        http_server, lambda inner: RequestGuard(inner, policy), policy.max_body_bytes
    )
