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


QUERY_HEADER = re.compile(r"^-- ([a-z0-9_]+|\{[a-z0-9_]+\}) --$", re.MULTILINE)
#: A part several statements share, written once under a header in braces (``-- {name} --``)
#: and filled in wherever a statement (or another part) names it as ``{name}`` when the file
#: is read. Other ``{markers}`` are left for the code to fill in at run time.
FRAGMENT_MARK = re.compile(r"\{([a-z0-9_]+)\}")
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
    files = _read_files(backend)
    parts = _fragments(files)
    queries: dict[str, str] = {}
    for entries in files.values():
        for name, body in _statements(entries, parts).items():
            if name in queries:
                raise RuntimeError(f"query {name!r} is named twice in sql/ for {backend}")
            queries[name] = body
    return queries


def read_common_queries(backend: str) -> dict[str, str]:
    """The statements of ``sql/common.sql``, with SQLite's ``?n`` for ``$n`` on SQLite."""
    return read_query_file(backend, COMMON_QUERIES)


def read_query_file(backend: str, file: str) -> dict[str, str]:
    """The named queries of one file ``backend`` reads (its ``{parts}`` filled in)."""
    files = _read_files(backend)
    return _statements(files[file], _fragments(files))


def fragments(backend: str) -> dict[str, str]:
    """The ``{parts}`` ``backend``'s statements share, by name (without the braces)."""
    return _fragments(_read_files(backend))


_DOLLAR_PARAM = re.compile(r"\$(\d+)")


def _read_files(backend: str) -> dict[str, dict[str, str]]:
    """Every entry (statements and ``{parts}``) of the three files ``backend`` reads, by file."""
    common = _parse(_sql_text(COMMON_QUERIES))
    if backend == "sqlite":
        common = {name: _DOLLAR_PARAM.sub(r"?\1", body) for name, body in common.items()}
    files = {COMMON_QUERIES: common}
    for file in SHARED_QUERIES, DIALECT_QUERIES:
        files[file] = _parse(_sql_text(backend, file))
    return files


def _fragments(files: dict[str, dict[str, str]]) -> dict[str, str]:
    parts: dict[str, str] = {}
    for entries in files.values():
        for name, body in entries.items():
            if name.startswith("{"):
                if name[1:-1] in parts:
                    raise RuntimeError(f"part {name} is written twice in sql/")
                # It may name parts written before it (in file order): no cycles.
                parts[name[1:-1]] = _fill(body, parts)
    return parts


def _statements(entries: dict[str, str], parts: dict[str, str]) -> dict[str, str]:
    return {name: _fill(body, parts) for name, body in entries.items() if not name.startswith("{")}


def _fill(body: str, parts: dict[str, str]) -> str:
    """``body`` with each ``{part}`` it names written out, its lines indented as the line
    naming it (so a logged statement reads as if written whole)."""

    def part(match: re.Match[str]) -> str:
        text = parts.get(match.group(1))
        if text is None:
            return match.group(0)
        line_start = body.rfind("\n", 0, match.start()) + 1
        line = body[line_start : match.start()]
        indent = line[: len(line) - len(line.lstrip())]
        return text.replace("\n", "\n" + indent)

    return FRAGMENT_MARK.sub(part, body)


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
