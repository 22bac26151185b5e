"""The SQL files: one set of statement names for both dialects, each dialect's own apart.

A statement the SQL core runs (storage/core.py) must exist in both dialects under one name,
so adding a storage feature means writing it in both files, not in Python.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from forge_nb.storage import core
from forge_nb.storage.records import (
    METRIC_COUNTERS,
    ClaimedJob,
    MetricRow,
    QueueConfig,
    Schedule,
    ShippedCode,
)
from forge_nb.storage.schema import (
    COMMON_QUERIES,
    DIALECT_QUERIES,
    SHARED_QUERIES,
    fragments,
    load_queries,
    read_common_queries,
    read_query_file,
)

STORAGE = Path(core.__file__).parent


def test_both_dialects_share_the_same_statement_names() -> None:
    sqlite = set(read_query_file("sqlite", SHARED_QUERIES))
    postgres = set(read_query_file("postgres", SHARED_QUERIES))
    assert sqlite == postgres, {
        "only in sqlite/queries.sql": sorted(sqlite - postgres),
        "only in postgres/queries.sql": sorted(postgres - sqlite),
    }


def test_a_statement_written_alike_in_both_dialects_lives_once_in_common_sql() -> None:
    """A statement whose text is the same in both dialects but for the parameter style
    belongs in sql/common.sql, so that a fix to it is made once."""
    sqlite = read_query_file("sqlite", SHARED_QUERIES)
    postgres = read_query_file("postgres", SHARED_QUERIES)
    alike = [n for n in sqlite if re.sub(r"\$(\d+)", r"?\1", postgres.get(n, "")) == sqlite[n]]
    assert not alike, f"move these to {COMMON_QUERIES}: {alike}"


def test_common_statements_read_in_each_dialects_parameter_style() -> None:
    sqlite, postgres = read_common_queries("sqlite"), read_common_queries("postgres")
    assert len(sqlite) > 30 and sqlite.keys() == postgres.keys()
    for name, text in sqlite.items():
        assert not re.search(r"\$\d", text), name
        assert re.sub(r"\$(\d+)", r"?\1", postgres[name]) == text
    assert "?1" in sqlite["get_job"] and "$1" in postgres["get_job"]


def test_dialect_files_hold_only_what_the_other_dialect_lacks() -> None:
    for backend, other in (("sqlite", "postgres"), ("postgres", "sqlite")):
        own = set(read_query_file(backend, DIALECT_QUERIES))
        assert own, f"{backend}/{DIALECT_QUERIES} is empty"
        assert not own & set(load_queries(other)), f"{backend}: move these to {SHARED_QUERIES}"


def test_every_statement_the_core_runs_is_in_the_shared_files() -> None:
    source = Path(core.__file__).read_text()
    named = set(re.findall(r'self\._(?:select|select_one|change)\(\s*"([a-z_0-9]+)"', source))
    named |= set(re.findall(r'\(\s*"([a-z_0-9]+)",\s*(?:params|\[)', source))
    named |= set(re.findall(r'self\.Q\["([a-z_0-9]+)"', source))
    assert len(named) > 30
    shared = set(read_query_file("sqlite", SHARED_QUERIES)) | set(read_common_queries("sqlite"))
    assert named <= shared, sorted(named - shared)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_every_statement_is_used_by_the_code(backend: str) -> None:
    code = "\n".join(p.read_text() for p in STORAGE.glob("*.py"))
    unused = [name for name in load_queries(backend) if f'"{name}"' not in code]
    assert not unused, f"{backend}: statements no code runs: {unused}"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_shared_parts_are_written_out_where_named_and_each_is_used(backend: str) -> None:
    """A ``-- {part} --`` is text several statements share: each statement that names it reads
    it whole (so the database never sees a ``{part}`` marker), and a part nothing names is
    dead text."""
    parts = fragments(backend)
    assert {"job_columns", "runnable", "metric_columns"} <= parts.keys()
    queries = load_queries(backend)
    for name, text in queries.items():
        assert not [p for p in parts if "{" + p + "}" in text], name
    files = [STORAGE / "sql" / COMMON_QUERIES]
    files += [STORAGE / "sql" / backend / f for f in (SHARED_QUERIES, DIALECT_QUERIES)]
    source = "\n".join(f.read_text() for f in files)
    unused = [p for p in parts if source.count("{" + p + "}") < 2]  # its header, then a use
    assert not unused, f"{backend}: parts no statement names: {unused}"
    columns = " ".join(parts["job_columns"].split())
    for name in ("get_job", "list_jobs", "dependents_of"):
        assert " ".join(queries[name].split()).startswith(f"SELECT {columns} FROM")


def _selected(sql: str) -> list[str]:
    """The column names a ``SELECT … FROM`` (or a bare column list) reads, in order."""
    columns = sql.split("SELECT", 1)[-1].split("FROM", 1)[0]
    return [c.strip() for c in columns.split(",")]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_records_built_by_position_have_their_fields_in_the_columns_order(backend: str) -> None:
    """`rows` builds these records from a row by position: a column added to the statement
    or a field added to the record in another place would shift every value after it."""
    queries, parts = load_queries(backend), fragments(backend)

    def names(record: type) -> list[str]:
        return [f.name for f in dataclasses.fields(record)]

    assert names(MetricRow)[3:] == _selected(parts["metric_columns"])
    assert names(MetricRow)[3:10] == list(METRIC_COUNTERS)  # rows.metric_params
    assert names(MetricRow) == _selected(queries["read_metrics"])
    assert names(QueueConfig) == _selected(queries["queue_configs"])
    assert names(Schedule) == _selected(queries["schedules"])
    assert names(ShippedCode) == _selected(queries["code_row"])
    claimed = _selected(queries["claim"].split("RETURNING")[-1].replace("j.", ""))
    assert names(ClaimedJob) == [{"attempts": "attempt"}.get(c, c) for c in claimed]
