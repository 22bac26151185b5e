"""Helpers for the dashboard tests: real servers as subprocesses and a real seeded database."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest

import forge_nb as fnb
from forge_nb.runtime.refs import EnqueueRequest

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
XSS_PAYLOAD = '<img src=x onerror="window.__xss=1">'
#: A queue name is data too (shown in card titles, filters, charts).
XSS_QUEUE = '<img src=y onerror="window.__xss=2">'
#: Text of an element including every nested shadow root (style/script skipped).
DEEP_TEXT_JS = """el => {
  const walk = (n) => {
    let t = "";
    if (n.shadowRoot) t += walk(n.shadowRoot);
    for (const c of n.childNodes) {
      if (c.nodeType === 3) t += c.textContent;
      else if (c.nodeType === 1 && !["STYLE", "SCRIPT"].includes(c.tagName)) t += walk(c) + " ";
    }
    return t;
  };
  return walk(el).replace(/\\s+/g, " ").trim();
}"""
TABS = [
    "Overview",
    "Jobs",
    "Scheduled",
    "Retries",
    "Dead",
    "Cron",
    "Queues",
    "Processes",
    "Resources",
    "DB health",
    "Per-queue metrics",
    "Workflow",
]


# -- small helpers ---------------------------------------------------------------------------


def run_sync(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine function on its own loop in a helper thread (keeps pytest's loops alone)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(fn())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.2) -> Any:
    """Poll until ``predicate()`` is truthy; return it (fail with a clear message on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(status, body) of a GET, without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def forge_cli(*args: str) -> list[str]:
    """argv for ``forge-nb <args>`` (via the module while the subcommand is not wired yet)."""
    from forge_nb.cli import build_parser

    parser = build_parser()
    choices: dict[str, Any] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            choices = dict(action.choices)
    if args and args[0] in ("dashboard", "demo") and args[0] not in choices:
        return [sys.executable, "-m", "forge_nb.cli_dashboard", *args]
    return [sys.executable, "-m", "forge_nb.cli", *args]


def subprocess_env(tmp: Path, **extra: str) -> dict[str, str]:
    """Environment for a child: unbuffered, its data dir in the test's tmp dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORGE_NB_")}
    env.update({"PYTHONUNBUFFERED": "1", "FORGE_NB_DATA_DIR": str(tmp / "data"), **extra})
    return env


@dataclass
class Served:
    """A server subprocess; ``url`` is the URL it printed."""

    process: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)
    log: Path | None = None

    def log_text(self) -> str:
        """What the server printed (stdout and the tail of stderr)."""
        tail = self.log.read_text()[-4000:] if self.log and self.log.exists() else ""
        return "".join(self.lines) + tail

    def stop(self, timeout: float = 30.0) -> int:
        """SIGINT, like Ctrl-C; return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"server did not stop within {timeout} s of SIGINT") from None
        return int(self.process.returncode)


def _default_sigint() -> None:
    """Ctrl-C must reach the server even when the tests run as a background job.

    A shell starts background jobs with SIGINT ignored, the child inherits that, and
    Python then installs no KeyboardInterrupt handler: ``panel serve`` would ignore the
    SIGINT `Served.stop` sends.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_server(
    argv: list[str], env: dict[str, str], log: Path, timeout: float = 60.0, url: str | None = None
) -> Served:
    """Start a server, wait for the URL it prints (or ``url``) and for that URL to answer."""
    stderr = log.open("w")
    process = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd=log.parent,
        preexec_fn=_default_sigint,
    )
    lines: list[str] = []
    found: dict[str, str] = {"url": url} if url else {}

    def reader() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = re.search(r"https?://\S+", line)
            if match and "url" not in found and "Mission Control" in line:
                found["url"] = match.group(0)

    threading.Thread(target=reader, daemon=True).start()
    deadline = time.monotonic() + timeout
    while "url" not in found:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(
                f"server did not print its URL: {' '.join(argv)}\n{''.join(lines)}\n"
                f"{log.read_text()[-3000:]}"
            )
        time.sleep(0.1)
    served = Served(process, found["url"], lines, log)

    def answering() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"server exited {process.returncode}:\n{served.log_text()}")
        try:
            return http_get(served.url)[0] in (200, 302)
        except OSError:  # not listening yet
            return False

    wait_for(answering, timeout=timeout)
    return served


# -- databases ----------------------------------------------------------------------------


def _pg_url(dsn: str, dbname: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


async def _pg_execute(dsn: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@dataclass
class Seeded:
    """What `seed` put in the database."""

    url: str
    xss_job: str
    dead_by_note: dict[str, str]
    counts: dict[str, dict[str, int]]


async def seed(url: str) -> Seeded:
    """A few hundred jobs: done, failed (retrying in an hour), dead (one with an XSS payload),
    pending, scheduled in the future, two cron schedules, and an empty queue ``ops``."""
    app = fnb.App(url, queues=["work"], heartbeat_interval=0.2, poll_interval=0.05)

    @app.job(kind="seed.ok", queue="work")
    async def ok(ctx: fnb.JobCtx, n: int) -> dict[str, int]:
        await asyncio.sleep(0.005 * (n % 4))
        return {"n": n, "square": n * n}

    @app.job(kind="seed.boom", queue="work", max_attempts=3)
    async def boom(ctx: fnb.JobCtx, n: int) -> None:
        try:
            raise KeyError(f"missing {n}")
        except KeyError as exc:
            raise RuntimeError(f"boom {n}") from exc

    @app.job(kind="seed.fatal", queue="work", max_attempts=1)
    async def fatal(ctx: fnb.JobCtx, note: str) -> None:
        raise ValueError(f"cannot handle <b>{note}</b>")

    async with app:
        await app.ensure_queue(
            "work",
            workers=8,
            backoff_base_seconds=3600,
            backoff_max_seconds=7200,
            backoff_jitter=False,
        )
        await app.ensure_queue("default", workers=2)
        await app.ensure_queue("ops", workers=2)
        await app.ensure_queue(XSS_QUEUE, workers=1)
        await app.enqueue_many(
            [EnqueueRequest(kind="seed.ok", payload={"n": i}) for i in range(150)]
        )
        await app.enqueue_many(
            [EnqueueRequest(kind="seed.boom", payload={"n": i}) for i in range(20)]
        )
        refs = await app.enqueue_many(
            [EnqueueRequest(kind="seed.fatal", payload={"note": f"bad {i}"}) for i in range(25)]
        )
        dead_by_note = {f"bad {i}": ref.id for i, ref in enumerate(refs)}
        xss = await app.enqueue(EnqueueRequest(kind="seed.fatal", payload={"note": XSS_PAYLOAD}))
        handle = await app.start()
        for _ in range(300):
            work = (await app.counts()).get("work", {})
            if work.get("pending", 1) == 0 and work.get("running", 1) == 0:
                break
            await asyncio.sleep(0.05)
        await handle.shutdown(5)
        await app.enqueue_many(
            [
                EnqueueRequest(kind="report.daily", payload={"day": i}, queue="default")
                for i in range(200)
            ]
        )
        await app.enqueue_many(
            [
                EnqueueRequest(
                    kind="report.later", payload={"i": i}, queue="default", delay=3600 + i
                )
                for i in range(30)
            ]
        )
        await app.ensure_schedule(
            "nightly", "0 3 * * *", "report.daily", payload={"day": 0}, queue="default"
        )
        await app.ensure_schedule(
            "every-5m",
            "*/5 * * * *",
            "report.daily",
            payload={"day": 1},
            queue="default",
            enabled=False,
        )
        counts = await app.counts()
    assert counts["work"] == {
        "waiting": 0,
        "pending": 0,
        "running": 0,
        "failed": 20,
        "done": 150,
        "dead": 26,
    }
    return Seeded(url, xss.id, dead_by_note, counts)


def backend_url(request: pytest.FixtureRequest, backend: str, tmp: Path) -> Iterator[str]:
    """A fresh database URL on ``backend`` (Postgres: copied from the migrated template)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp}/jobs.db"
        return
    dsn = request.getfixturevalue("pg_dsn")
    template = request.getfixturevalue("pg_template")
    name = f"dash_{uuid.uuid4().hex}"
    run_sync(lambda: _pg_execute(dsn, f"CREATE DATABASE {name} TEMPLATE {template}"))
    try:
        yield _pg_url(dsn, name)
    finally:
        run_sync(lambda: _pg_execute(dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def with_app(url: str, fn: Callable[[fnb.App], Coroutine[Any, Any, T]]) -> T:
    """Run ``fn(app)`` on a short-lived App (the test's own view of the database)."""
    async with fnb.App(url) as app:
        return await fn(app)


def query(url: str, fn: Callable[[fnb.App], Coroutine[Any, Any, T]]) -> T:
    """`with_app` from sync (browser) tests."""
    return run_sync(lambda: with_app(url, fn))


@dataclass
class Page:
    """A Playwright page plus what went wrong in it."""

    page: Any
    errors: list[str]

    def open(self, url: str, tab: str | None = None) -> None:
        """Load the dashboard (on ``tab``, via ``?tab=``) and wait until it is live."""
        self.page.goto(url + (f"?tab={tab}" if tab else ""))
        self.page.locator(".fnb-header-pane").wait_for(timeout=30_000)
        if tab is None:
            self.page.locator("canvas").first.wait_for(timeout=30_000)

    def tab(self, title: str) -> None:
        """Click a tab by its exact title."""
        self.page.locator(".bk-tab", has_text=re.compile(f"^{re.escape(title)}$")).click()

    def text(self, css: str) -> str:
        """Text of the first element matching ``css``, shadow roots included (Panel panes keep
        their content in a shadow root, which ``inner_text`` does not see)."""
        return str(self.page.locator(css).first.evaluate(DEEP_TEXT_JS))


def save_screenshot(page: Page, tmp: Path, name: str, *, publish: bool = True) -> Path:
    """Screenshot into the test's tmp dir; also into docs/screenshots (``publish``) when
    ``FORGE_NB_UPDATE_SCREENSHOTS=1``."""
    path = tmp / name
    page.page.screenshot(path=str(path), full_page=False)
    if publish and os.environ.get("FORGE_NB_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / name).write_bytes(path.read_bytes())
    return path


# -- an in-process `forge-nb dashboard` server ----------------------------------------------


@contextmanager
def served(
    tmp_path: Path, *, url: str | None = None, state: dict[str, Any] | None = None, **options: Any
) -> Iterator[str]:
    """``build_server(..., api_thread=True)`` on a loop in a helper thread; yields the base URL.

    ``state`` (if given) receives the ``server`` object once it runs.
    """
    from forge_nb.dashboard.server import build_server

    port = free_port()
    url = url or f"sqlite:///{tmp_path}/jobs.db"
    ready = threading.Event()
    box: dict[str, Any] = {} if state is None else state

    async def main() -> None:
        async with fnb.App(url) as app:
            await app.enqueue(fnb.EnqueueRequest(kind="forge_nb.echo", queue="mail"))
            server = build_server(app, port=port, api_thread=True, **options)
            server.start()
            box["server"] = server
            box["stop"] = stop = asyncio.Event()
            box["loop"] = asyncio.get_running_loop()
            ready.set()
            try:
                await stop.wait()
            finally:
                server.stop()
                server.unlisten()

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert ready.wait(60), "server did not start"
    if "error" in box:
        raise box["error"]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(60)
        assert not thread.is_alive(), "server did not stop"
        if "error" in box:
            raise box["error"]
