"""Shared fixtures: a real Postgres server, fresh databases per test, and storages on both backends.

- ``pg_dsn`` (session): the server's admin DSN. ``scripts/test.sh`` starts a throwaway server and
  exports ``FORGE_NB_TEST_PG_DSN``; a plain ``pytest`` run starts one itself (refused under ``CI``).
- ``pg_url``: a fresh database per test, copied from a template that already holds the forge-nb
  schema (``CREATE DATABASE … TEMPLATE``: milliseconds, no migrations per test).
- ``empty_pg_url`` / ``empty_db_url``: a database forge-nb has never opened (migration tests).
- ``sqlite_url``: a new SQLite file in the test's tmp dir.
- ``db_url``: parametrized ``sqlite`` / ``postgres``.
- ``storage``: `open_storage(db_url)`, closed after the test.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest

from forge_nb.storage import Storage, open_storage

REPO = Path(__file__).resolve().parent.parent
POSTGRES_SH = REPO / "scripts" / "postgres.sh"
PG_ENV = "FORGE_NB_TEST_PG_DSN"
TEMPLATE_DB = "forge_nb_template"
#: Test-only server settings: durability off for speed.
PG_TEST_CONF = "fsync=off\nsynchronous_commit=off\nfull_page_writes=off"
BACKENDS = ["sqlite", "postgres"]

T = TypeVar("T")


def run_in_thread(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine function on its own loop in a helper thread.

    For session-scoped setup: it must not touch the event loops pytest-asyncio manages.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(fn())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="fixture-setup")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def database_url(dsn: str, dbname: str) -> str:
    """The server DSN pointed at another database."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


async def pg_execute(dsn: str, *statements: str) -> None:
    """Run statements on one short-lived asyncpg connection."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


# -- Postgres server -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """Admin DSN of the test Postgres server."""
    dsn = os.environ.get(PG_ENV)
    if dsn:
        yield dsn
        return
    if os.environ.get("CI"):
        pytest.fail(
            f"{PG_ENV} is not set under CI: run the suite with `bash scripts/test.sh`, "
            "which starts a throwaway Postgres server and exports it",
            pytrace=False,
        )
    tmp = tempfile.mkdtemp(prefix="forge_nb_pg_")
    env = {**os.environ, "PG_EXTRA_CONF": PG_TEST_CONF}
    started = subprocess.run(
        ["bash", str(POSTGRES_SH), "start", tmp],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if started.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.fail(
            f"could not start a test Postgres server with {POSTGRES_SH}:\n{started.stderr}",
            pytrace=False,
        )
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(
            ["bash", str(POSTGRES_SH), "stop", tmp],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_template(pg_dsn: str) -> str:
    """Name of a template database holding the current forge-nb schema (built once per session)."""

    async def build() -> None:
        await pg_execute(
            pg_dsn,
            f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)",
            f"CREATE DATABASE {TEMPLATE_DB}",
        )
        storage = await open_storage(database_url(pg_dsn, TEMPLATE_DB))
        await storage.close()

    run_in_thread(build)
    return TEMPLATE_DB


def _new_db_name() -> str:
    return f"t_{uuid.uuid4().hex}"


class FreshDatabases:
    """Per-test databases copied from the template by a helper thread, a few ahead of need.

    ``CREATE DATABASE … TEMPLATE`` costs 30-300 ms depending on the disk, and ``DROP DATABASE``
    some more; doing both in the background while tests run keeps them off the tests' clock.
    Each test still gets a database nobody else has touched, dropped (``WITH (FORCE)``) after it.
    """

    def __init__(self, dsn: str, template: str, ahead: int = 2) -> None:
        self.dsn = dsn
        self.template = template
        self.ahead = ahead
        self._ready: queue.Queue[str | BaseException] = queue.Queue()
        self._to_drop: queue.Queue[str] = queue.Queue()
        self._wanted = threading.Semaphore(ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-fresh-databases", daemon=True)
        self._thread.start()

    def take(self) -> str:
        """A fresh database name (waits for the helper if none is ready yet)."""
        item = self._ready.get(timeout=120)
        self._wanted.release()
        if isinstance(item, BaseException):
            raise item
        return item

    def discard(self, name: str) -> None:
        """Drop a used database (in the background)."""
        self._to_drop.put(name)

    def close(self) -> None:
        """Stop the helper and drop every database it made."""
        self._stop.set()
        self._thread.join(timeout=120)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        try:
            while not self._stop.is_set():
                await self._drop_used(conn)
                if self._wanted.acquire(blocking=False):
                    if self._stop.is_set():
                        break
                    name = _new_db_name()
                    try:
                        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {self.template}")
                    except Exception as exc:
                        self._ready.put(exc)
                        continue
                    self._ready.put(name)
                else:
                    await asyncio.sleep(0.002)
            await self._drop_used(conn)
            while not self._ready.empty():
                item = self._ready.get_nowait()
                if isinstance(item, str):
                    self._to_drop.put(item)
            await self._drop_used(conn)
        finally:
            await conn.close()

    async def _drop_used(self, conn: Any) -> None:
        while not self._to_drop.empty():
            name = self._to_drop.get_nowait()
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def pg_databases(pg_dsn: str, pg_template: str) -> Iterator[FreshDatabases]:
    """The helper that makes fresh per-test databases (started on first use)."""
    databases = FreshDatabases(pg_dsn, pg_template)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture
def pg_url(pg_dsn: str, pg_databases: FreshDatabases) -> Iterator[str]:
    """A fresh, migrated Postgres database for this test only (dropped after it)."""
    name = pg_databases.take()
    try:
        yield database_url(pg_dsn, name)
    finally:
        pg_databases.discard(name)


@pytest.fixture
async def empty_pg_url(pg_dsn: str) -> AsyncIterator[str]:
    """A fresh Postgres database that forge-nb has never opened (no schema)."""
    name = _new_db_name()
    await pg_execute(pg_dsn, f"CREATE DATABASE {name}")
    try:
        yield database_url(pg_dsn, name)
    finally:
        await pg_execute(pg_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# -- SQLite ----------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path}/jobs.db"


# -- Both backends ---------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database URL on each backend (Postgres: already migrated from the template)."""
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest) -> str:
    """A database URL on each backend that forge-nb has never opened."""
    name = "sqlite_url" if request.param == "sqlite" else "empty_pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
async def storage(db_url: str) -> AsyncIterator[Storage]:
    """An open storage on a fresh database (both backends), closed after the test."""
    opened = await open_storage(db_url)
    try:
        yield opened
    finally:
        await opened.close()
