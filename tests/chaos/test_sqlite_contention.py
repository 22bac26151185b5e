"""SQLite under contention, and SQLite files forge-nb must refuse without touching them.

Three worker processes and a notebook-style producer process hammer one file at
full speed: no ``database is locked`` (or any other error) reaches the producer
or the worker logs, and every job ends ``done``. A file that is not a forge-nb
database, or one from a newer forge-nb, is refused with a clear error — by the
library and by ``forge-nb worker`` — and its bytes stay identical.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import forge_nb as fnb
from forge_nb.storage.schema import VERSION_TABLE

from .conftest import HERE, REPO, Workers, eventually, hosts_registered, summary

pytestmark = pytest.mark.slow

PRODUCE_S = 10.0


@pytest.mark.timeout(150)
async def test_three_workers_and_a_producer_on_one_file_never_see_locked(
    sqlite_url: str, workers: Workers, tmp_path: Path
) -> None:
    async with fnb.App(sqlite_url) as app:
        await app.ensure_queue("default", workers=10)
        procs = [workers.spawn(sqlite_url, "--poll-interval", "0.05") for _ in range(3)]
        await eventually(lambda: hosts_registered(app, 3), timeout=30)
        out = tmp_path / "producer.json"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        started = time.monotonic()
        producer = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(HERE / "producer.py"), sqlite_url, str(PRODUCE_S), str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=PRODUCE_S + 60,
        )
        produced_s = time.monotonic() - started
        assert producer.returncode == 0, producer.stderr
        result = json.loads(out.read_text())
        ids = result["ids"]
        await eventually(lambda: _all_done(app, len(ids)), timeout=60, interval=0.2)
        drained_s = time.monotonic() - started
        counts = (await app.counts())["default"]
        alive = [p.poll() is None for p in procs]
        codes = await workers.stop_all()
    logs = workers.log_text()
    summary(
        "sqlite contention",
        producer_calls=result["calls"],
        enqueued=len(ids),
        enqueue_per_s=round(len(ids) / produced_s),
        drained_s=round(drained_s, 1),
        producer_errors=len(result["errors"]),
    )
    assert result["errors"] == [], result["errors"][:5]
    assert "locked" not in producer.stderr and "Traceback" not in producer.stderr, producer.stderr
    assert counts["done"] == len(ids) == len(set(ids)) > 1000
    assert counts["running"] == counts["pending"] == counts["failed"] == counts["dead"] == 0
    assert all(alive) and all(code == 0 for code in codes.values()), codes
    for bad in ("locked", "unavailable", "Traceback", "ERROR"):
        assert bad not in logs, f"{bad!r} in worker logs:\n{logs}"


async def _all_done(app: fnb.App, n: int) -> bool:
    counts = (await app.counts())["default"]
    return counts["done"] >= n and counts["running"] == counts["pending"] == 0


# -- files forge-nb must not touch -----------------------------------------------------------


def _foreign_text(path: Path) -> None:
    path.write_text("name,score\nada,10\n" * 200)


def _foreign_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('ada'), ('grace')")
    conn.close()


def _newer_schema(path: Path) -> None:
    async def create() -> None:
        async with fnb.App(f"sqlite:///{path}") as app:
            await app.ensure_queue("default")

    asyncio.run(create())
    conn = sqlite3.connect(path)
    conn.execute(f"INSERT INTO {VERSION_TABLE} (version, applied_at) VALUES (999, 0)")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


CASES = {
    "text file": (_foreign_text, fnb.StorageError, "not a database|file is not"),
    "another app's sqlite": (_foreign_sqlite, fnb.NotAForgeDatabase, "did not create"),
    "newer schema": (_newer_schema, fnb.SchemaTooNew, "newer|upgrade"),
}


@pytest.fixture(params=list(CASES), ids=list(CASES))
def refused_file(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, type, str]:
    make, error, pattern = CASES[request.param]
    path = tmp_path / "refuse.db"
    # Built in a thread: the newer-schema case runs its own event loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(make, path).result()
    return path, error, pattern


async def test_the_library_refuses_a_file_it_must_not_touch(
    refused_file: tuple[Path, type, str],
) -> None:
    path, error, pattern = refused_file
    before = path.read_bytes()
    app = fnb.App(f"sqlite:///{path}")
    with pytest.raises(error, match=pattern) as caught:
        await app.jobs()
    await app.close()
    assert str(path) in str(caught.value) or "forge-nb" in str(caught.value)
    assert path.read_bytes() == before


async def test_forge_nb_worker_refuses_it_clearly_and_exits_non_zero(
    refused_file: tuple[Path, type, str], workers: Workers
) -> None:
    path, _error, pattern = refused_file
    before = path.read_bytes()
    proc = workers.spawn(f"sqlite:///{path}")
    code = await asyncio.to_thread(proc.wait, 30)
    log = workers.log_text(proc)
    assert code != 0
    assert "forge-nb: error:" in log, log
    assert "Traceback" not in log, log
    assert re.search(pattern, log), log
    assert path.read_bytes() == before
