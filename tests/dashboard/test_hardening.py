"""The dashboard server under attack: each finding of the security review, kept fixed.

Every test talks to a real server (`build_server(..., api_thread=True)`, as
``forge-nb dashboard`` runs it, or the CLI itself) over real sockets; the raw-socket
ones send exactly the bytes an attacker would.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import forge_nb as fnb
from tests.dashboard.support import (
    forge_cli,
    free_port,
    http_get,
    run_sync,
    served,
    start_server,
    subprocess_env,
    wait_for,
)

USER, PASSWORD = "ops", "s3cret-pass"


def raw_exchange(base: str, data: bytes, *, timeout: float = 15.0) -> bytes:
    """Send ``data`` on one connection and read until the server closes it (or times out)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def statuses(reply: bytes) -> list[int]:
    """The status codes of every HTTP answer in ``reply``, in order."""
    import re

    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)]


@contextmanager
def bystander() -> Iterator[tuple[int, list[str]]]:
    """Another HTTP server on loopback (the forwarder's would-be victim); records its hits."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _hit(self) -> None:
            hits.append(f"{self.command} {self.path}")
            body = b"SECRET-OF-THE-OTHER-SERVER"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _hit

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def request(
    base: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection: (status, headers, body); redirects not followed."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        data = reply.read()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, data
    finally:
        conn.close()


# -- 1. the forwarder ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["@127.0.0.1:{port}/x", "//127.0.0.1:{port}/x", "http://127.0.0.1:{port}/x"],
)
def test_forwarder_never_reaches_another_host(tmp_path: Path, target: str) -> None:
    """A request line on a keep-alive API connection cannot send us to another server,
    with or without auth and read-only (the finding: 200 with the other server's body)."""
    with (
        bystander() as (other_port, hits),
        served(tmp_path, read_only=True, basic_auth=f"{USER}:{PASSWORD}") as base,
    ):
        host = base.removeprefix("http://")
        line = target.format(port=other_port).encode()
        reply = raw_exchange(
            base,
            b"GET /api/counts HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n"
            b"GET " + line + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n"
            b"POST " + line + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
            b"Content-Length: 2\r\nConnection: close\r\n\r\n{}",
        )
        assert b"SECRET-OF-THE-OTHER-SERVER" not in reply
        assert hits == []
        codes = statuses(reply)
        assert codes[0] == 401 and all(code in (400, 401, 404) for code in codes[1:]), reply


def test_forwarder_still_serves_pages_on_an_api_connection(tmp_path: Path) -> None:
    with served(tmp_path) as base:
        host = base.removeprefix("http://").encode()
        reply = raw_exchange(
            base,
            b"GET /api/counts HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
            b"GET /?tab=dead HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n",
        )
        assert statuses(reply) == [200, 200]
        assert b"<html" in reply.lower()


# -- 2. Host checks (DNS rebinding) ----------------------------------------------------------


def test_foreign_host_is_refused_on_every_route(tmp_path: Path) -> None:
    state: dict[str, Any] = {}
    with served(tmp_path, state=state) as base:
        port = base.rsplit(":", 1)[1]
        evil = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
        body = json.dumps({"kind": "forge_nb.echo", "queue": "mail"}).encode()
        created = request(base, "POST", "/api/jobs", body, evil)
        assert created[0] == 403, created
        assert request(base, "DELETE", "/api/jobs/1", None, evil)[0] == 403
        assert request(base, "GET", "/api/counts", None, evil)[0] == 403
        assert request(base, "GET", "/", None, evil)[0] == 403
        # Nothing changed: still the one job the server started with.
        counts = json.loads(request(base, "GET", "/api/counts")[2])
        assert counts["mail"]["pending"] == 1
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
            assert request(base, "GET", "/api/counts", None, {"Host": host})[0] == 200, host


def test_allow_host_adds_a_name(tmp_path: Path) -> None:
    with served(tmp_path, allow_host=["jobs.internal"]) as base:
        port = base.rsplit(":", 1)[1]
        ok = request(base, "GET", "/api/counts", None, {"Host": f"jobs.internal:{port}"})
        assert ok[0] == 200
        other = request(base, "GET", "/api/counts", None, {"Host": f"other.internal:{port}"})
        assert other[0] == 403


# -- 3. body size and auth before the body ---------------------------------------------------


def test_oversized_body_gets_413_before_it_is_sent(tmp_path: Path) -> None:
    with served(tmp_path, max_body_bytes=1_000_000) as base:
        host = base.removeprefix("http://").encode()
        # Only the headers go out: the answer must not wait for 90 MB that never come.
        started = time.monotonic()
        reply = raw_exchange(
            base,
            b"POST /api/jobs HTTP/1.1\r\nHost: " + host + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 94371840\r\n\r\n",
            timeout=20,
        )
        assert statuses(reply) == [413], reply
        assert time.monotonic() - started < 15
        # A body within the limit is fine; one just over it is refused.
        small = json.dumps({"kind": "forge_nb.echo", "payload": {"x": "y" * 1000}}).encode()
        assert request(base, "POST", "/api/jobs", small)[0] == 201
        just_over = raw_exchange(
            base,
            b"POST /api/jobs HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 1000001\r\n\r\n",
        )
        assert statuses(just_over) == [413]


def test_credentials_are_checked_before_the_body_is_read(tmp_path: Path) -> None:
    with served(tmp_path, basic_auth=f"{USER}:{PASSWORD}") as base:
        host = base.removeprefix("http://").encode()
        for path in (b"/api/jobs", b"/"):
            reply = raw_exchange(
                base,
                b"POST " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n"
                b"Content-Length: 5000000\r\n\r\n",  # announced, never sent
                timeout=20,
            )
            assert statuses(reply) == [401], (path, reply)
        # With credentials the same request goes through.
        body = json.dumps({"kind": "forge_nb.echo"}).encode()
        assert request(base, "POST", "/api/jobs", body, basic())[0] == 201


def test_cli_takes_a_body_limit_and_credentials_from_the_environment(tmp_path: Path) -> None:
    """``--max-body-size``, and ``$FORGE_NB_BASIC_AUTH`` keeps the password out of ``ps``."""
    server = start_server(
        forge_cli(
            "dashboard",
            "--db",
            f"sqlite:///{tmp_path}/jobs.db",
            "--port",
            str(free_port()),
            "--max-body-size",
            "1000",
        ),
        subprocess_env(tmp_path, FORGE_NB_BASIC_AUTH=f"{USER}:{PASSWORD}"),
        tmp_path / "dashboard.log",
    )
    try:
        base = server.url.rstrip("/")
        cmdline = " ".join(
            Path(f"/proc/{server.process.pid}/cmdline").read_bytes().decode().split("\0")
        )
        assert PASSWORD not in cmdline
        assert http_get(base + "/api/counts")[0] == 401
        assert http_get(base + "/api/counts", basic())[0] == 200
        big = json.dumps({"kind": "forge_nb.echo", "payload": {"x": "y" * 2000}}).encode()
        assert request(base, "POST", "/api/jobs", big, basic())[0] == 413
    finally:
        assert server.stop() == 0, server.log_text()


# -- 4. deep nesting -------------------------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = {"a": value} if level % 2 else [value]
    return value


def test_deep_payloads_are_refused_through_the_api_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    with served(tmp_path) as base:
        for depth in (101, 490, 900):
            body = json.dumps({"kind": "forge_nb.echo", "payload": {"v": nested(depth)}})
            status, _, answer = request(base, "POST", "/api/jobs", body.encode())
            assert status in (400, 422), (depth, status, answer[:200])
            assert "nested" in json.loads(answer)["message"]
        # A request body nested past what the JSON parser walks: 400, not 500.
        status, _, answer = request(base, "POST", "/api/jobs", b"[" * 100_000 + b"]" * 100_000)
        assert status == 400, answer[:200]
        listed = json.loads(request(base, "GET", "/api/jobs")[2])["jobs"]
        assert len(listed) == 1  # only the job the server started with
        ok = json.dumps({"kind": "forge_nb.echo", "payload": {"v": nested(99)}})
        assert request(base, "POST", "/api/jobs", ok.encode())[0] == 201


def test_deep_payloads_are_refused_from_python(tmp_path: Path) -> None:
    async def main() -> None:
        async with fnb.App(f"sqlite:///{tmp_path}/jobs.db") as app:
            with pytest.raises(fnb.PayloadError, match="nested more than 100 levels"):
                await app.enqueue(
                    fnb.EnqueueRequest(kind="forge_nb.echo", payload={"v": nested(150)})
                )
            with pytest.raises(fnb.PayloadError, match="nested"):
                await app.enqueue_many(
                    [fnb.EnqueueRequest(kind="forge_nb.echo", payload={"v": nested(500)})]
                )
            assert sum(sum(c.values()) for c in (await app.counts()).values()) == 0

    run_sync(main)


def test_deep_payloads_are_refused_from_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    done = subprocess.run(
        forge_cli("enqueue", "forge_nb.echo", "--db", url, "--payload", json.dumps(nested(300))),
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "nested" in done.stderr and "Traceback" not in done.stderr


def test_deep_payloads_stored_before_the_cap_still_list(tmp_path: Path) -> None:
    """The repair path: rows written by an older version list and open, with a marker."""
    import sqlite3

    db = tmp_path / "jobs.db"
    with served(tmp_path) as base:
        # json.dumps itself gives up near 900 levels: build the text by hand.
        deep = '{"v":' + "[" * 900 + "1" + "]" * 900 + "}"
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE forge_nb_jobs SET payload = ?, result = ?", (deep, deep))
        status, _, listed = request(base, "GET", "/api/jobs")
        assert status == 200, listed[:300]
        [job] = json.loads(listed)["jobs"]
        assert "nested more than 100 levels" in job["payload"]["_forge_nb_unreadable"]
        for path in (f"/api/jobs/{job['id']}", "/api/jobs?kind=forge_nb.echo"):
            assert request(base, "GET", path)[0] == 200, path


# -- 5. passwords in query parameters --------------------------------------------------------


def test_query_string_passwords_are_masked_in_logs_pages_and_errors(tmp_path: Path) -> None:
    """An unreachable Postgres whose password is a query parameter: the CLI's error, and
    the API's 503 from a running server, never show it (nor the user, host or port)."""
    url = f"postgresql://u@127.0.0.1:{free_port()}/db?password=pwLEAK9"
    done = subprocess.run(
        forge_cli("dashboard", "--db", url, "--port", str(free_port())),
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "pwLEAK9" not in done.stdout + done.stderr
    assert "password=***" in done.stdout + done.stderr

    import asyncio

    import tornado.httpclient
    import tornado.httpserver
    import tornado.netutil
    import tornado.web

    from forge_nb.api import api_routes

    app = fnb.App(url)
    assert "pwLEAK9" not in app.safe_url and "pwLEAK9" not in repr(app)

    async def ask() -> tuple[int, str]:
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server = tornado.httpserver.HTTPServer(tornado.web.Application(api_routes(app)))
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        try:
            reply = await tornado.httpclient.AsyncHTTPClient().fetch(
                f"http://127.0.0.1:{port}/api/counts", raise_error=False, request_timeout=60
            )
            return reply.code, reply.body.decode()
        finally:
            server.stop()
            await app.close()

    code, body = asyncio.run(ask())
    assert code == 503
    assert json.loads(body)["message"] == "database unreachable"
    for secret in ("pwLEAK9", "127.0.0.1", "u@"):
        assert secret not in body


# -- 6. Panel's /components/ route -----------------------------------------------------------


def test_components_route_imports_nothing_new(tmp_path: Path) -> None:
    server = start_server(
        forge_cli("dashboard", "--db", f"sqlite:///{tmp_path}/jobs.db", "--port", str(free_port())),
        subprocess_env(tmp_path),
        tmp_path / "dashboard.log",
    )
    try:
        base = server.url.rstrip("/")
        assert http_get(base + "/components/this/x/__css__/y")[0] == 404
        assert http_get(base + "/components/antigravity/x/__css__/y")[0] == 404
        # The page still loads (its own component resources are served).
        assert http_get(base + "/")[0] == 200
    finally:
        assert server.stop() == 0
    log = server.log_text()
    assert "Beautiful is better than ugly" not in log


# -- 7. framing ------------------------------------------------------------------------------


def test_pages_may_only_be_framed_by_the_dashboard_itself(tmp_path: Path) -> None:
    with served(tmp_path) as base:
        for path in ("/", "/?tab=dead", "/api/counts"):
            status, headers, _ = request(base, "GET", path)
            assert status == 200
            assert headers["content-security-policy"] == "frame-ancestors 'self'"
            assert headers["x-frame-options"] == "SAMEORIGIN"
    with served(tmp_path, frame_ancestors=["http://localhost:8888"]) as base:
        _, headers, _ = request(base, "GET", "/")
        assert headers["content-security-policy"] == (
            "frame-ancestors 'self' http://localhost:8888"
        )
        assert "x-frame-options" not in headers


def test_a_page_on_another_port_cannot_frame_the_dead_tab(tmp_path: Path, browser: Any) -> None:
    """In Chromium: the clickjacking page of the finding (another localhost port) gets an
    empty frame, and the browser says why."""
    import functools

    site = tmp_path / "site"
    site.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        with served(tmp_path) as base:
            (site / "attack.html").write_text(
                f'<iframe id="f" src="{base}/?tab=dead" width=800 height=600></iframe>'
            )
            context = browser.new_context()
            try:
                page = context.new_page()
                said: list[str] = []
                page.on("console", lambda m: said.append(m.text))
                page.goto(f"http://localhost:{attacker.server_address[1]}/attack.html")
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and not any("frame-ancestors" in t for t in said):
                    page.wait_for_timeout(200)
                assert any("frame-ancestors" in text for text in said), said
                assert page.frame_locator("#f").locator("canvas").count() == 0
            finally:
                context.close()
    finally:
        attacker.shutdown()
        attacker.server_close()


# -- 8. session builds -----------------------------------------------------------------------


def test_session_builds_are_bounded_and_refusals_say_when_to_retry(tmp_path: Path) -> None:
    state: dict[str, Any] = {}
    with served(tmp_path, state=state) as base:
        assert request(base, "GET", "/")[0] == 200  # the kept session (reuse) exists now
        with ThreadPoolExecutor(24) as pool:
            replies = list(pool.map(lambda _: request(base, "GET", "/"), range(24)))
        codes = [status for status, _, _ in replies]
        refused = [headers for status, headers, _ in replies if status == 503]
        assert refused, codes
        assert all(h.get("retry-after") == "2" for h in refused)
        assert codes.count(200) >= 4
        # The API stays quick meanwhile and every slot comes back: pages load again.
        builds = state["server"].guard.builds
        wait_for(lambda: builds.in_use() == 0, timeout=60)
        assert request(base, "GET", "/")[0] == 200


# -- 9. page byte budget ---------------------------------------------------------------------


def test_job_lists_truncate_big_payloads_and_keep_a_byte_budget(tmp_path: Path) -> None:
    with served(tmp_path) as base:
        big = {"blob": "x" * 990_000}
        for _ in range(12):
            body = json.dumps({"kind": "forge_nb.echo", "payload": big}).encode()
            assert request(base, "POST", "/api/jobs", body)[0] == 201
        status, _, answer = request(base, "GET", "/api/jobs?limit=1000")
        assert status == 200
        assert len(answer) < 200_000, len(answer)
        page = json.loads(answer)
        shown = [j for j in page["jobs"] if j.get("payload_truncated")]
        assert len(shown) == 12
        assert all(
            j["payload"] is None and j["payload_preview"].startswith('{"blob":"xxx') for j in shown
        )
        full = json.loads(request(base, "GET", f"/api/jobs/{shown[0]['id']}")[2])
        assert full["payload"] == big


def test_a_page_over_budget_continues_with_its_cursor(tmp_path: Path) -> None:
    from forge_nb.api import convert

    with served(tmp_path) as base:
        # Payloads just under the truncation size: a page of 1,000 would be ~4 MB.
        for _ in range(3):
            body = json.dumps(
                [{"kind": "forge_nb.echo", "payload": {"x": "y" * 4000}}] * 100
            ).encode()
            assert request(base, "POST", "/api/jobs", body)[0] == 201
        seen: list[str] = []
        cursor = ""
        pages = 0
        while True:
            status, _, answer = request(base, "GET", f"/api/jobs?limit=1000{cursor}")
            assert status == 200 and len(answer) <= convert.PAGE_BUDGET_CHARS * 1.2
            page = json.loads(answer)
            seen += [j["id"] for j in page["jobs"]]
            pages += 1
            if not page["next_cursor"]:
                break
            cursor = "&cursor=" + urllib.parse.quote(page["next_cursor"])
        assert pages >= 2
        assert len(seen) == len(set(seen)) == 301


# -- 10. cookies -----------------------------------------------------------------------------


def test_logout_revokes_the_login_cookie(tmp_path: Path) -> None:
    with served(tmp_path, basic_auth=f"{USER}:{PASSWORD}") as base:
        host, port = base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        body = urllib.parse.urlencode({"username": USER, "password": PASSWORD})
        conn.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
        reply = conn.getresponse()
        reply.read()
        set_cookies = [v for k, v in reply.getheaders() if k.lower() == "set-cookie"]
        conn.close()
        assert reply.status == 302
        user_cookie = next(c for c in set_cookies if c.startswith("user="))
        assert "SameSite=Lax" in user_cookie and "Secure" not in user_cookie
        cookie = "; ".join(c.split(";", 1)[0] for c in set_cookies if "=" in c)
        assert request(base, "GET", "/api/counts", None, {"Cookie": cookie})[0] == 200
        assert request(base, "GET", "/", None, {"Cookie": cookie})[0] == 200
        assert request(base, "GET", "/logout", None, {"Cookie": cookie})[0] == 200
        # The same cookie, replayed after the logout, opens nothing.
        assert request(base, "GET", "/api/counts", None, {"Cookie": cookie})[0] == 401
        assert request(base, "GET", "/", None, {"Cookie": cookie})[0] == 302


def test_cookies_are_secure_behind_a_tls_proxy(tmp_path: Path) -> None:
    with served(tmp_path, basic_auth=f"{USER}:{PASSWORD}") as base:
        body = urllib.parse.urlencode({"username": USER, "password": PASSWORD}).encode()
        status, headers, _ = request(
            base,
            "POST",
            "/login",
            body,
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Forwarded-Proto": "https",
            },
        )
        assert status == 302
        assert "Secure" in headers["set-cookie"] and "SameSite=Lax" in headers["set-cookie"]


def test_forged_websocket_sessions_are_bounded(tmp_path: Path) -> None:
    """The finding: 50 websockets with made-up session ids each built a whole dashboard."""
    import asyncio

    import tornado.httpclient
    import tornado.websocket
    from bokeh.util.token import generate_jwt_token, generate_session_id

    state: dict[str, Any] = {}
    with served(tmp_path, state=state) as base:

        async def one() -> int:
            token = generate_jwt_token(generate_session_id(), signed=False)
            request = tornado.httpclient.HTTPRequest(
                base.replace("http://", "ws://") + "/ws",
                headers={"Origin": base},
                request_timeout=120,
            )
            try:
                socket_ = await tornado.websocket.websocket_connect(
                    request, subprotocols=["bokeh", token]
                )
            except tornado.httpclient.HTTPClientError as exc:
                assert exc.response is not None
                assert exc.response.headers.get("Retry-After") == "2"
                return exc.code
            socket_.close()
            return 101

        async def many() -> list[int]:
            return list(await asyncio.gather(*(one() for _ in range(30))))

        codes = run_sync(many)
        assert codes.count(503) >= 20, codes
        assert 101 in codes
        builds = state["server"].guard.builds
        wait_for(lambda: builds.in_use() == 0, timeout=90)
        started = time.monotonic()
        assert request(base, "GET", "/api/counts")[0] == 200
        assert time.monotonic() - started < 5


def test_made_up_hosts_and_themes_do_not_keep_more_sessions(tmp_path: Path) -> None:
    """Kept (reused) page sessions are keyed by what the server picks, not the request's text."""
    from panel.io.state import state

    with served(tmp_path) as base:
        port = base.rsplit(":", 1)[1]
        for i in range(6):
            assert request(base, "GET", f"/?theme=made-up-{i}")[0] == 200
            assert request(base, "GET", "/", None, {"Host": f"127.0.0.{i + 2}:{port}"})[0] == 200
        assert request(base, "GET", "/?theme=dark")[0] == 200
        kept = [k for k in state._sessions if isinstance(k, tuple) and k[:1] == ("forge-nb",)]
        assert len(kept) == 2, kept  # default and dark
