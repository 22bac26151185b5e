"""The API of ``forge-nb dashboard`` answers on its own thread: never behind a page build.

The server runs in-process on its own loop (a helper thread, like the CLI's main loop);
the page factory is made to block that loop until the test lets it go, so "the API
answered while the page was still being built" is checked without any timing.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import threading
from pathlib import Path
from typing import Any

import pytest

import forge_nb as fnb
from forge_nb.dashboard.api_thread import classify
from tests.dashboard.support import http_get, served


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"GET /api/counts HTTP/1.1\r\n", "api"),
        (b"GET /api HTTP/1.1\r\n", "api"),
        (b"GET /api?x=1 HTTP/1.1", "api"),
        (b"DELETE /api/jobs/1 HTTP/1.1", "api"),
        (b"PATCH /api/queues/q HTTP/1.1", "api"),
        (b"GET / HTTP/1.1\r\n", "dashboard"),
        (b"GET /ws?bokeh-session-id=x HTTP/1.1", "dashboard"),
        (b"GET /apis HTTP/1.1", "dashboard"),
        (b"GET /static/js/bokeh.min.js HTTP/1.1", "dashboard"),
        (b"\x16\x03\x01\x02\x00\x01", "dashboard"),  # a TLS hello: not ours to judge
        (b"GE", None),
        (b"GET /a", None),
        (b"GET /ap", None),
        (b"POST ", None),
    ],
)
def test_connections_are_told_apart_by_their_first_request_line(
    head: bytes, expected: str | None
) -> None:
    assert classify(head) == expected


class Blocker:
    """A page factory that holds the server's loop until `release` (bounded)."""

    def __init__(self) -> None:
        self.building = threading.Event()
        self.release = threading.Event()

    def __call__(self, app: fnb.App, *, read_only: bool = False) -> Any:
        import panel as pn

        self.building.set()
        self.release.wait(60)  # blocks the whole loop, as a slow document build does
        return pn.pane.Markdown("# built")


def test_api_answers_while_a_page_build_holds_the_dashboard_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = Blocker()
    monkeypatch.setattr("forge_nb.dashboard.app.create_page", blocker)
    with served(tmp_path) as base:
        page: dict[str, Any] = {}
        loader = threading.Thread(target=lambda: page.update(reply=http_get(base + "/")))
        loader.start()
        try:
            assert blocker.building.wait(30), "the page build never started"
            status, body = http_get(base + "/api/counts")
            answered_during_build = not blocker.release.is_set()
            missing, error = http_get(base + "/api/jobs/999999")
        finally:
            blocker.release.set()
            loader.join(60)
        assert answered_during_build
        assert status == 200 and json.loads(body)["mail"]["pending"] == 1
        assert missing == 404 and json.loads(error)["status"] == 404
        assert page["reply"][0] == 200 and "<html" in page["reply"][1].lower()


def test_one_connection_may_mix_api_and_page_requests(tmp_path: Path) -> None:
    with served(tmp_path) as base:
        host, port = base.removeprefix("http://").split(":")
        for paths in (["/api/counts", "/", "/api"], ["/", "/api/counts", "/"]):
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            try:
                for path in paths:
                    conn.request("GET", path)
                    reply = conn.getresponse()
                    body = reply.read().decode()
                    assert reply.status == 200, (path, reply.status, body[:200])
                    if path.startswith("/api"):
                        assert reply.getheader("Content-Type", "").startswith("application/json")
                        json.loads(body)
                    else:
                        assert "<html" in body.lower()
            finally:
                conn.close()


def test_threaded_api_keeps_auth_and_read_only(tmp_path: Path) -> None:
    with served(tmp_path, read_only=True, basic_auth="ops:s3cret") as base:
        assert http_get(base + "/api/counts")[0] == 401
        token = base64.b64encode(b"ops:s3cret").decode()
        auth = {"Authorization": f"Basic {token}"}
        assert http_get(base + "/api/counts", auth)[0] == 200
        host, port = base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request("POST", "/api/jobs", body='{"kind": "forge_nb.echo"}', headers=auth)
            reply = conn.getresponse()
            assert reply.status == 403 and json.loads(reply.read())["status"] == 403
        finally:
            conn.close()


def test_writes_to_a_websocket_the_browser_closed_are_not_logged_as_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A reload leaves Panel's queued websocket writes unawaited: debug, not an error line."""
    from tornado.websocket import WebSocketClosedError

    from forge_nb.cli_dashboard import _expect_closed_websockets

    async def write_message() -> None:
        raise WebSocketClosedError()

    async def other() -> None:
        raise RuntimeError("a real bug")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        _expect_closed_websockets(loop)
        for coro in (write_message(), other()):
            task = loop.create_task(coro)
            await asyncio.gather(task, return_exceptions=True)
            loop.call_exception_handler(
                {
                    "message": "Task exception was never retrieved",
                    "exception": task.exception(),
                    "future": task,
                }
            )

    with caplog.at_level("DEBUG"):
        asyncio.run(main())
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "never retrieved" in errors[0]
    assert any("browser left" in r.getMessage() for r in caplog.records)
