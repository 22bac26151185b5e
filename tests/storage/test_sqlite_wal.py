"""SQLite's write-ahead log stays bounded while the writer never leaves the event loop.

The writer's own checkpoints are off (they stalled the loop inside a commit); a background
thread checkpoints instead, and a long burst makes the writer wait for the WAL to restart.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from forge_nb.storage import open_storage
from forge_nb.storage.records import NewJob
from forge_nb.storage.sqlite_statements import PAGE_SIZE, WAL_SIZE_LIMIT_BYTES


async def test_a_long_burst_of_single_writes_keeps_the_wal_bounded(tmp_path: Path) -> None:
    path = tmp_path / "burst.db"
    storage = await open_storage(f"sqlite:///{path}")
    try:
        # ~20 KB of WAL per one-job transaction (ten 2 KiB pages): 9,000 of them would leave
        # a WAL of about 180 MB if nothing checkpointed (back to back, never yielding the loop).
        for i in range(9000):
            await storage.enqueue([NewJob(kind="k", queue="q", payload={"i": i})], float(i))
        wal = path.with_name(path.name + "-wal")
        assert wal.stat().st_size < WAL_SIZE_LIMIT_BYTES + 32 * 1024 * 1024
        assert (await storage.counts())["q"]["pending"] == 9000
    finally:
        await storage.close()
    assert not wal.exists()  # the last connection to close checkpoints and removes it


async def test_a_reader_holding_an_old_snapshot_does_not_stall_writes(tmp_path: Path) -> None:
    """A connection in the middle of a read pins the WAL: the restart gives up and backs off.

    (A RESTART checkpoint that waited out the reader on every try held each write for the
    reader connection's 30 s busy timeout.)
    """
    path = tmp_path / "pinned.db"
    storage = await open_storage(f"sqlite:///{path}")
    await storage.enqueue([NewJob(kind="k", queue="q")], 0.0)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM forge_nb_jobs").fetchone()  # snapshot held
        for i in range(6000):
            await asyncio.wait_for(
                storage.enqueue([NewJob(kind="k", queue="q", payload={"i": i})], float(i)),
                timeout=10,
            )
        assert (await storage.counts())["q"]["pending"] == 6001
        assert reader.execute("SELECT count(*) FROM forge_nb_jobs").fetchone() == (1,)
    finally:
        reader.close()
        await storage.close()


def page_size(path: Path) -> int:
    with sqlite3.connect(path) as c:
        return int(c.execute("PRAGMA page_size").fetchone()[0])


async def test_a_new_file_gets_small_pages_and_an_existing_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    """Smaller pages make each commit cheaper, but SQLite sets a file's page size once: a
    database made with the old default (4 KiB) opens, migrates and works as it is."""
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as c:  # an empty database file, made with 4 KiB pages
        c.execute("PRAGMA page_size = 4096")
        c.execute("PRAGMA user_version = 0")
    new = tmp_path / "new.db"
    for path in (old, new):
        storage = await open_storage(f"sqlite:///{path}")
        try:
            [result] = await storage.enqueue([NewJob(kind="k", queue="q", payload={})], 1.0)
            [job] = await storage.claim("q", "host", 1, 2.0)
            assert job.id == result.id
        finally:
            await storage.close()
    assert (page_size(old), page_size(new)) == (4096, PAGE_SIZE) and PAGE_SIZE < 4096
