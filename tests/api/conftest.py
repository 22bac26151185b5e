"""Fixtures for the HTTP API: a real Tornado server on the test's loop and a real HTTP client.

Every reply is checked to be JSON (errors included) before a test sees it, so
"never an HTML or traceback page" holds for every request the suite makes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.netutil

import forge_nb as fnb
from forge_nb.api import api_application

FAST = {"heartbeat_interval": 0.2, "poll_interval": 0.2, "tick_interval": 0.1}
NO_BODY = object()


@dataclass
class Reply:
    """One HTTP answer: status, parsed JSON body, headers."""

    status: int
    body: Any
    headers: Any

    def __getitem__(self, key: str) -> Any:
        return self.body[key]


class Client:
    """A real HTTP client against one API server."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = tornado.httpclient.AsyncHTTPClient(force_instance=True)

    async def call(
        self,
        method: str,
        path: str,
        json_body: Any = NO_BODY,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Reply:
        headers = dict(headers or {})
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        body: bytes | None = raw
        if json_body is not NO_BODY:
            body = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        if body is None and method in ("POST", "PATCH", "PUT"):
            body = b""
        request = tornado.httpclient.HTTPRequest(
            self.base + path,
            method=method,
            body=body,
            headers=headers,
            allow_nonstandard_methods=True,
            request_timeout=30,
        )
        response = await self.http.fetch(request, raise_error=False)
        content_type = response.headers.get("Content-Type", "")
        assert content_type.startswith("application/json"), (
            f"{method} {path} -> {response.code} {content_type}: {response.body[:300]!r}"
        )
        text = response.body.decode("utf-8")
        if response.code >= 400:  # errors: a JSON message, never a stack trace
            assert "Traceback" not in text and 'File "' not in text, text
        return Reply(response.code, json.loads(text), response.headers)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, json_body: Any = NO_BODY, **kw: Any) -> Reply:
        return await self.call("POST", path, json_body, **kw)

    async def patch(self, path: str, json_body: Any = NO_BODY, **kw: Any) -> Reply:
        return await self.call("PATCH", path, json_body, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.call("DELETE", path, **kw)

    def close(self) -> None:
        self.http.close()


@asynccontextmanager
async def serve_api(app: fnb.App, **options: Any) -> AsyncIterator[Client]:
    """Serve ``api_application(app, **options)`` on a free port of 127.0.0.1."""
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    server = tornado.httpserver.HTTPServer(api_application(app, **options))
    server.add_sockets(sockets)
    client = Client(f"http://127.0.0.1:{port}")
    try:
        yield client
    finally:
        client.close()
        server.stop()
        await server.close_all_connections()


@pytest.fixture
async def app(sqlite_url: str) -> AsyncIterator[fnb.App]:
    """A fresh App on a new SQLite file (the API layer is backend-agnostic)."""
    application = fnb.App(sqlite_url, **FAST)
    try:
        yield application
    finally:
        await application.close(timeout=2)


@pytest.fixture
async def api(app: fnb.App) -> AsyncIterator[Client]:
    """The API of ``app``, no auth, writable."""
    async with serve_api(app) as client:
        yield client


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Await ``check()`` until it returns something truthy (or fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        await asyncio.sleep(0.02)
