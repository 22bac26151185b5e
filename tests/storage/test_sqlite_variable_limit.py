"""A bulk enqueue on SQLite builds older than 3.32, whose statements take at most 999
bound variables (some distributions' Pythons still link one)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from forge_nb.storage import open_storage
from forge_nb.storage.records import NewJob
from forge_nb.storage.sqlite_statements import insert_batch
from forge_nb.storage.validation import prepare_jobs


async def test_a_bulk_insert_fits_the_variable_limit_of_old_sqlite_builds(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    await (await open_storage(f"sqlite:///{path}")).close()  # the schema
    jobs = [NewJob(kind="k", queue="q", payload={"i": i}) for i in range(500)]
    with closing(sqlite3.connect(path)) as conn:
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # as such a build has it
        results = insert_batch(conn, prepare_jobs(jobs, 1.0), 1.0, {"q"})
        conn.commit()
        stored = conn.execute("SELECT payload FROM forge_nb_jobs ORDER BY id").fetchall()
    assert [r.outcome for r in results] == ["created"] * 500
    assert [int(r.id) for r in results] == list(range(1, 501))
    assert stored == [(f'{{"i":{i}}}',) for i in range(500)]
