"""The request handler every API route builds on: access checks, JSON bodies, JSON errors.

Errors never render Tornado's HTML page or a traceback: expected failures map
to a status (`error_status`), anything else is logged here and answered with a
plain 500 message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import tornado.web

from forge_nb.api.access import SAFE_METHODS, ApiAccess
from forge_nb.api.convert import BadInput, dumps, parse_body
from forge_nb.errors import DatabaseUnavailable, PayloadError, StorageError, UnknownQueue
from forge_nb.runtime.app import App

log = logging.getLogger("forge_nb.api")

#: Where the routes live (pinned by SPEC §6); a server prefix may come before it.
API_ROOT = "/api"
#: An `App`, or a zero-argument callable returning one (created lazily on the server's loop).
AppSource = App | Callable[[], App]


class ApiError(Exception):
    """An answer other than 2xx, with a message for the caller."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_status(exc: BaseException) -> tuple[int, str] | None:
    """The HTTP status and message for an expected failure; None for a bug (500)."""
    if isinstance(exc, ApiError):
        return exc.status, exc.message
    if isinstance(exc, BadInput):
        return exc.status, str(exc)
    if isinstance(exc, UnknownQueue):
        return 404, str(exc)
    if isinstance(exc, LookupError) and not isinstance(exc, KeyError | IndexError):
        return 404, str(exc)
    if isinstance(exc, PayloadError | ValueError):
        return 422, str(exc)
    if isinstance(exc, StorageError):  # details (user, host, port) stay in the server's log
        log.warning("database error: %s", exc)
        return 503, (
            "database unreachable" if isinstance(exc, DatabaseUnavailable) else "database error"
        )
    if isinstance(exc, RecursionError):
        return 400, "input nested too deeply"
    if isinstance(exc, tornado.web.HTTPError):
        return exc.status_code, exc.log_message or HTTPStatus(exc.status_code).phrase.lower()
    return None


class ApiRoute(tornado.web.RequestHandler):
    """Base of every route: JSON out, checked access, JSON errors (status, error, message)."""

    def initialize(self, app: AppSource, access: ApiAccess) -> None:
        self._app_source = app
        self.access = access

    @property
    def forge(self) -> App:
        """The forge-nb `App` this API serves."""
        source = self._app_source
        return source if isinstance(source, App) else source()

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def check_xsrf_cookie(self) -> None:
        """Script clients send no XSRF cookie; `prepare` refuses cross-origin mutations instead."""

    def prepare(self) -> None:
        """Auth first (401), then read-only (403), then the cross-origin guard (403)."""
        credentials = self.access.credentials(self.application)
        if credentials is not None and not self.access.authenticated(
            credentials, self.request.headers.get("Authorization"), self._login_cookie
        ):
            raise ApiError(
                401,
                "authentication required: send HTTP Basic credentials",
                {"WWW-Authenticate": 'Basic realm="forge-nb", charset="UTF-8"'},
            )
        if self.request.method in SAFE_METHODS:
            return
        if self.access.read_only:
            raise ApiError(403, "the API is read-only on this server; changes are refused")
        self._check_same_origin()

    def _login_cookie(self) -> bytes | None:
        """Panel's signed login cookie, when the server signs cookies."""
        if not self.application.settings.get("cookie_secret"):
            return None
        return self.get_secure_cookie("user")

    def _check_same_origin(self) -> None:
        """Browsers send ``Origin`` on cross-site POST/PATCH/DELETE; other sites may not mutate.

        Without this, any web page could make a local browser cancel or delete
        jobs on a dashboard bound to 127.0.0.1. curl and scripts send no Origin.
        """
        origin = self.request.headers.get("Origin")
        if origin is None:
            return
        if origin == "null" or urlsplit(origin).netloc.lower() != self.request.host.lower():
            raise ApiError(403, f"cross-origin request from {origin} refused")

    # -- bodies and answers ---------------------------------------------------------------------
    def json_body(self, *, allow_empty: bool = False) -> Any:
        """The parsed request body (400 when it is not JSON)."""
        return parse_body(self.request.body, allow_empty=allow_empty)

    def query(self, name: str) -> str | None:
        """A query argument; empty means absent (``?status=&queue=`` filters nothing).

        Surrounding spaces go, but a value of only whitespace is kept (and refused where it
        is not valid, as ``limit=%0C`` is): Tornado's own stripping made it "empty".
        """
        value = self.get_query_argument(name, None, strip=False)
        if not value:
            return None
        return value.strip() or value

    def send(self, value: Any, status: int = 200) -> None:
        """Answer with JSON."""
        self.set_status(status)
        self.finish(dumps(value))

    def api_root(self) -> str:
        """Where the API is mounted: ``/api``, or ``/prefix/api`` behind a server prefix."""
        index = (self.request.path + "/").find(API_ROOT + "/")
        return self.request.path[:index] + API_ROOT if index > 0 else API_ROOT

    # -- errors --------------------------------------------------------------------------------
    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Expected failures are the caller's business (debug); only bugs log a traceback."""
        if value is not None and error_status(value) is not None:
            log.debug("%s %s -> %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs["exc_info"][1] if "exc_info" in kwargs else None
        found = error_status(exc) if exc is not None else None
        if found is None:
            message = "internal server error" if status_code >= 500 else ""
            found = (status_code, message or HTTPStatus(status_code).phrase.lower())
        status, message = found
        if isinstance(exc, ApiError):
            for name, value in exc.headers.items():
                self.set_header(name, value)
        if status == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_status(status)
        self.finish(
            dumps({"status": status, "error": HTTPStatus(status).phrase, "message": message})
        )

    @classmethod
    def allowed_methods(cls) -> list[str]:
        """The HTTP methods this route implements (for ``Allow`` and the OpenAPI check)."""
        return [
            method
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
            if getattr(cls, method.lower())
            is not getattr(tornado.web.RequestHandler, method.lower())
        ]


class NotFoundRoute(ApiRoute):
    """Any other path under the API: a JSON 404 for every method."""

    def prepare(self) -> None:
        raise ApiError(404, f"no API route {self.request.path}")
