"""The API on the dashboard's own server: `pn.serve(extra_patterns=…)` and `panel serve --plugins`."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import panel as pn
import tornado.httpclient
from panel.config import config as panel_config
from panel.io.state import state as panel_state

import forge_nb as fnb
from forge_nb.api import api_routes
from tests.api.conftest import Client

COOKIE_SECRET = "forge-nb-test-cookie-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def page() -> Any:
    return pn.pane.Markdown("# Mission Control")


@asynccontextmanager
async def panel_server(app: fnb.App, **serve: Any) -> AsyncIterator[tuple[Client, str]]:
    """A real Panel server on this loop, the API mounted beside a page, as `serve_dashboard` does."""
    port = free_port()
    server_id = f"forge-nb-api-test-{port}"
    previous_sigint = signal.getsignal(signal.SIGINT)
    previous_secret = panel_config.cookie_secret
    server = pn.serve(
        {"/": page},
        port=port,
        address="127.0.0.1",
        show=False,
        start=False,
        verbose=False,
        websocket_origin=[f"127.0.0.1:{port}"],
        server_id=server_id,
        **serve,
    )
    signal.signal(signal.SIGINT, previous_sigint)
    server.start()
    client = Client(f"http://127.0.0.1:{port}")
    try:
        yield client, client.base
    finally:
        client.close()
        server.stop()
        panel_state._servers.pop(server_id, None)
        panel_config.cookie_secret = previous_secret


async def fetch_raw(url: str, **kw: Any) -> tornado.httpclient.HTTPResponse:
    http = tornado.httpclient.AsyncHTTPClient(force_instance=True)
    try:
        return await http.fetch(url, raise_error=False, **kw)
    finally:
        http.close()


async def test_api_lives_beside_the_dashboard_on_one_server(app: fnb.App) -> None:
    await app.enqueue(fnb.EnqueueRequest(kind="forge_nb.echo", queue="mail"))
    async with panel_server(app, extra_patterns=api_routes(app)) as (api, base):
        dashboard = await fetch_raw(base + "/")
        assert dashboard.code == 200 and b"<html" in dashboard.body.lower()
        counts = await api.get("/api/counts")
        assert counts.status == 200 and counts.body["mail"]["pending"] == 1
        made = await api.post("/api/jobs", {"kind": "forge_nb.echo", "queue": "mail"})
        assert made.status == 201
        assert (await api.get("/api/nope")).status == 404


async def test_api_behind_a_server_prefix_links_to_itself(app: fnb.App) -> None:
    async with panel_server(app, extra_patterns=api_routes(app), prefix="/ops") as (api, base):
        assert (await fetch_raw(base + "/api/counts")).code == 404  # only under the prefix
        index = await api.get("/ops/api")
        assert index.status == 200 and index["openapi"] == "/ops/api/openapi.json"
        doc = await api.get(index["openapi"])
        assert doc["servers"] == [{"url": "/ops"}]
        made = await api.post("/ops/api/jobs", {"kind": "forge_nb.echo"})
        assert made.headers["Location"] == f"/ops/api/jobs/{made['id']}"
        assert (await api.get(made.headers["Location"]))["kind"] == "forge_nb.echo"


async def test_api_follows_the_panel_servers_basic_auth_and_login(app: fnb.App) -> None:
    routes = api_routes(app, panel_auth=True)
    async with panel_server(
        app, extra_patterns=routes, basic_auth="s3cret", cookie_secret=COOKIE_SECRET
    ) as (api, base):
        assert (await api.get("/api/counts")).status == 401
        assert (await api.get("/api/counts", auth=("ops", "wrong"))).status == 401
        assert (await api.get("/api/counts", auth=("ops", "s3cret"))).status == 200

        # A browser that logged in on Panel's login page may use the API with that cookie.
        login = await fetch_raw(
            base + "/login",
            method="POST",
            body="username=ops&password=s3cret",
            follow_redirects=False,
        )
        assert login.code == 302
        cookies = "; ".join(c.split(";", 1)[0] for c in login.headers.get_list("Set-Cookie") if c)
        assert "user=" in cookies
        assert (await api.get("/api/counts", headers={"Cookie": cookies})).status == 200
        forged = await api.get("/api/counts", headers={"Cookie": 'user="ops|forged"'})
        assert forged.status == 401


def test_panel_serve_plugin_mounts_a_read_only_api(tmp_path: Path) -> None:
    """``panel serve dash.py --plugins forge_nb.api.plugin``: the documented standalone route."""
    (tmp_path / "dash.py").write_text(
        "import panel as pn\npn.pane.Markdown('# Mission Control').servable()\n"
    )
    port = free_port()
    env = {
        **os.environ,
        "FORGE_NB_DATABASE_URL": f"sqlite:///{tmp_path}/jobs.db",
        "FORGE_NB_READ_ONLY": "1",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "panel",
            "serve",
            "dash.py",
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
            "--plugins",
            "forge_nb.api.plugin",
            "--basic-auth",
            "s3cret",
            "--cookie-secret",
            COOKIE_SECRET,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    token = base64.b64encode(b"ops:s3cret").decode()
    auth = {"Authorization": f"Basic {token}"}
    try:
        status, body = wait_for(f"http://127.0.0.1:{port}/api/counts", auth, proc)
        assert status == 200 and body == {}
        assert request(f"http://127.0.0.1:{port}/api/counts", {})[0] == 401
        status, body = request(f"http://127.0.0.1:{port}/api/jobs", auth, b'{"kind": "x"}')
        assert status == 403 and "read-only" in body["message"]
        status, body = request(f"http://127.0.0.1:{port}/api", auth)
        assert body["read_only"] is True
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("panel serve did not exit on SIGTERM") from None
    assert proc.returncode == 0


def request(url: str, headers: dict[str, str], data: bytes | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_for(url: str, headers: dict[str, str], proc: subprocess.Popen) -> tuple[int, Any]:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise AssertionError(f"panel serve exited with {proc.returncode}:\n{output}")
        try:
            return request(url, headers)
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
