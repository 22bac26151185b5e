"""Versioned migrations: numbered ``.sql`` files per backend, shipped as package data."""

from __future__ import annotations

import re
import sqlite3
from importlib import resources

MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
#: Table recording applied versions; its presence marks a forge-nb database.
VERSION_TABLE = "forge_nb_schema"


def load_migrations(backend: str) -> list[tuple[int, str]]:
    """``[(version, sql)]`` in version order for ``backend`` ("sqlite" or "postgres")."""
    folder = resources.files("forge_nb.storage") / "migrations" / backend
    found = []
    for entry in folder.iterdir():
        match = MIGRATION_FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(found)


def latest_version(backend: str) -> int:
    """The newest migration this code knows for ``backend``."""
    migrations = load_migrations(backend)
    return migrations[-1][0] if migrations else 0


QUERY_HEADER = re.compile(r"^-- ([a-z0-9_]+) --$", re.MULTILINE)
#: Statements whose text is the same in both dialects (``sql/common.sql``), written with
#: Postgres's ``$n`` parameters; SQLite reads them as ``?n``.
COMMON_QUERIES = "common.sql"
#: Statements both dialects have, under the same names and (where the SQL core runs them,
#: `forge_nb.storage.core`) the same numbered parameters.
SHARED_QUERIES = "queries.sql"
#: Statements only one dialect needs (its own way of doing a step).
DIALECT_QUERIES = "dialect.sql"


def load_queries(backend: str) -> dict[str, str]:
    """Named queries (procrastinate-style ``-- name --``) for ``backend``: those written once
    for both dialects (``sql/common.sql``), those both have in their own words
    (``sql/<backend>/queries.sql``) and this dialect's own (``sql/<backend>/dialect.sql``)."""
    queries = read_common_queries(backend)
    for file in SHARED_QUERIES, DIALECT_QUERIES:
        for name, body in read_query_file(backend, file).items():
            if name in queries:
                raise RuntimeError(f"query {name!r} is named twice in sql/ for {backend}")
            queries[name] = body
    return queries


def read_common_queries(backend: str) -> dict[str, str]:
    """The statements of ``sql/common.sql``, with SQLite's ``?n`` for ``$n`` on SQLite."""
    queries = _parse(_sql_text(COMMON_QUERIES))
    if backend == "sqlite":
        queries = {name: _DOLLAR_PARAM.sub(r"?\1", body) for name, body in queries.items()}
    return queries


_DOLLAR_PARAM = re.compile(r"\$(\d+)")


def read_query_file(backend: str, file: str) -> dict[str, str]:
    """The named queries of one file of ``sql/<backend>/``."""
    return _parse(_sql_text(backend, file))


def _sql_text(*path: str) -> str:
    return resources.files("forge_nb.storage").joinpath("sql", *path).read_text(encoding="utf-8")


def _parse(text: str) -> dict[str, str]:
    parts = QUERY_HEADER.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {
        name: _without_leading_comments(body)
        for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def _without_leading_comments(body: str) -> str:
    """A query's text without the comment lines above it: they are for readers of the file,
    and may name the ``{markers}`` a template fills in."""
    lines = body.strip().splitlines()
    while lines and lines[0].lstrip().startswith("--"):
        lines.pop(0)
    return "\n".join(lines).strip()


def split_statements(script: str) -> list[str]:
    """Split a SQLite migration into statements (``sqlite3.complete_statement`` decides where
    one ends, so trigger bodies with their inner ``;`` stay whole)."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        if line.lstrip().startswith("--") and not current:
            continue
        current.append(line)
        text = "\n".join(current)
        if line.rstrip().endswith(";") and sqlite3.complete_statement(text):
            statement = text.strip()
            if statement.strip(";").strip():
                statements.append(statement)
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return statements
