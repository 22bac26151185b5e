"""What the SQLite build under Python must give: 3.35 or newer (``RETURNING``), and at most
999 bound variables per statement are used (the default of builds before 3.32, which a
build may still set). The storage holds every connection to that limit, so the whole suite
runs as on such a build."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from forge_nb.errors import StorageError
from forge_nb.storage import open_storage
from forge_nb.storage.records import NewJob
from forge_nb.storage.sqlite_statements import VARIABLE_LIMIT, check_version, insert_batch
from forge_nb.storage.validation import prepare_jobs


async def test_a_bulk_insert_fits_the_variable_limit_of_old_sqlite_builds(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    await (await open_storage(f"sqlite:///{path}")).close()  # the schema
    jobs = [NewJob(kind="k", queue="q", payload={"i": i}) for i in range(500)]
    with closing(sqlite3.connect(path)) as conn:
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, VARIABLE_LIMIT)  # as such a build
        results = insert_batch(conn, prepare_jobs(jobs, 1.0), 1.0, {"q"})
        conn.commit()
        stored = conn.execute("SELECT payload FROM forge_nb_jobs ORDER BY id").fetchall()
    assert [r.outcome for r in results] == ["created"] * 500
    assert [int(r.id) for r in results] == list(range(1, 501))
    assert stored == [(f'{{"i":{i}}}',) for i in range(500)]


async def test_the_storage_holds_its_connections_to_the_old_limit(tmp_path: Path) -> None:
    """A statement over the limit fails here as it would on an old build, not only there."""
    storage = await open_storage(f"sqlite:///{tmp_path / 'limit.db'}")
    try:
        many = ", ".join("?" * (VARIABLE_LIMIT + 1))
        with pytest.raises(StorageError, match="too many SQL variables"):
            await storage._select_sql(f"SELECT 1 WHERE 1 IN ({many})", [1] * (VARIABLE_LIMIT + 1))  # type: ignore[attr-defined]
        await storage.enqueue([NewJob(kind="k", queue="q")] * 500, 1.0)  # chunks fit
        assert (await storage.counts())["q"]["pending"] == 500
    finally:
        await storage.close()


@pytest.mark.parametrize("version", ["3.31.1", "3.34.1", "2.8.17"])
def test_an_sqlite_too_old_for_returning_is_refused_with_what_to_do(version: str) -> None:
    with pytest.raises(
        StorageError, match=rf"needs SQLite 3\.35\.0 or newer.*links SQLite {version}"
    ):
        check_version(version)


@pytest.mark.parametrize("version", ["3.35.0", "3.40.1", "3.50.4"])
def test_sqlite_3_35_and_newer_is_taken(version: str) -> None:
    check_version(version)
