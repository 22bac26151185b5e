"""Mission Control behind a reverse proxy: ``--prefix /path/`` and ``--unix-socket PATH``.

jupyter-server-proxy (`forge_nb.jupyter.proxy`) runs the dashboard this way: on a Unix
socket only this user can open, with the whole proxied path (``absolute_url``), passing
the browser's own ``Host`` and ``Origin``. Every asset, the websocket and the API must be
under the prefix, and the guard must see paths relative to it.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import tornado.httputil

from forge_nb.dashboard.guard import GuardPolicy, builds_session, check_request, local_path
from forge_nb.dashboard.server import normalize_prefix
from tests.dashboard.support import (
    DEEP_TEXT_JS,
    Page,
    Served,
    forge_cli,
    served,
    subprocess_env,
    wait_for,
)

PREFIX = "/user/ann/forge-nb"


# -- the prefix itself -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, ""),
        ("", ""),
        ("/", ""),
        ("forge-nb", "/forge-nb"),
        ("/user/ann/forge-nb/", "/user/ann/forge-nb"),
        ("/user/a%40b.org/forge-nb", "/user/a%40b.org/forge-nb"),
    ],
)
def test_prefixes_are_normalized(given: str | None, expected: str) -> None:
    assert normalize_prefix(given) == expected


@pytest.mark.parametrize("bad", ["/a b/", "/a?b", "/a#b", "/a/../b", "/a//b", "/(x)"])
def test_prefixes_that_are_not_plain_paths_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        normalize_prefix(bad)


def test_local_path_respects_segment_boundaries() -> None:
    assert local_path("", "/api/counts") == "/api/counts"
    assert local_path(PREFIX, PREFIX) == ""
    assert local_path(PREFIX, PREFIX + "/api/counts") == "/api/counts"
    assert local_path(PREFIX, PREFIX + "x/api/counts") is None
    assert local_path(PREFIX, "/api/counts") is None


def test_the_guard_sees_paths_below_the_prefix() -> None:
    from forge_nb.api.access import load_credentials
    from forge_nb.dashboard.guard import SessionBuilds

    policy = GuardPolicy(
        allowed_hosts=frozenset({"*"}),
        credentials=load_credentials({"ops": "pw"}),
        prefix=PREFIX,
        builds=SessionBuilds(),
    )
    headers = tornado.httputil.HTTPHeaders({"Host": "hub.example.org"})
    # The API below the prefix needs credentials; the page itself does not (Panel's login).
    refused = check_request(policy, "GET", PREFIX + "/api/counts", headers)
    assert refused is not None and refused.status == 401
    assert check_request(policy, "GET", PREFIX + "/", headers) is None
    # Outside the prefix nothing is served; it is checked as strictly as inside.
    outside = check_request(policy, "GET", "/api/counts", headers)
    assert outside is not None and outside.status == 401
    # Page builds: the page (with or without its slash) and the websocket, under the prefix only.
    for path in (PREFIX, PREFIX + "/", PREFIX + "/ws"):
        assert builds_session(policy, "GET", path), path
    for path in ("/", "/ws", PREFIX + "x/", PREFIX + "/api/counts", PREFIX + "/static/x.js"):
        assert not builds_session(policy, "GET", path), path
    # Panel's component route is recognized below the prefix too.
    components = check_request(policy, "GET", PREFIX + "/components/not_imported_mod/x.js", headers)
    assert components is not None and components.status == 404


# -- a served dashboard under a prefix ---------------------------------------------------------


def http_get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("GET", path, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def test_everything_is_served_under_the_prefix(tmp_path: Path, page: Page) -> None:
    with served(tmp_path, prefix=PREFIX + "/") as base:
        status, body = http_get(base, PREFIX + "/api/counts")
        assert status == 200 and json.loads(body)["mail"]["pending"] == 1
        assert http_get(base, "/api/counts")[0] == 404
        openapi = json.loads(http_get(base, PREFIX + "/api/openapi.json")[1])
        assert openapi["servers"] == [{"url": PREFIX}]
        assert http_get(base, PREFIX + "/favicon.ico")[0] == 200

        requested: list[str] = []
        sockets: list[str] = []
        page.page.on("request", lambda r: requested.append(r.url))
        page.page.on("websocket", lambda ws: sockets.append(ws.url))
        page.open(base + PREFIX + "/", tab=None)
        header = page.page.locator(".fnb-header-pane").first
        first = header.evaluate(DEEP_TEXT_JS)
        # Live over the websocket under the prefix: the header's "updated …" time moves on.
        wait_for(lambda: header.evaluate(DEEP_TEXT_JS) != first, timeout=30)
        assert "● live" in header.evaluate(DEEP_TEXT_JS)
        outside = [
            url
            for url in requested
            if not url.startswith(base + PREFIX + "/") and not url.startswith("blob:")
        ]
        assert outside == []  # every stylesheet, script and the websocket: under the prefix
        assert sockets and all(
            url.startswith(base.replace("http", "ws") + PREFIX + "/ws") for url in sockets
        ), sockets


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (what jupyter-server-proxy does with ``unix_socket``)."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def unix_request(
    path: str,
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = UnixHTTPConnection(path)
    try:
        conn.request(method, url, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def test_a_unix_socket_server_answers_the_hosts_it_is_told_to(tmp_path: Path) -> None:
    sock = str(tmp_path / "dash.sock")
    with served(tmp_path, prefix=PREFIX, unix_socket=sock, allow_host=["hub.example.org"]):
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600  # only this user can connect
        hub = {"Host": "hub.example.org"}
        status, headers, body = unix_request(sock, "GET", PREFIX + "/api/counts", None, hub)
        assert status == 200, body
        assert json.loads(body)["mail"]["pending"] == 1
        assert headers["content-security-policy"] == "frame-ancestors 'self'"
        assert unix_request(sock, "GET", PREFIX + "/", None, hub)[0] == 200
        evil = {"Host": "evil.example"}
        assert unix_request(sock, "GET", PREFIX + "/api/counts", None, evil)[0] == 403
        # A mutation from another origin is refused even from an allowed host.
        patch = json.dumps({"paused": True}).encode()
        cross = {**hub, "Origin": "http://evil.example", "Content-Type": "application/json"}
        assert unix_request(sock, "PATCH", PREFIX + "/api/queues/mail", patch, cross)[0] == 403
        same = {**hub, "Origin": "http://hub.example.org", "Content-Type": "application/json"}
        status, _, body = unix_request(sock, "PATCH", PREFIX + "/api/queues/mail", patch, same)
        assert status == 200 and json.loads(body)["paused"] is True
        # A page asked for on a connection that began with an API request is forwarded to
        # this server's own socket (the API thread's forwarder), whatever the request says.
        conn = UnixHTTPConnection(sock)
        try:
            conn.request("GET", PREFIX + "/api/counts", headers=hub)
            assert conn.getresponse().read()
            conn.request("GET", PREFIX + "/favicon.ico", headers=hub)
            assert conn.getresponse().status == 200
        finally:
            conn.close()


def test_cli_serves_on_a_unix_socket_under_a_prefix(tmp_path: Path) -> None:
    sock = tmp_path / "cli.sock"
    argv = forge_cli(
        "dashboard",
        "--db",
        f"sqlite:///{tmp_path}/jobs.db",
        "--unix-socket",
        str(sock),
        "--prefix",
        PREFIX + "/",
        "--allow-host",
        "*",
    )
    log = (tmp_path / "cli.log").open("w")
    process = subprocess.Popen(
        argv,
        env=subprocess_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    server = Served(process, "", [], tmp_path / "cli.log")
    try:
        assert process.stdout is not None
        for line in process.stdout:
            server.lines.append(line)
            if "Mission Control at" in line:
                break
        assert f"unix socket {sock}, path {PREFIX}/" in server.log_text()
        wait_for(lambda: _listening(sock), timeout=30)
        status, _, body = unix_request(
            str(sock), "GET", PREFIX + "/api/counts", None, {"Host": "x"}
        )
        assert status == 200 and json.loads(body) == {}
    finally:
        assert server.stop() == 0, server.log_text()


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True


def test_the_api_thread_serves_a_long_prefix_while_a_page_build_holds_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JupyterHub prefixes are long (``/user/<name>/forge-nb``): the connection classifier
    must still see ``<prefix>/api`` whole and hand the request to the API thread."""
    import threading

    import panel as pn

    building, release = threading.Event(), threading.Event()

    def blocking_page(app: Any, read_only: bool = False) -> Any:
        building.set()
        release.wait(60)  # blocks the dashboard's loop, as a slow document build does
        return pn.pane.Markdown("# built")

    monkeypatch.setattr("forge_nb.dashboard.app.create_page", blocking_page)
    long = "/user/" + "a-rather-long-hub-user-name.with.dots%40example.org" + "/forge-nb"
    with served(tmp_path, prefix=long) as base:
        loader = threading.Thread(target=lambda: http_get(base, long + "/"))
        loader.start()
        try:
            assert building.wait(30), "the page build never started"
            status, body = http_get(base, long + "/api/counts")
            answered_during_build = not release.is_set()
        finally:
            release.set()
            loader.join(60)
        assert answered_during_build
        assert status == 200 and json.loads(body)["mail"]["pending"] == 1
