"""SQLite's write-ahead log stays bounded while the writer never leaves the event loop.

The writer's own checkpoints are off (they stalled the loop inside a commit); a background
thread checkpoints instead, and a long burst makes the writer wait for the WAL to restart.
"""

from __future__ import annotations

from pathlib import Path

from forge_nb.storage import open_storage
from forge_nb.storage.records import NewJob
from forge_nb.storage.sqlite import WAL_SIZE_LIMIT_BYTES


async def test_a_long_burst_of_single_writes_keeps_the_wal_bounded(tmp_path: Path) -> None:
    path = tmp_path / "burst.db"
    storage = await open_storage(f"sqlite:///{path}")
    try:
        # ~40 KB of WAL per one-job transaction: 6,000 of them would leave a WAL of about
        # 240 MB if nothing checkpointed (they run back to back, never yielding the loop).
        for i in range(6000):
            await storage.enqueue([NewJob(kind="k", queue="q", payload={"i": i})], float(i))
        wal = path.with_name(path.name + "-wal")
        assert wal.stat().st_size < WAL_SIZE_LIMIT_BYTES + 32 * 1024 * 1024
        assert (await storage.counts())["q"]["pending"] == 6000
    finally:
        await storage.close()
    assert not wal.exists()  # the last connection to close checkpoints and removes it
