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


def load_queries(backend: str) -> dict[str, str]:
    """Named queries from ``sql/<backend>/queries.sql`` (procrastinate-style ``-- name --``)."""
    text = (resources.files("forge_nb.storage") / "sql" / backend / "queries.sql").read_text(
        encoding="utf-8"
    )
    parts = QUERY_HEADER.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


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
