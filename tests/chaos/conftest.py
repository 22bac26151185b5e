"""Fixtures for the chaos tests: real worker processes, a Postgres server we may stop, helpers.

Every test here runs real `forge-nb worker` subprocesses (jobs from
``tests/chaos/chaosapp.py``) against real databases, and checks what a user
would see afterwards: job rows, side-effect files, worker logs, exit codes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest

import forge_nb as fnb

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
POSTGRES_SH = REPO / "scripts" / "postgres.sh"
#: Test-only server settings: durability off for speed (as tests/conftest.py).
PG_TEST_CONF = "fsync=off\nsynchronous_commit=off\nfull_page_writes=off"
T = TypeVar("T")


# -- waiting ---------------------------------------------------------------------------------------


async def eventually(
    check: Callable[[], Awaitable[T | None]], timeout: float = 10.0, interval: float = 0.05
) -> T:
    """Await ``check()`` until it returns something truthy (AssertionError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        await asyncio.sleep(interval)


async def hosts_registered(app: fnb.App, n: int) -> bool:
    """At least ``n`` worker processes have registered their slots."""
    return len({p.host_id for p in await app.processes()}) >= n


# -- worker processes ------------------------------------------------------------------------------


@dataclass
class Workers:
    """Starts `forge-nb worker --app chaosapp:app` processes; each writes its own log file."""

    dir: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: dict[int, Path] = field(default_factory=dict)

    def spawn(
        self, url: str, *args: str, heartbeat: float = 0.2, app: str | None = "chaosapp:app"
    ) -> subprocess.Popen[bytes]:
        """One more worker process on ``url`` (extra CLI flags in ``args``; ``app=None``:
        no ``--app``, e.g. a ``--shipped-code`` worker)."""
        env = {
            **os.environ,
            **self.env_extra,
            "FORGE_NB_TEST_DIR": str(self.dir),
            "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        log_path = self.dir / f"worker-{len(self.procs)}.log"
        cmd = [sys.executable, "-m", "forge_nb.cli", "worker", "--db", url]
        cmd += [] if app is None else ["--app", app]
        cmd += ["--heartbeat-interval", str(heartbeat), *args]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir
            )
        self.procs.append(proc)
        self.logs[proc.pid] = log_path
        return proc

    def log_text(self, proc: subprocess.Popen[bytes] | None = None) -> str:
        """One worker's log, or every worker's logs joined."""
        paths = [self.logs[proc.pid]] if proc is not None else list(self.logs.values())
        return "\n".join(p.read_text(errors="replace") for p in paths if p.exists())

    def alive(self) -> list[subprocess.Popen[bytes]]:
        """Workers still running."""
        return [p for p in self.procs if p.poll() is None]

    async def stop_all(self, timeout: float = 30.0) -> dict[int, int | None]:
        """SIGTERM every live worker and wait; returns pid → exit code (None: did not exit)."""
        live = self.alive()
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        codes: dict[int, int | None] = {}
        deadline = time.monotonic() + timeout
        for proc in live:
            try:
                codes[proc.pid] = await asyncio.to_thread(
                    proc.wait, max(0.1, deadline - time.monotonic())
                )
            except subprocess.TimeoutExpired:
                codes[proc.pid] = None
        return codes

    def kill_all(self) -> None:
        """SIGKILL leftovers (test teardown)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    """A `Workers` spawner writing side effects and logs to the test's tmp dir."""
    spawner = Workers(tmp_path)
    try:
        yield spawner
    finally:
        spawner.kill_all()


def runs(directory: Path, name: str) -> list[tuple[str, int, int]]:
    """Every ``(job_id, attempt, pid)`` the chaos jobs wrote to ``name.<pid>`` files."""
    out = []
    for path in directory.glob(f"{name}.*"):
        pid = int(path.suffix[1:])
        for line in path.read_text().splitlines():
            job_id, attempt = line.split()
            out.append((job_id, int(attempt), pid))
    return out


def run_counts(directory: Path, name: str) -> Counter[str]:
    """How many times each job id ran (wrote its side effect)."""
    return Counter(job_id for job_id, _, _ in runs(directory, name))


# -- a Postgres server of our own (we stop and start it) ---------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        pytest.skip("postgres is not installed")
    return found[-1]


@dataclass
class OwnPostgres:
    """A throwaway server this module controls: ``stop()``, ``start()``, ``restart()``."""

    dir: Path
    dsn: str

    def _pg_ctl(self, *args: str) -> None:
        cmd = [str(_pg_bin()), "-D", str(self.dir / "data"), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, cwd=self.dir, check=True, capture_output=True, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        """Fast shutdown: every connection is cut."""
        self._pg_ctl("stop", "-m", "fast", "-w")

    def start(self) -> None:
        """Start again on the same data directory and port."""
        self._pg_ctl("-l", str(self.dir / "server.log"), "-w", "start")

    def url(self, dbname: str, password: str | None = None) -> str:
        """A URL to ``dbname`` (the server trusts everyone, so any password works)."""
        url = database_url(self.dsn, dbname)
        if password:
            url = url.replace("postgres@", f"postgres:{password}@", 1)
        return url


@pytest.fixture(scope="module")
def own_pg() -> Iterator[OwnPostgres]:
    """A Postgres server only this module uses, so a test may stop and restart it."""
    if not POSTGRES_SH.exists():
        pytest.skip("scripts/postgres.sh is missing")
    tmp = Path(tempfile.mkdtemp(prefix="forge_nb_chaos_pg_"))
    started = subprocess.run(
        ["bash", str(POSTGRES_SH), "start", str(tmp), str(_free_port())],
        env={**os.environ, "PG_EXTRA_CONF": PG_TEST_CONF},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if started.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.fail(f"could not start a Postgres server:\n{started.stderr}", pytrace=False)
    server = OwnPostgres(tmp, started.stdout.strip().splitlines()[-1])
    try:
        yield server
    finally:
        subprocess.run(
            ["bash", str(POSTGRES_SH), "stop", str(tmp)],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(tmp, ignore_errors=True)


async def create_database(server: OwnPostgres, name: str) -> str:
    """A new empty database on ``server`` (forge-nb migrates it on first open); its URL."""
    import asyncpg

    conn = await asyncpg.connect(server.dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return server.url(name)


def database_url(dsn: str, dbname: str) -> str:
    """The server DSN pointed at another database."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def summary(title: str, **figures: Any) -> None:
    """Print one line of figures (shown with ``pytest -s`` or ``-rP``)."""
    print(f"[chaos] {title}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
